"""The evaluator's outputs: rows as JSON, a markdown table, and NDCG@K over time as a PNG."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.report import write_report

NAME = "prequential"


def write_results(rows: list[dict[str, Any]], out: Path, title: str, k: int = 10) -> Path:
    """Write ``prequential.{json,md,png}`` under ``out``; return the plot's path."""
    rows = against_best_baseline(rows, k)
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
            "÷ best baseline": lambda r: _ratio(r.get("vs_best_baseline")),
            "lowest window ÷ its best baseline (window)": lambda r: "-"
            if r.get("worst_window_vs_best") is None
            else f"{_ratio(r['worst_window_vs_best'][1])} ({r['worst_window_vs_best'][0]})",
            "tested": lambda r: f"{r['tested']:,}",
            f"new items: NDCG@{k} (tested)": lambda r: "-" if "new_items" not in r
            else f"{r['new_items'][f'ndcg@{k}']:.4f} ({r['new_items']['tested']:,})",
            "events/s": lambda r: f"{r['events_per_s']:,}",
        },
    )
    return plot(rows, out / f"{NAME}.png", title, k)


def against_best_baseline(rows: list[dict[str, Any]], k: int = 10) -> list[dict[str, Any]]:
    """Each row with its NDCG@K over the best baseline's (``vs_best_baseline``) and its lowest
    such ratio in any window against the best baseline of that window (``worst_window_vs_best``:
    1-based window, ratio): the bar a policy must clear on every log. Unchanged without a
    baseline row."""
    key = f"ndcg@{k}"
    baselines = [r for r in rows if r.get("baseline")]
    if not baselines:
        return rows
    best = max(r[key] for r in baselines)
    windows = [max(r["windows"][w][key] for r in baselines)
               for w in range(min(len(r["windows"]) for r in baselines))]  # fmt: skip
    out = []
    for row in rows:
        ratios = [(w + 1, row["windows"][w][key] / top) for w, top in enumerate(windows)
                  if w < len(row["windows"]) and top > 0]  # fmt: skip
        out.append({
            **row,
            "vs_best_baseline": row[key] / best if best > 0 else None,
            "worst_window_vs_best": min(ratios, key=lambda r: r[1]) if ratios else None,
        })
    return out


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}×"


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
