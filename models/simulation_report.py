"""What `streamrec simulate` writes: simulation.{json,md} and the two plots."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from core.report import write_report
from models.simulation import Result

NAME = "simulation"


def rows_of(results: Sequence[Result]) -> list[dict]:
    return [{
        "policy": r.policy, "steps": len(r.clicks), "clicks": int(r.clicks.sum()),
        "click_rate": float(r.clicks.mean() / 10), "regret": float(r.regret.sum()),
        "coverage": float(r.coverage[-1]), "diversity": r.diversity,
    } for r in results]  # fmt: skip


def write_simulation(results: Sequence[Result], ope: list[dict], out: Path) -> str:
    """The table (and JSON, with the off-policy check), the cumulative-clicks and coverage
    plots; returns the markdown."""
    rows = rows_of(results)
    table = write_report(out, NAME, rows, {
        "policy": lambda r: r["policy"],
        "steps": lambda r: f"{r['steps']:,}",
        "clicks": lambda r: f"{r['clicks']:,}",
        "× greedy": lambda r: _ratio(r, rows),
        "regret (expected clicks)": lambda r: f"{r['regret']:,.0f}",
        "catalog coverage": lambda r: f"{r['coverage']:.3f}",
        "intra-list diversity": lambda r: f"{r['diversity']:.3f}",
    })  # fmt: skip
    (out / f"{NAME}-ope.json").write_text(__import__("json").dumps(ope, indent=2))
    _plot(results, out)
    return table


def _ratio(row: dict, rows: list[dict]) -> str:
    greedy = next((r["clicks"] for r in rows if r["policy"] == "greedy"), None)
    return f"{row['clicks'] / greedy:.2f}" if greedy else ""


def _plot(results: Sequence[Result], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    for name, series, label in (("clicks", lambda r: np.cumsum(r.clicks), "cumulative clicks"),
                                ("coverage", lambda r: r.coverage, "catalog coverage")):  # fmt: skip
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for r in results:
            ax.plot(np.arange(1, len(r.clicks) + 1), series(r), label=r.policy)
        ax.set_xlabel("step (one list of 10 shown)")
        ax.set_ylabel(label)
        ax.set_title(f"Click simulator: {label} per policy")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / f"{NAME}-{name}.png", dpi=110)
        plt.close(fig)
