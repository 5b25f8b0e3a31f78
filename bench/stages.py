"""Where a micro-batch's time goes, in-process: parse, apply to state, score, build records.

    .venv/bin/python bench/stages.py [--events 30000] [--threads 2] [--lists]

The worker's own step functions (streams/steps/users.py, streams/steps/records.py) on the throughput
benchmark's catalog and events (bench/throughput.py), in batches of 500, with a dict for the
user table: no broker, no Faust, so the figures are our code's alone. ``--lists`` also runs
the lists of models/slates.py the way a worker makes them with exploration (epsilon, UCB,
Thompson, 1 of 10 slots) and MMR diversity, each over the same batches, the item statistics of
the events known. Writes bench/results/stages.{json,md}: µs per event of each stage.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from core.events import encode_event
from core.generator import generate
from core.item_stats import ItemStats
from core.report import write_report
from models.artifact import load_recommender
from models.exploration import Exploration
from models.item_board import ItemBoard
from models.slates import ListRules
from models.train import TrainConfig, train
from streams.steps import records
from streams.steps.parse import parse_batch
from streams.steps.users import apply_users
from streams.worker.app import settle_gc
from streams.steps.parse import Fetched
from streams.settings import Settings
from throughput import CATALOG  # bench/ is on sys.path when run as a script


class Table(dict):
    def get(self, key: bytes) -> bytes | None:  # the StateTable protocol on a dict
        return dict.get(self, key)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2, help="Torch threads (the worker: 1)")
    parser.add_argument("--lists", action="store_true", help="also exploring and MMR lists")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings()
    generated = generate(CATALOG)
    model = Path(tempfile.mkdtemp(prefix="stages-")) / "model"
    train(generated[: len(generated) // 2], settings.interest, settings.blend,
          TrainConfig(model="mf", dim=64, epochs=3), model, show_progress=False)  # fmt: skip
    rec = load_recommender(model, settings.blend)
    config = settings.steps
    events = (generated[len(generated) // 2:] * 2)[: args.events]
    messages = [Fetched(e.user_id.encode(), encode_event(e), 0, n, e.ts / 1000.0 + 1, "events")
                for n, e in enumerate(events)]  # fmt: skip
    writer = records.ItemsWriter(rec.item_ids)
    board = ItemBoard(settings.popularity_half_life_s * 1000.0)
    counts: dict[str, int] = {}
    for e in events:
        counts[e.item_id] = counts.get(e.item_id, 0) + 1
    board.update({i: ItemStats(impressions=5 * n, positives=n, popularity=float(n))
                  for i, n in counts.items()})  # fmt: skip
    configs = {"greedy (the default)": ListRules()}
    if args.lists:
        configs |= {f"{name}, 1 of 10 slots": ListRules(Exploration(name)) for name in
                    ("epsilon", "ucb", "thompson")}  # fmt: skip
        configs["MMR, lambda 0.7"] = ListRules(mmr_lambda=0.7)
    settle_gc()
    rows = [run_lists(name, rules, board, messages, rec, config, writer, args)
            for name, rules in configs.items()]  # fmt: skip
    write_report(args.out, "stages", rows, {
        "lists": lambda r: r["lists"],
        "events": lambda r: f"{r['events']:,}",
        "torch threads": lambda r: str(r["threads"]),
        "parse µs/event": lambda r: f"{r['parse_us']:.1f}",
        "apply µs/event": lambda r: f"{r['apply_us']:.1f}",
        "score µs/event": lambda r: f"{r['score_us']:.1f}",
        "records µs/event": lambda r: f"{r['records_us']:.1f}",
        "total µs/event": lambda r: f"{r['total_us']:.1f}",
    })


def run_lists(name: str, rules: ListRules, board: ItemBoard, messages: list, rec, config,
              writer: records.ItemsWriter, args: argparse.Namespace) -> dict:  # fmt: skip
    """One pass over the events with a fresh user table, the lists made by ``rules``."""
    table = Table()
    spent = dict.fromkeys(("parse", "apply", "score", "records"), 0.0)
    for start in range(0, len(messages), args.batch):
        batch = messages[start : start + args.batch]
        began = time.perf_counter()
        parsed = parse_batch(batch, rec.index, config.max_future_ms, config.max_abs_value)
        parsed_at = time.perf_counter()
        done = apply_users(parsed, table, rec.item_vector, rec.dim, config,
                                 codebook=rec.codebook, model_tag=rec.tag)  # fmt: skip
        applied_at = time.perf_counter()
        ids = records.record_ids(done.snapshots)
        scored = records.serve(rec, done.snapshots, config.top_k, rules, board, ids)
        scored_at = time.perf_counter()
        records.recommendation_records(done.snapshots, scored, rec.version, writer=writer,
                                       ids=ids, exploration=rules.exploration)  # fmt: skip
        spent["parse"] += parsed_at - began
        spent["apply"] += applied_at - parsed_at
        spent["score"] += scored_at - applied_at
        spent["records"] += time.perf_counter() - scored_at
    return {"lists": name, "events": len(messages), "threads": args.threads,
            **{f"{k}_us": round(v / len(messages) * 1e6, 1) for k, v in spent.items()},
            "total_us": round(sum(spent.values()) / len(messages) * 1e6, 1)}  # fmt: skip


if __name__ == "__main__":
    main()
