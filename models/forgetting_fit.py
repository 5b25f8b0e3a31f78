"""Pick the forgetting function a log wants: each family over a small grid, on both clocks,
scored by the prequential NDCG@k of the interest policy (models/forgetting_policy.py).

The fit must not see the tested part of the stream, so ``streamrec evaluate --fit-forgetting``
runs it on :func:`holdout_of` the warm-up: a model trained on the warm-up's first part serves
its last part, whose events are the tests. The coarse grid is refined around each family's
best point on each clock (steps of 10-25%), so a parameter comes out within a step of the best
one on the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from core.forgetting import CLOCKS, Forgetting
from core.interest import InterestConfig
from models.blend import Blend
from models.forgetting_policy import forgetting_policies
from models.prequential import run_prequential
from models.product import ModelVersions
from models.stream import Stream

HOUR_MS, DAY_MS = 3600e3, 86400e3
# scales of each family on each clock: events, or ms of event time
_SCALES = {
    ("exponential", "events"): [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32],
    ("power", "events"): [0.5, 1, 2, 4, 8],
    ("window", "events"): [3, 5, 8, 12, 20, 30, 50, 80],
    ("growth", "events"): [2, 3, 5, 8, 12, 20, 30, 50],
    ("exponential", "time"): [h * HOUR_MS for h in (1, 6, 24, 7 * 24, 30 * 24)],
    ("power", "time"): [HOUR_MS, DAY_MS, 7 * DAY_MS],
    ("window", "time"): [DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 180 * DAY_MS],
    ("growth", "time"): [DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 180 * DAY_MS],
}
_ALPHAS = (0.5, 1.0, 1.5, 2.0)
_REFINE_SCALE = (0.8, 0.9, 1.1, 1.25)
_REFINE_ALPHA = (0.8, 0.9, 1.1, 1.25)


def default_grid(clocks: Sequence[str] = CLOCKS) -> list[Forgetting]:
    """Every family's coarse grid on each of ``clocks`` (the power law also over alpha)."""
    return [
        Forgetting(family, float(scale), clock, alpha)
        for (family, clock), scales in _SCALES.items() if clock in clocks
        for scale in scales
        for alpha in (_ALPHAS if family == "power" else (1.0,))
    ]  # fmt: skip


def refined(best: Forgetting) -> list[Forgetting]:
    """Neighbours of a family's best grid point: its scale (and a power law's alpha) nudged."""
    near = [replace(best, scale=best.scale * s) for s in _REFINE_SCALE]
    if best.family == "power":
        near += [replace(best, alpha=best.alpha * a) for a in _REFINE_ALPHA]
    return near


@dataclass(frozen=True)
class ForgettingFit:
    """Every function tried with its NDCG@k on the fit's stream, best first."""

    scores: tuple[tuple[Forgetting, float], ...]
    k: int
    tested: int

    @property
    def winner(self) -> Forgetting:
        return self.scores[0][0]

    def best_of_each(self) -> list[tuple[Forgetting, float]]:
        """Each family's best function on each clock, best first."""
        seen: set[tuple[str, str]] = set()
        out = []
        for forgetting, score in self.scores:
            if (forgetting.family, forgetting.clock) not in seen:
                seen.add((forgetting.family, forgetting.clock))
                out.append((forgetting, score))
        return out

    def table(self) -> str:
        """Markdown: each family's best on each clock, and its NDCG against the winner's."""
        top = self.scores[0][1]
        lines = [f"| forgetting | NDCG@{self.k} | vs winner |", "|---|---:|---:|"]
        lines += [f"| {f.label} | {s:.4f} | {s / top if top else float('nan'):.3f}× |"
                  for f, s in self.best_of_each()]  # fmt: skip
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: the winner (its function and NDCG), each family's best, every score."""
        return {
            "winner": {**self.winner.to_dict(), f"ndcg@{self.k}": self.scores[0][1]},
            "tested": self.tested,
            "runners_up": [{**f.to_dict(), f"ndcg@{self.k}": s}
                           for f, s in self.best_of_each()[1:]],  # fmt: skip
            "all": [{"label": f.label, f"ndcg@{self.k}": s} for f, s in self.scores],
        }


def holdout_of(stream: Stream, share: float = 0.25) -> Stream:
    """The warm-up alone, its last ``share`` tested (its first part trains the fit's model)."""
    return Stream.of(stream.warmup_events, warmup=1.0 - share)


def fit_forgetting(
    stream: Stream,
    versions: ModelVersions,
    interest: InterestConfig,
    blend: Blend,
    grid: Sequence[Forgetting],
    k: int = 10,
    refine: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> ForgettingFit:
    """Score every function of ``grid`` on ``stream``'s tested events (one replay), then, with
    ``refine``, the neighbours of each family's best on each clock (a second replay)."""
    scores = _scores(stream, versions, interest, blend, list(grid), k, on_progress)
    if refine:
        found = ForgettingFit(tuple(sorted(scores.items(), key=lambda fs: -fs[1])), k, 0)
        near = [f for best, _ in found.best_of_each() for f in refined(best) if f not in scores]
        scores |= _scores(stream, versions, interest, blend, near, k, on_progress)
    ranked = sorted(scores.items(), key=lambda fs: (-fs[1], fs[0].label))
    return ForgettingFit(tuple(ranked), k, int(stream.tested.sum()))


def _scores(stream: Stream, versions: ModelVersions, interest: InterestConfig, blend: Blend,
            grid: list[Forgetting], k: int,
            on_progress: Callable[[str], None] | None) -> dict[Forgetting, float]:  # fmt: skip
    if not grid:
        return {}
    if on_progress:
        on_progress(f"forgetting fit: {len(grid)} functions over "
                    f"{int(stream.tested.sum()):,} tested events")  # fmt: skip
    policies = forgetting_policies(versions, interest, blend, grid)
    rows = run_prequential(stream, policies, k, windows=1)
    return {p.forgetting: float(np.float64(row[f"ndcg@{k}"])) for p, row in zip(policies, rows)}
