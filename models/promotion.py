"""The promotion gate's estimator: would a new model version's lists earn fewer positives than
the serving version's, on the lists an epsilon-greedy worker logged and the feedback to them?

Each model's policy is its greedy top K for the logged list's context. Its value is estimated
from the logs by inverse propensity over the items the logged list showed, under the usual
slate assumption that an item's chance of a positive does not depend on its slot or its
neighbours: an item the target would show counts its positive divided by the chance the
logging policy showed it at all. That chance is the record's ``propensity`` for an item it did
not explore (1 outside the exploring slots, 1 - epsilon in them) and, for an explored one, its
propensity times the exploring slots (each slot draws uniformly from the same pool). A target
item the logging policy could never have shown (outside its top K and pool) has no support:
the estimate cannot see it, which the ``support`` figure shows (the mean of the weights, 1 when
every target item was possible; self-normalised IPS divides by it).

Paired over the same lists, the 95% bootstrap interval of the candidate's SNIPS minus the
serving version's decides, as a non-inferiority test: promoted only when the interval's lower
end is at least ``-margin`` times the serving estimate (at 95%, the candidate is no more than
``margin`` worse); held back when it may be worse than that, when too few lists have feedback,
or when the candidate's support is too low to judge.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from models.off_policy import LoggedList

RESAMPLES = 1000


@dataclass(frozen=True)
class GateConfig:
    min_lists: int = 500  # logged lists with a known context before the gate judges
    min_positives: int = 20  # lists among them with a positive
    min_support: float = 0.5  # the candidate's mean weight, below which it cannot be judged
    margin: float = 0.05  # relative: how much worse than serving still counts as not worse


class Decision(NamedTuple):
    promote: bool
    reason: str  # "promoted", "may_be_worse", "too_little_feedback" or "unsupported"
    detail: str
    estimates: dict


def inclusion(logged: LoggedList) -> np.ndarray:
    """Each shown item's chance of being in the list at all under the logging policy."""
    exploring = min(logged.budget, len(logged.items))
    return np.where(logged.explored, logged.propensity * max(1, exploring), logged.propensity)


def list_terms(lists: Sequence[LoggedList], positives: Sequence[set[str]],
               targets: Sequence[set[str]]) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per list: the target's weighted positives over K, and its weights' sum over K."""
    values, weights = np.zeros(len(lists)), np.zeros(len(lists))
    for n, (logged, chosen, target) in enumerate(zip(lists, positives, targets)):
        w = np.array([item in target for item in logged.items], dtype=np.float64)
        w /= inclusion(logged)
        reward = np.array([item in chosen for item in logged.items], dtype=np.float64)
        values[n] = float((w * reward).sum()) / logged.k
        weights[n] = float(w.sum()) / logged.k
    return values, weights


def compare(lists: Sequence[LoggedList], positives: Sequence[set[str]],
            serving: Sequence[set[str]], candidate: Sequence[set[str]],
            seed: int = 0) -> dict:  # fmt: skip
    """Both versions' IPS and SNIPS on the same lists, their support, and the 95% bootstrap
    interval of the candidate's SNIPS minus the serving version's."""
    sv, sw = list_terms(lists, positives, serving)
    cv, cw = list_terms(lists, positives, candidate)
    draws = np.random.default_rng(seed).integers(0, len(lists), size=(RESAMPLES, len(lists)))

    def snips(v: np.ndarray, w: np.ndarray) -> np.ndarray:
        total = w[draws].sum(axis=1)
        return v[draws].sum(axis=1) / np.where(total > 0, total, np.inf)

    diff = snips(cv, cw) - snips(sv, sw)
    return {
        "lists": len(lists),
        "lists_with_positives": int(sum(bool(p) for p in positives)),
        "serving_ips": float(sv.mean()), "candidate_ips": float(cv.mean()),
        "serving_snips": float(sv.sum() / sw.sum()) if sw.sum() else 0.0,
        "candidate_snips": float(cv.sum() / cw.sum()) if cw.sum() else 0.0,
        "serving_support": float(sw.mean()), "candidate_support": float(cw.mean()),
        "difference_ci": [float(x) for x in np.percentile(diff, [2.5, 97.5])],
    }


def decide(lists: Sequence[LoggedList], positives: Sequence[set[str]],
           serving: Sequence[set[str]], candidate: Sequence[set[str]],
           config: GateConfig = GateConfig(), seed: int = 0) -> Decision:  # fmt: skip
    """Promote or hold back the candidate (see the module docstring); ``positives``,
    ``serving`` and ``candidate`` are per list: its positive items, and each version's top K
    for the list's context."""
    chosen = list(positives)
    with_positives = sum(bool(p) for p in chosen)
    if len(lists) < config.min_lists or with_positives < config.min_positives:
        return Decision(False, "too_little_feedback", f"{len(lists)} logged lists, "
                        f"{with_positives} with a positive (the gate needs {config.min_lists} "
                        f"and {config.min_positives})", {})  # fmt: skip
    estimates = compare(lists, chosen, serving, candidate, seed)
    if estimates["candidate_support"] < config.min_support:
        return Decision(False, "unsupported", f"support {estimates['candidate_support']:.2f} < "
                        f"{config.min_support}: the candidate's lists leave what the logs "
                        "explored", estimates)  # fmt: skip
    low, high = estimates["difference_ci"]
    bound = -config.margin * estimates["serving_snips"]
    said = (f"SNIPS {estimates['candidate_snips']:.5f} vs serving "
            f"{estimates['serving_snips']:.5f}, difference 95% CI [{low:.5f}, {high:.5f}]")
    if low < bound:
        return Decision(False, "may_be_worse", f"{said}: below {bound:.5f}", estimates)
    return Decision(True, "promoted", said, estimates)
