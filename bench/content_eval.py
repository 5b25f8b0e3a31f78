"""Content vectors against none: prequential NDCG@10 overall and on the events of new items.

    .venv/bin/python bench/content_eval.py --pair "ML-100K=OFF_DIR,ON_DIR" \\
        --pair "ML-1M part=OFF_DIR,ON_DIR" --out docs/img/content-vectors.png

Each pair is two `streamrec evaluate --out` directories of the same data, policies and model
updates, the second run with ``--catalog`` (content vectors from the item catalog), the first
without. Every policy both runs have gets a row: NDCG@10 overall and on the new-item slice (the
tested events whose item was first seen after the warm-up, models/prequential.py) without and
with content, and their ratios. Writes the table (markdown and JSON beside the plot, by
core.report) and a plot of both slices.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

from core.report import write_report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


CONTENT_SOURCE = " + content-knn"  # what `sources` adds to its name with --catalog


def rows_of(run: Path) -> dict[str, dict]:
    """Each policy's row by name; `sources` by its name without the content source, so that its
    runs with and without the catalog pair up."""
    rows = json.loads((run / "prequential.json").read_text())
    return {row["policy"].removesuffix(CONTENT_SOURCE): row for row in rows}


def compare(name: str, off: Path, on: Path, k: int = 10) -> list[dict]:
    """A row per policy of both runs: its NDCG@k overall and on new items, off and on."""
    without, with_content = rows_of(off), rows_of(on)
    key = f"ndcg@{k}"
    rows = []
    for policy, a in without.items():
        b = with_content.get(policy)
        if b is None or "new_items" not in a or "new_items" not in b:
            continue
        rows.append({
            "data": name, "policy": policy, "baseline": a["baseline"],
            "overall_off": a[key], "overall_on": b[key],
            "new_off": a["new_items"][key], "new_on": b["new_items"][key],
            "new_tested": a["new_items"]["tested"], "tested": a["tested"],
        })
    return rows


def ratio(on: float, off: float) -> str:
    return f"{on / off:.2f}×" if off else ("-" if not on else "new")


def plot(rows: list[dict], path: Path) -> None:
    product = [r for r in rows if not r["baseline"]]
    labels = [f"{r['data']}\n{r['policy'].replace(' + ', chr(10) + '+ ')}" for r in product]
    fig, axes = plt.subplots(1, 2, figsize=(max(10, 3.2 * len(product)), 5))
    for ax, (slice_name, off, on) in zip(axes, [("all tested events", "overall_off", "overall_on"),
                                                ("events of new items", "new_off", "new_on")]):
        xs = range(len(product))
        ax.bar([x - 0.2 for x in xs], [r[off] for r in product], 0.4, label="without content")
        ax.bar([x + 0.2 for x in xs], [r[on] for r in product], 0.4, label="with content")
        ax.set_xticks(list(xs), labels, fontsize=8)
        for x, r in zip(xs, product):  # the values: a slice near 0 is otherwise invisible
            ax.annotate(f"{r[off]:.4f}\n{r[on]:.4f}", (x, max(r[off], r[on])), ha="center",
                        va="bottom", fontsize=7)
        ax.set_title(f"NDCG@10, {slice_name}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pair", action="append", required=True, metavar="NAME=OFF,ON",
                        help="a data set's runs without and with --catalog")
    parser.add_argument("--out", type=Path, default=Path("docs/img/content-vectors.png"))
    args = parser.parse_args(argv)
    rows = []
    for spec in args.pair:
        name, _, dirs = spec.partition("=")
        off, _, on = dirs.partition(",")
        if not (name and off and on):
            parser.error(f"--pair {spec!r}: want NAME=OFF_DIR,ON_DIR")
        had = {(r["data"], r["policy"]) for r in rows}  # a policy two pairs of a set both ran
        rows += [r for r in compare(name, Path(off), Path(on)) if (name, r["policy"]) not in had]
    if not rows:
        parser.error("no policy is in both runs of a pair with a new-item slice")
    write_report(args.out.parent, args.out.stem, rows, {
        "data": lambda r: r["data"],
        "policy": lambda r: r["policy"],
        "NDCG@10 without": lambda r: f"{r['overall_off']:.4f}",
        "with content": lambda r: f"{r['overall_on']:.4f}",
        "÷": lambda r: ratio(r["overall_on"], r["overall_off"]),
        "new items: without": lambda r: f"{r['new_off']:.4f}",
        "with content ": lambda r: f"{r['new_on']:.4f}",
        "÷ ": lambda r: ratio(r["new_on"], r["new_off"]),
        "new-item events / tested": lambda r: f"{r['new_tested']:,} / {r['tested']:,}",
    })
    plot(rows, args.out)
    print(f"wrote {args.out} and its table beside it")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
