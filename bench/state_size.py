"""Bytes per user of the user table: encoded value, and RocksDB on disk after compaction.

    .venv/bin/python bench/state_size.py --users 100000 --dim 32 --history 50

Writes bench/results/state_size.{json,md}. Vectors are random normal (incompressible, like real
ones); item ids look like MovieLens ids (1-4 digits).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rocksdict import Options, Rdict

from streams.codec import encode_state
from streams.interest import UserState
from streams.report import write_report


def measure(users: int, dim: int, history: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    path = Path(tempfile.mkdtemp(prefix="state-size-"))
    try:
        db = Rdict(str(path), Options(raw_mode=True))
        value_bytes = 0
        started = time.perf_counter()
        for user in range(users):
            state = UserState(
                vector=rng.normal(size=dim).astype(np.float32),
                last_ts=1_700_000_000_000 + user,
                count=int(rng.integers(1, 500)),
                recent=tuple(str(i) for i in rng.integers(1, 4000, size=history)),
                position=(user % 4, user),
                recent_weights=tuple(rng.normal(size=history).astype(np.float32).tolist()),
            )
            value = encode_state(state)
            value_bytes += len(value)
            db[str(user).encode()] = value
        write_s = time.perf_counter() - started
        db.flush()
        db.compact_range(None, None)
        db.close()
        disk = sum(f.stat().st_size for f in path.rglob("*.sst"))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return {
        "users": users,
        "dim": dim,
        "history": history,
        "value_bytes_per_user": round(value_bytes / users, 1),
        "sst_bytes_per_user_after_compaction": round(disk / users, 1),
        "writes_per_s": round(users / write_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--dim", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--history", type=int, default=50, help="recent items per user (the worker default)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    rows = [measure(args.users, dim, args.history) for dim in args.dim]
    write_report(
        args.out,
        "state_size",
        rows,
        {
            "users": lambda r: f"{r['users']:,}",
            "d": lambda r: str(r["dim"]),
            "recent ids": lambda r: str(r["history"]),
            "value bytes/user": lambda r: str(r["value_bytes_per_user"]),
            "RocksDB .sst bytes/user": lambda r: str(r["sst_bytes_per_user_after_compaction"]),
            "writes/s": lambda r: f"{r['writes_per_s']:,}",
        },
    )


if __name__ == "__main__":
    main()
