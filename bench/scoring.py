"""The scoring kernel: one user at a time vs a micro-batch, against the machine's matmul bound.

    .venv/bin/python bench/scoring.py [--sizes 1000 10000 100000 1000000] [--threads 1]

Exact top-K (``models.retrieval.ExactIndex``: scores = queries @ items.T + bias, seen items masked,
torch.topk) at d = 64, K = 10, 20 seen items per user, on the worker's torch thread count. The
bound is the pure matrix product's rate on this machine (measured here, same shapes): a batch of B
users costs 2*B*N*D flops, so users/s can be at most GFLOP/s / (2*N*D). (These thin products are
memory-bound: the square 1024 sgemm rate, printed and stored, is the compute peak.) ANN (HNSW)
against exact is bench/ann.py. Writes bench/results/scoring.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from models.retrieval import ExactIndex
from core.report import write_report

DIM, K, SEEN = 64, 10, 20


def best_seconds(work: Callable[[], object], min_total_s: float = 0.5) -> float:
    """Median seconds per call over at least ``min_total_s`` of calls, after a warm-up."""
    work()
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < min_total_s or len(times) < 5:
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def measure(n_items: int, batch: int, rng: np.random.Generator) -> list[dict]:
    items = torch.from_numpy(rng.normal(size=(n_items, DIM)).astype(np.float32))
    bias = torch.from_numpy(rng.normal(size=n_items).astype(np.float32))
    index = ExactIndex(items, bias)
    queries = torch.from_numpy(rng.normal(size=(batch, DIM)).astype(np.float32))
    seen = [rng.integers(0, n_items, SEEN).tolist() for _ in range(batch)]
    matmul_s = best_seconds(lambda: queries @ items.T)
    gflops = 2 * batch * n_items * DIM / matmul_s / 1e9
    bound = gflops * 1e9 / (2 * n_items * DIM)
    rows = []
    for users in (1, batch):
        seconds = best_seconds(lambda: index.search(queries[:users], K, seen[:users]))
        rows.append({
            "items": n_items, "batch": users, "ms_per_call": round(seconds * 1000, 3),
            "users_per_s": round(users / seconds), "matmul_gflops": round(gflops, 1),
            "bound_users_per_s": round(bound), "x_of_bound": round(users / seconds / bound, 3),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a worker uses 1)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    square = torch.randn(1024, 1024)
    peak = 2 * 1024**3 / best_seconds(lambda: square @ square) / 1e9
    print(f"square 1024 sgemm on {args.threads} thread(s): {peak:.0f} GFLOP/s")
    rows = []
    with torch.inference_mode():
        for n_items in args.sizes:
            for row in measure(n_items, args.batch, rng):
                row["threads"], row["square_sgemm_gflops"] = args.threads, round(peak)
                print(row, flush=True)
                rows.append(row)
    write_report(args.out, "scoring", rows, {
        "items": lambda r: f"{r['items']:,}",
        "users per call": lambda r: str(r["batch"]),
        "ms per call": lambda r: f"{r['ms_per_call']:.3f}",
        "users/s": lambda r: f"{r['users_per_s']:,}",
        "matmul GFLOP/s": lambda r: f"{r['matmul_gflops']}",
        "bound users/s": lambda r: f"{r['bound_users_per_s']:,}",
        "× bound": lambda r: f"{r['x_of_bound']:.2f}",
    })


if __name__ == "__main__":
    main()
