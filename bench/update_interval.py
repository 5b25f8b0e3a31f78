"""Freshness against quality: prequential NDCG@10 against how often the model is updated.

    .venv/bin/python bench/update_interval.py --run 100=DIR --run 1000=DIR --run 10000=DIR \\
        --run frozen=DIR [--policy "interest h=2ev"] --out docs/img/update-interval-ml-100k.png

Each DIR is a `streamrec evaluate --out` directory of the same data and policy, run with that
``--retrain-every`` (``frozen``: the warm-up's model throughout). Prints a markdown table and
writes the plot (Monolith's freshness table, on our data and our update). Runs made with
``--item-learning`` also hold "<policy> + online items" (every event moves its item's vector
between versions): that is the second column and line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, metavar="INTERVAL=DIR")
    parser.add_argument("--policy", default="interest h=2ev")
    parser.add_argument("--title", default="ML-100K")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    online = f"{args.policy} + online items"
    rows = []
    for spec in args.run:
        label, path = spec.split("=", 1)
        results = {r["policy"]: r for r in json.loads((Path(path) / "prequential.json").read_text())}
        row, items = results[args.policy], results.get(online)
        rows.append((label, row["ndcg@10"], row["hr@10"], row["windows"][-1]["ndcg@10"],
                     items["ndcg@10"] if items else None,
                     items["windows"][-1]["ndcg@10"] if items else None))
    print("| update every | NDCG@10 | HR@10 | last window NDCG@10 | + online items NDCG@10 "
          "| + online items last window |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, ndcg, hr, last, with_items, items_last in rows:
        name = label if label == "frozen" else f"{int(label):,} events"
        extra = "" if with_items is None else f"{with_items:.4f} | {items_last:.4f}"
        print(f"| {name} | {ndcg:.4f} | {hr:.4f} | {last:.4f} | {extra or ' | '} |")
    fig, ax = plt.subplots(figsize=(6, 4))
    for column, name, style in ((1, "warm-start + replay", "o-"),
                                (4, "warm-start + replay + online items", "s-")):  # fmt: skip
        updated = sorted((int(r[0]), r[column]) for r in rows
                         if r[0] != "frozen" and r[column] is not None)  # fmt: skip
        if updated:
            line, = ax.plot([i for i, _ in updated], [n for _, n in updated], style, label=name)
            for r in rows:
                if r[0] == "frozen" and r[column] is not None:
                    ax.axhline(r[column], color=line.get_color(), linestyle="--",
                               label=f"frozen{' + online items' if column == 4 else ''}")
    ax.set_xscale("log")
    ax.set_xlabel("events between model versions")
    ax.set_ylabel(f"NDCG@10 ({args.policy})")
    ax.set_title(f"{args.title}: freshness against quality (prequential)")
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
