"""Peak memory and rate of reading a long, unsorted log in event-time order (core/sources.py).

    PYTHONPATH=. .venv/bin/python bench/reader_memory.py [--lines 10000000] [--sort-run 200000]

Writes a MovieLens-style ``ratings.csv`` (header ``userId,movieId,rating,timestamp``, half
stars, Unix seconds in random order) to a temporary directory, then a child process that does
nothing but read it through :class:`~core.sources.EventLog` (external sort included) reports its
peak RSS (``getrusage`` max RSS, and the kernel's VmHWM) and events/s. A second child only
imports the reader: the interpreter's own share of the peak. The file is written by a child
too: Linux keeps max RSS across exec, so a child forked from a parent that had grown would
report the parent's peak. The machine's load average is recorded next to the rate,
which it moves (RSS it does not). Writes bench/results/reader_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.report import write_report

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import json, resource, sys, time
from pathlib import Path
from core.sources import EventLog, ReadOptions
path, run = Path(sys.argv[1]), int(sys.argv[2])
started, count, last, in_order = time.perf_counter(), 0, -1, True
if run:
    for event in EventLog(path, ReadOptions(sort_run=run)):
        count += 1
        in_order &= event.ts >= last
        last = event.ts
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")]
print(json.dumps({"events": count, "in_order": in_order,
                  "seconds": time.perf_counter() - started,
                  "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "vm_hwm_kb": int(hwm[0].split()[1]) if hwm else None}))
"""


def write_ratings(path: Path, lines: int, seed: int = 0, chunk: int = 1_000_000) -> None:
    """``lines`` ratings of 200k users on 60k movies, timestamps uniformly over ten years."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "w") as out:
        out.write("userId,movieId,rating,timestamp\n")
        for start in range(0, lines, chunk):
            n = min(chunk, lines - start)
            users = rng.integers(1, 200_001, n)
            items = rng.integers(1, 60_001, n)
            stars = rng.integers(1, 11, n) / 2
            times = rng.integers(1_000_000_000, 1_315_000_000, n)
            out.writelines(f"{u},{i},{s},{t}\n" for u, i, s, t in
                           zip(users.tolist(), items.tolist(), stars.tolist(), times.tolist()))


def child(*args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr)
    return done.stdout


def read_in_child(path: Path, sort_run: int) -> dict:
    """The child's report; ``sort_run`` 0 only imports the reader."""
    return json.loads(child("-c", CHILD, str(path), str(sort_run)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--sort-run", type=int, default=200_000, help="events per sorted run")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--write-only", type=Path, help=argparse.SUPPRESS)  # the writing child
    args = parser.parse_args()
    if args.write_only:
        return write_ratings(args.write_only, args.lines)
    with tempfile.TemporaryDirectory(prefix="reader-memory-") as tmp:
        path = Path(tmp) / "ratings.csv"
        child(__file__, "--lines", str(args.lines), "--write-only", str(path))
        size_mb = path.stat().st_size / 1e6
        print(f"wrote {args.lines:,} lines, {size_mb:.0f} MB", flush=True)
        load_before = os.getloadavg()[0]
        started = time.time()
        read = read_in_child(path, args.sort_run)
        idle = read_in_child(path, 0)
    if read["events"] != args.lines or not read["in_order"]:
        raise SystemExit(f"the reader lost events or their order: {read}")
    row = {
        "lines": args.lines, "file_mb": round(size_mb), "sort_run": args.sort_run,
        "events": read["events"], "seconds": round(read["seconds"], 1),
        "events_per_s": round(read["events"] / read["seconds"]),
        "peak_rss_mb": round(read["peak_rss_kb"] / 1024),
        "vm_hwm_mb": read["vm_hwm_kb"] and round(read["vm_hwm_kb"] / 1024),
        "interpreter_rss_mb": round(idle["peak_rss_kb"] / 1024),
        "load_avg_1m_before": round(load_before, 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }  # fmt: skip
    write_report(args.out, "reader_memory", [row], {
        "lines": lambda r: f"{r['lines']:,}",
        "file MB": lambda r: str(r["file_mb"]),
        "sort run": lambda r: f"{r['sort_run']:,}",
        "peak RSS MB (getrusage)": lambda r: str(r["peak_rss_mb"]),
        "VmHWM MB": lambda r: str(r["vm_hwm_mb"]),
        "of which interpreter + imports MB": lambda r: str(r["interpreter_rss_mb"]),
        "events/s": lambda r: f"{r['events_per_s']:,}",
        "load avg (1 min) before/after": lambda r:
            f"{r['load_avg_1m_before']} / {r['load_avg_1m_after']} on {r['cpus']} CPUs",
    })  # fmt: skip


if __name__ == "__main__":
    main()
