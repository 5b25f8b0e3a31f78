"""What fusing item neighbours costs a worker's scoring: Recommender.top_k with and without.

    .venv/bin/python bench/neighbour_fusion.py [--sizes 1682 10000 100000] [--batch 256]

A batch of users, each with 50 recent items, is scored by an MF model (d = 64, sequence weight
0, as the interest policy) over N items, each item explained by 3 recent ones as a worker's
records are, once with the item neighbours off, once fused at co-visit and rule weights 1
(models/neighbours.py: 100 co-visits and rules an item, built from generated user streams over
the same items) and once with the session neighbours at weight 1 as well (V-SKNN over those
streams' last 20 items: models/session_neighbours.py), side by side in one process, on the
worker's one torch thread. Writes bench/results/neighbour_fusion.{json,md}.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from core.report import write_report
from models.blend import Blend
from models.mf import MatrixFactorization
from models.neighbours import build
from models.scoring import Recommender
from scoring import best_seconds  # bench/ is on sys.path when run as a script

DIM, K, RECENT = 64, 10, 50


def measure(n_items: int, batch: int, rng: np.random.Generator) -> dict:
    model = MatrixFactorization(n_items=n_items, dim=DIM, max_len=RECENT)
    ids = [f"i{n}" for n in range(n_items)]
    streams = [rng.integers(0, n_items, 40) for _ in range(max(2000, n_items // 10))]
    neighbours = build(streams, [np.arange(40)] * len(streams), n_items)
    off = Recommender(model, ids, "v", Blend(sequence_weight=0.0, covisit_weight=0.0,
                                             rules_weight=0.0))  # fmt: skip
    on = Recommender(model, ids, "v", Blend(sequence_weight=0.0, covisit_weight=1.0,
                                            rules_weight=1.0))  # fmt: skip
    with_sessions = Recommender(model, ids, "v", Blend(sequence_weight=0.0, covisit_weight=1.0,
                                                       rules_weight=1.0, sessions_weight=1.0))
    on.neighbours = with_sessions.neighbours = neighbours
    interests = rng.normal(size=(batch, DIM)).astype(np.float32)
    recent = [[ids[i] for i in rng.integers(0, n_items, RECENT)] for _ in range(batch)]
    weights = [[1.0] * RECENT] * batch  # explained, as a worker's records are
    plain = best_seconds(lambda: off.top_k(interests, recent, K, weights))
    fused = best_seconds(lambda: on.top_k(interests, recent, K, weights))
    sessions = best_seconds(lambda: with_sessions.top_k(interests, recent, K, weights))
    return {"items": n_items, "batch": batch, "plain_ms": round(plain * 1000, 2),
            "fused_ms": round(fused * 1000, 2), "fused_x": round(fused / plain, 2),
            "fused_users_per_s": round(batch / fused),
            "sessions_ms": round(sessions * 1000, 2), "sessions_x": round(sessions / plain, 2),
            "sessions_users_per_s": round(batch / sessions)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1682, 10_000, 100_000])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with torch.inference_mode():
        rows = [measure(n, args.batch, rng) for n in args.sizes]
    write_report(args.out, "neighbour_fusion", rows, {
        "items": lambda r: f"{r['items']:,}", "users a batch": lambda r: str(r["batch"]),
        "top_k, ms": lambda r: f"{r['plain_ms']:.2f}", "fused, ms": lambda r: f"{r['fused_ms']:.2f}",
        "fused ÷ plain": lambda r: f"{r['fused_x']:.2f}×",
        "fused users/s": lambda r: f"{r['fused_users_per_s']:,}",
        "with sessions, ms": lambda r: f"{r['sessions_ms']:.2f}",
        "with sessions ÷ plain": lambda r: f"{r['sessions_x']:.2f}×",
        "with sessions, users/s": lambda r: f"{r['sessions_users_per_s']:,}",
    })  # fmt: skip


if __name__ == "__main__":
    main()
