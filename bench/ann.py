"""ANN (faiss HNSW) against exact top-K by matrix product: recall@K and per-query latency.

    .venv/bin/python bench/ann.py --sizes 10000 100000 1000000

Items are synthetic d=64 embeddings from a mixture of 256 clusters (real catalogs are clustered;
uniform random vectors are the hardest case for HNSW and unlike any trained model), with biases;
queries are noisy copies of items. Scores are ``<q, e_i> + b_i``, as the worker ranks. Latency is
one query at a time (a worker's micro-batch of one), after warm-up, on the threads given.
Writes bench/results/ann.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from models.retrieval import AnnIndex, ExactIndex
from core.report import write_report


def catalog(n: int, dim: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    centers = rng.normal(size=(256, dim)).astype(np.float32)
    items = centers[rng.integers(256, size=n)] + 0.7 * rng.normal(size=(n, dim)).astype(np.float32)
    items /= np.sqrt(dim)
    bias = 0.1 * rng.normal(size=n).astype(np.float32)
    return torch.from_numpy(items), torch.from_numpy(bias)


def latencies(search, queries: torch.Tensor, k: int) -> np.ndarray:
    for q in queries[:10]:
        search(q[None], k, [[]])
    out = []
    for q in queries:
        started = time.perf_counter()
        search(q[None], k, [[]])
        out.append(time.perf_counter() - started)
    return np.array(out) * 1000


def measure(
    n: int, dim: int, k: int, n_queries: int, ef_search: list[int], seed: int
) -> list[dict]:
    rng = np.random.default_rng(seed)
    items, bias = catalog(n, dim, rng)
    picks = rng.integers(n, size=n_queries)
    queries = (
        items[picks] * 3
        + torch.from_numpy(rng.normal(size=(n_queries, dim)).astype(np.float32)) * 0.3
    )
    exact = ExactIndex(items, bias)
    with torch.inference_mode():
        _, truth = exact.search(queries, k, [[]] * n_queries)
        exact_ms = latencies(exact.search, queries, k)
    rows = [
        {
            "items": n,
            "method": "exact (matmul + topk)",
            "build_s": 0.0,
            "recall": 1.0,
            "p50_ms": float(np.percentile(exact_ms, 50)),
            "p99_ms": float(np.percentile(exact_ms, 99)),
        }
    ]
    started = time.perf_counter()
    ann = AnnIndex.build(items, bias)
    build_s = time.perf_counter() - started
    for ef in ef_search:
        ann = AnnIndex(ann.index, ef_search=ef)
        _, found = ann.search(queries, k, [[]] * n_queries)
        recall = np.mean([len(set(f.tolist()) & set(t.tolist())) / k for f, t in zip(found, truth)])
        ann_ms = latencies(ann.search, queries, k)
        rows.append(
            {
                "items": n,
                "method": f"HNSW M=32 efSearch={ef}",
                "build_s": build_s,
                "recall": float(recall),
                "p50_ms": float(np.percentile(ann_ms, 50)),
                "p99_ms": float(np.percentile(ann_ms, 99)),
            }
        )
    for row in rows:
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--ef-search", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rows = []
    for n in args.sizes:
        rows += measure(n, args.dim, args.k, args.queries, args.ef_search, args.seed)
    write_report(
        args.out,
        "ann",
        rows,
        {
            "items": lambda r: f"{r['items']:,}",
            "method": lambda r: r["method"],
            f"recall@{args.k}": lambda r: f"{r['recall']:.3f}",
            "query p50 ms": lambda r: f"{r['p50_ms']:.2f}",
            "query p99 ms": lambda r: f"{r['p99_ms']:.2f}",
            "build s": lambda r: f"{r['build_s']:.1f}",
        },
    )


if __name__ == "__main__":
    main()
