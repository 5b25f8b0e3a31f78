"""Offline comparison of every model kind and a popularity baseline on MovieLens.

    .venv/bin/python bench/offline_eval.py --datasets ../shared/datasets

Protocol (RecBole's ML-1M setting): ratings >= 3 are interactions, iterated 10-core filter on
users and items, each user's items in time order, chronological leave-one-out (second to last
validates and stops training early, last is the test), full ranking over all items with the
user's earlier items excluded, HR/NDCG/MRR@10, d = 64, max length 50.

A "KIND" row ranks by the sequence model alone. A "KIND + interest + ranker" row is what a worker
serves by default: the query adds the decayed interest vector (ratings weigh stars - 2, 7-day
half-life), and the ranker re-ranks the top 50.
Writes bench/results/offline_eval.{json,md}.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from core.interest import InterestConfig
from core.report import write_report
from core.sources import read_events
from models.blend import Blend
from models.data import interactions, popularity
from models.evaluation import held_out_metrics, leave_one_out, metrics_at, ranks
from models.ranker_training import fit_ranker, reranked_ranks
from models.registry import MODEL_KINDS
from models.train import TrainConfig, fit

DATASETS = {
    "ml-100k": "ml-100k/u.data",
    "ml-1m-users-1-2999": "ml-1m-users-1-2999/ratings.dat.gz",
}


def run(
    name: str,
    path: Path,
    kinds: list[str],
    config: TrainConfig,
    progress: bool,
    with_ranker: bool,
    half_life_ms: float,
) -> list[dict]:
    data = interactions(
        read_events(path),
        keep=lambda e: (e.value or 0) >= 3,
        weight=lambda e: e.value - 2,  # the interest vector's weight: 1, 2, 3 for 3, 4, 5 stars
        min_count=10,
    )
    train_data, val, test = leave_one_out(data)
    train = train_data.items
    shape = {
        "dataset": name,
        "users": len(data.users),
        "items": data.n_items,
        "interactions": len(data),
    }
    print(f"{name}: {shape['users']} users, {shape['items']} items, {len(data)} interactions")
    counts = torch.from_numpy(popularity(train, data.n_items))
    pop = metrics_at(ranks(lambda h: counts.expand(len(h), -1), test, config.max_len, data.n_items))
    rows = [{**shape, "model": "popularity", **pop, "train_s": 0.0, "epochs": 0}]
    for kind in kinds:
        cfg = TrainConfig(**{**config.__dict__, "model": kind})
        started = time.perf_counter()
        model, history = fit(
            train, val, data.n_items, cfg, progress, None if progress else lambda h: print(h, flush=True)
        )
        seconds = time.perf_counter() - started
        best = max(history, key=lambda h: h["val_ndcg@10"])
        rows.append(
            {
                **shape,
                "model": kind,
                **held_out_metrics(model, test),
                "val_ndcg@10": best["val_ndcg@10"],
                "train_s": round(seconds, 1),
                "epochs": len(history),
                "best_epoch": best["epoch"],
            }
        )
        print(rows[-1])
        if with_ranker:
            started = time.perf_counter()
            blend = Blend(rerank_candidates=50)
            interest = InterestConfig(half_life_ms=half_life_ms)
            ranker = fit_ranker(model, train_data, val, blend, interest, seed=config.seed)
            rank = reranked_ranks(model, ranker, test, blend, interest)
            rows.append(
                {
                    **shape,
                    "model": f"{kind} + interest + ranker",
                    **metrics_at(rank),
                    "train_s": round(seconds + time.perf_counter() - started, 1),
                    "epochs": len(history),
                    "best_epoch": best["epoch"],
                }
            )
            print(rows[-1])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--only", choices=sorted(DATASETS), action="append")
    parser.add_argument(
        "--models", nargs="+", default=sorted(MODEL_KINDS), choices=sorted(MODEL_KINDS)
    )
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--device", default="cpu", help="Where models train: cpu, cuda.")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-ranker", action="store_true", help="Skip the '+ ranker' rows.")
    parser.add_argument(
        "--half-life-days", type=float, default=7.0, help="Ranker's interest decay."
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig(
        dim=64,
        max_len=50,
        epochs=args.epochs,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        lr=args.lr,
        batch_size=args.batch_size,
    )
    rows = []
    for name in args.only or list(DATASETS):
        rows += run(
            name,
            args.datasets / DATASETS[name],
            args.models,
            config,
            not args.no_progress,
            not args.no_ranker,
            args.half_life_days * 86_400_000,
        )
    write_report(
        args.out,
        "offline_eval",
        rows,
        {
            "dataset": lambda r: r["dataset"],
            "users / items / interactions": lambda r: (
                f"{r['users']} / {r['items']} / {r['interactions']}"
            ),
            "model": lambda r: r["model"],
            "HR@10": lambda r: f"{r['hr@10']:.4f}",
            "NDCG@10": lambda r: f"{r['ndcg@10']:.4f}",
            "MRR@10": lambda r: f"{r['mrr@10']:.4f}",
            "epochs (best)": lambda r: f"{r['epochs']} ({r.get('best_epoch', '-')})",
            "train s": lambda r: f"{r['train_s']:.0f}",
        },
    )


if __name__ == "__main__":
    main()
