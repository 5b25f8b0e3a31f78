"""Bytes per user of the user table: encoded value, and RocksDB on disk after compaction.

    .venv/bin/python bench/state_size.py [--users 100000 1000000] [--dim 64] [--history 50 20]
        [--seen 0 32] [--unknown 0.0]

Writes bench/results/state_size.{json,md}. Vectors are random normal (incompressible, like real
ones) on the stored float16 grid; item ids are MovieLens 100k's (1..1,682), coded against that
catalog, with ``--unknown`` of them outside it (stored as strings). ``--seen`` is the dedupe
window's remembered event ids (8 bytes each; the worker's default window is 32).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rocksdict import Options, Rdict

from core.codebook import ItemCodebook
from core.codec import encode_state
from core.interest import UserState
from core.precision import snap
from core.report import write_report


CATALOG = ItemCodebook(str(n) for n in range(1, 1683))


def measure(
    users: int, dim: int, history: int, seen: int, unknown: float = 0.0, seed: int = 0
) -> dict:
    rng = np.random.default_rng(seed)
    path = Path(tempfile.mkdtemp(prefix="state-size-"))
    try:
        db = Rdict(str(path), Options(raw_mode=True))
        value_bytes = 0
        write_s = 0.0
        for user in range(users):
            ids = rng.integers(1, 1683, size=history)
            outside = rng.random(history) < unknown
            state = UserState(
                vector=snap(rng.normal(size=dim).astype(np.float32)),
                last_ts=1_700_000_000_000 + user,
                count=int(rng.integers(1, 500)),
                recent=tuple(f"new-{i}" if o else str(i) for i, o in zip(ids, outside)),
                position=(user % 4, user),
                recent_weights=tuple(snap(rng.normal(size=history).astype(np.float32)).tolist()),
                seen=tuple(int(h) for h in rng.integers(0, 2**63, size=seen)),
            )
            started = time.perf_counter()
            value = encode_state(state, CATALOG)
            db[str(user).encode()] = value
            write_s += time.perf_counter() - started
            value_bytes += len(value)
        memtables = db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0
        db.flush()
        db.compact_range(None, None)
        keys = [str(u).encode() for u in rng.integers(0, users, min(users, 100_000))]
        started = time.perf_counter()
        for key in keys:
            db[key]
        read_s = time.perf_counter() - started
        readers = db.property_int_value("rocksdb.estimate-table-readers-mem") or 0
        db.close()
        disk = sum(f.stat().st_size for f in path.rglob("*.sst"))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return {
        "users": users,
        "dim": dim,
        "history": history,
        "seen": seen,
        "unknown_share": unknown,
        "value_bytes_per_user": round(value_bytes / users, 1),
        "sst_bytes_per_user_after_compaction": round(disk / users, 1),
        "writes_per_s": round(users / write_s),  # encode + put, one at a time
        "random_reads_per_s": round(len(keys) / read_s),  # get, after compaction
        # Memory: a worker keeps no user state outside RocksDB; RocksDB's own is the memtables
        # (bounded by write_buffer_size) and the table readers' index and filter blocks.
        "memtables_mb_before_flush": round(memtables / 2**20, 1),
        "table_readers_mb": round(readers / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dim", type=int, nargs="+", default=[64])
    parser.add_argument(
        "--history", type=int, nargs="+", default=[50, 20],
        help="recent items per user (50 is the worker default, the sequence models' max_len)",
    )
    parser.add_argument("--seen", type=int, nargs="+", default=[0, 32],
                        help="remembered event ids per user (the dedupe window)")
    parser.add_argument("--unknown", type=float, default=0.0,
                        help="share of recent items outside the catalog (stored as strings)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    rows = []
    for users in args.users:
        for dim in args.dim:
            for history in args.history:
                for seen in args.seen:
                    rows.append(measure(users, dim, history, seen, args.unknown))
                    print(rows[-1], flush=True)
    write_report(
        args.out,
        "state_size",
        rows,
        {
            "users": lambda r: f"{r['users']:,}",
            "d": lambda r: str(r["dim"]),
            "recent ids": lambda r: str(r["history"]),
            "seen ids": lambda r: str(r["seen"]),
            "value bytes/user": lambda r: str(r["value_bytes_per_user"]),
            "RocksDB .sst bytes/user": lambda r: str(r["sst_bytes_per_user_after_compaction"]),
            "writes/s": lambda r: f"{r['writes_per_s']:,}",
            "random reads/s": lambda r: f"{r['random_reads_per_s']:,}",
            "memtables MB": lambda r: str(r["memtables_mb_before_flush"]),
            "table readers MB": lambda r: str(r["table_readers_mb"]),
        },
    )


if __name__ == "__main__":
    main()
