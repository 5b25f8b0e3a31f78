"""Freshness against quality: prequential NDCG@10 against how often the model is updated.

    .venv/bin/python bench/update_interval.py --run 100=DIR --run 1000=DIR --run 10000=DIR \\
        --run frozen=DIR [--policy "interest h=2ev"] --out docs/img/update-interval-ml-100k.png

Each DIR is a `streamrec evaluate --out` directory of the same data and policy, run with that
``--retrain-every`` (``frozen``: the warm-up's model throughout). Prints a markdown table and
writes the plot (Monolith's freshness table, on our data and our update), with its figures as
JSON and the table beside it (core.report). Runs made with ``--item-learning`` also hold "<policy> + online items" (every event
moves its item's vector between versions): that is the second column and line.

``RECIPE:INTERVAL=DIR`` names the update recipe of a run (default "window 10,000": each update
on the newest 10,000 events); each recipe is a line of its own, frozen a dashed line across.
``--point [RECIPE:]INTERVAL=N,H,L[,N,H]`` adds a point from figures already published (NDCG@10,
HR@10, last window NDCG@10, and with online items NDCG@10 and last window) where its run
directory is not on this machine; the table marks it with *.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import matplotlib

from core.report import write_report

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEFAULT_RECIPE = "window 10,000"


class Point(NamedTuple):
    recipe: str
    interval: str  # events between versions, or "frozen"
    ndcg: float
    hr: float
    last: float
    items_ndcg: float | None
    items_last: float | None
    published: bool  # from --point, not from a run directory here

    @property
    def order(self) -> float:
        return float("inf") if self.interval == "frozen" else int(self.interval)


def split(spec: str) -> tuple[str, str, str]:
    """``[RECIPE:]INTERVAL=VALUE`` -> (recipe, interval, value)."""
    key, value = spec.split("=", 1)
    recipe, _, interval = key.rpartition(":")
    if interval != "frozen" and not interval.isdigit():
        raise ValueError(f"{spec}: the interval is a number of events or 'frozen', not {interval!r}")
    return recipe or DEFAULT_RECIPE, interval, value


def from_run(spec: str, policy: str) -> Point:
    recipe, interval, path = split(spec)
    results = {r["policy"]: r for r in json.loads((Path(path) / "prequential.json").read_text())}
    row, items = results[policy], results.get(f"{policy} + online items")
    return Point(recipe, interval, row["ndcg@10"], row["hr@10"], row["windows"][-1]["ndcg@10"],
                 items["ndcg@10"] if items else None,
                 items["windows"][-1]["ndcg@10"] if items else None, False)  # fmt: skip


def from_figures(spec: str) -> Point:
    recipe, interval, figures = split(spec)
    values = [float(v) for v in figures.split(",")]
    if len(values) not in (3, 5):
        raise ValueError(f"--point {spec}: give 3 or 5 figures, not {len(values)}")
    return Point(recipe, interval, *values, *([None, None] if len(values) == 3 else []), True)


def cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_table(points: list[Point], out: Path) -> None:
    """The points as ``out``'s stem .json and .md beside the plot (core.report's format)."""
    rows = [p._asdict() for p in points]
    write_report(out.parent, out.stem, rows, {
        "update every": lambda r: ("frozen" if r["interval"] == "frozen" else
                                   f"{int(r['interval']):,} events, {r['recipe']}")
                                  + "*" * r["published"],
        "NDCG@10": lambda r: cell(r["ndcg"]),
        "HR@10": lambda r: cell(r["hr"]),
        "last window NDCG@10": lambda r: cell(r["last"]),
        "+ online items NDCG@10": lambda r: cell(r["items_ndcg"]),
        "+ online items last window": lambda r: cell(r["items_last"]),
    })  # fmt: skip
    if any(p.published for p in points):
        print("\n\\* from figures already published (`--point`), not a run directory here")


def plot(points: list[Point], policy: str, title: str, out: Path) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    recipes = list(dict.fromkeys(p.recipe for p in points if p.interval != "frozen"))
    for items, marker in ((False, "o"), (True, "s")):
        for n, recipe in enumerate(recipes):
            line = sorted((p.order, p.items_ndcg if items else p.ndcg) for p in points
                          if p.recipe == recipe and p.interval != "frozen"
                          and (p.items_ndcg is not None or not items))  # fmt: skip
            if line:
                ax.plot(*zip(*line), f"{marker}{'-' if n == 0 else ':'}",
                        label=f"{recipe}{' + online items' if items else ''}")  # fmt: skip
        for p in points:
            if p.interval == "frozen" and (p.items_ndcg is not None or not items):
                ax.axhline(p.items_ndcg if items else p.ndcg, color="grey" if items else "black",
                           linestyle="--", label=f"frozen{' + online items' if items else ''}")
    ax.set_xscale("log")
    ax.set_xlabel("events between model versions")
    ax.set_ylabel(f"NDCG@10 ({policy})")
    ax.set_title(f"{title}: freshness against quality (prequential)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", default=[], metavar="[RECIPE:]INTERVAL=DIR")
    parser.add_argument("--point", action="append", default=[],
                        metavar="[RECIPE:]INTERVAL=N,H,L[,N,H]")  # fmt: skip
    parser.add_argument("--policy", default="interest h=2ev")
    parser.add_argument("--title", default="ML-100K")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not args.run and not args.point:
        parser.error("give at least one --run or --point")
    try:
        points = [from_run(s, args.policy) for s in args.run] + [from_figures(s) for s in args.point]
    except (ValueError, KeyError, OSError) as error:
        parser.error(str(error))
    points.sort(key=lambda p: (p.order, p.recipe))
    write_table(points, args.out)
    plot(points, args.policy, args.title, args.out)
    print(f"wrote {args.out} and its .json and .md")


if __name__ == "__main__":
    main()
