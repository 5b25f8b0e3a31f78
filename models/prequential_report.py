"""The evaluator's outputs: rows as JSON, a markdown table, and NDCG@K over time as a PNG."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.report import write_report

NAME = "prequential"


def write_results(rows: list[dict[str, Any]], out: Path, title: str, k: int = 10) -> Path:
    """Write ``prequential.{json,md,png}`` under ``out``; return the plot's path."""
    write_report(
        out,
        NAME,
        rows,
        {
            "policy": lambda r: r["policy"],
            f"HR@{k}": lambda r: f"{r[f'hr@{k}']:.4f}",
            f"NDCG@{k}": lambda r: f"{r[f'ndcg@{k}']:.4f}",
            f"MRR@{k}": lambda r: f"{r[f'mrr@{k}']:.4f}",
            "coverage": lambda r: f"{r['coverage']:.3f}",
            "novelty (mean pop. rank)": lambda r: f"{r['novelty']:.0f}",
            "ILD": lambda r: "-" if r.get("diversity") is None or r["diversity"] != r["diversity"]
            else f"{r['diversity']:.3f}",
            "tested": lambda r: f"{r['tested']:,}",
            "events/s": lambda r: f"{r['events_per_s']:,}",
        },
    )
    return plot(rows, out / f"{NAME}.png", title, k)


def plot(rows: list[dict[str, Any]], path: Path, title: str, k: int = 10) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on workers or CI
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.get_cmap("tab20").colors
    # Windows hold equal numbers of tested events, so they sit evenly on the x axis, labelled
    # with the event time each ends at (real logs are bursty: time itself would squash them).
    ends = [w["end_ts"] for w in rows[0]["windows"]]
    for n, row in enumerate(rows):
        product = row["policy"].startswith("interest")  # baselines dashed, the product solid
        ax.plot(
            range(1, len(row["windows"]) + 1),
            [w[f"ndcg@{k}"] for w in row["windows"]],
            color=colors[n % len(colors)],
            linestyle="-" if product else "--",
            marker="o" if product else "s",
            markersize=3,
            label=row["policy"],
        )
    ax.set_xticks(range(1, len(ends) + 1))
    ax.set_xticklabels(
        [datetime.fromtimestamp(ts / 1000, timezone.utc).strftime("%Y-%m-%d") for ts in ends],
        rotation=30,
        ha="right",
    )
    ax.set_title(title)
    ax.set_xlabel("window of tested events (equal counts), labelled by its last event time")
    ax.set_ylabel(f"NDCG@{k} in window")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
