"""Off-policy evaluation on logged recommendation records: from the lists an epsilon-greedy
policy showed (each item with its propensity and whether it was explored) and the feedback
that answered them (events carrying the record's ``rec_id``), estimate the per-slot positive
rate another policy of the same family (another epsilon; greedy is epsilon 0) would have had,
without showing it to anyone.

Per slot, the importance weight is the target's probability of the logged item over the
logging policy's (its ``propensity``): a slot that does not explore weighs 1; in an exploring
slot, a kept item weighs (1 - e') / (1 - e) and an explored one e' / e (both policies draw it
uniformly from the same pool, so the pool size cancels). A list's value is its weighted
positives over K. IPS is the mean value; self-normalised IPS divides it by the mean weight
(lower variance, a small bias), as in the Open Bandit Pipeline. The 95% intervals are
percentile bootstraps over the lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

RESAMPLES = 1000


@dataclass(frozen=True)
class LoggedList:
    """One logged record: its items in slot order, their propensities and explored flags."""

    items: tuple[str, ...]
    propensity: np.ndarray  # (n,)
    explored: np.ndarray  # (n,) bool
    epsilon: float
    budget: int
    k: int  # the list length asked for (slots an item could fill)


def logged_lists(records: Iterable[Mapping], k: int) -> tuple[dict[str, LoggedList], int]:
    """The epsilon-greedy records by ``rec_id`` (a record sent again keeps its id: the last
    copy wins, the same list), and how many were left out: records of other policies, and
    trending lists (a cold user's: the policy did not choose them), and anything unreadable."""
    out: dict[str, LoggedList] = {}
    other = 0
    for record in records:
        try:
            policy = record.get("exploration") or {}
            items = record["items"]
            if policy.get("policy") != "epsilon" or "epsilon" not in policy or any(
                    i.get("source") == "trending" for i in items):
                other += 1
                continue
            logged = LoggedList(
                tuple(str(i["item_id"]) for i in items),
                np.array([i["propensity"] for i in items], dtype=np.float64),
                np.array([i["explored"] for i in items], dtype=bool),
                float(policy["epsilon"]), int(policy["budget"]), k)  # fmt: skip
            if not (np.all((logged.propensity > 0) & (logged.propensity <= 1))
                    and 0.0 <= logged.epsilon <= 1.0):
                raise ValueError("propensities must be in (0, 1]")
            out[str(record["rec_id"])] = logged
        except (AttributeError, KeyError, TypeError, ValueError):
            other += 1  # not a record of this schema: nothing to learn from it
    return out, other


def slot_weights(logged: LoggedList, target_epsilon: float) -> np.ndarray:
    """Each filled slot's importance weight for the epsilon-greedy target ``target_epsilon``."""
    n = len(logged.items)
    weights = np.ones(n)
    exploring = np.arange(n) >= n - min(logged.budget, n)
    eps = logged.epsilon
    kept = exploring & ~logged.explored
    if eps < 1.0:
        weights[kept] = (1.0 - target_epsilon) / (1.0 - eps)
    if eps > 0.0:
        weights[logged.explored] = target_epsilon / eps
    elif target_epsilon > 0:
        raise ValueError("logs with epsilon 0 explored nothing: no other epsilon is estimable")
    return weights


def estimate(lists: Mapping[str, LoggedList], positives: Mapping[str, set[str]],
             target_epsilon: float, seed: int = 0) -> dict:  # fmt: skip
    """IPS and self-normalised IPS of the per-slot positive rate of the epsilon-greedy policy
    ``target_epsilon``, with 95% bootstrap intervals; ``positives[rec_id]`` are the items of
    that list the user engaged with positively."""
    values, weights = [], []
    for rec_id, logged in lists.items():
        w = slot_weights(logged, target_epsilon)
        chosen = positives.get(rec_id, set())
        reward = np.array([item in chosen for item in logged.items], dtype=np.float64)
        values.append(float((w * reward).sum()) / logged.k)
        weights.append(float(w.mean()) if len(w) else 1.0)
    if not values:
        raise ValueError("no epsilon-greedy records to estimate from")
    v, w = np.array(values), np.array(weights)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(v), size=(RESAMPLES, len(v)))
    ips_draws = v[draws].mean(axis=1)
    snips_draws = ips_draws / w[draws].mean(axis=1)
    return {
        "target_epsilon": target_epsilon,
        "lists": len(v),
        "ips": float(v.mean()),
        "ips_ci": [float(x) for x in np.percentile(ips_draws, [2.5, 97.5])],
        "snips": float(v.mean() / w.mean()),
        "snips_ci": [float(x) for x in np.percentile(snips_draws, [2.5, 97.5])],
    }


def observed_rate(lists: Mapping[str, LoggedList], positives: Mapping[str, set[str]]) -> float:
    """The logging policy's own per-slot positive rate (what IPS at its epsilon equals)."""
    shown = [sum(i in positives.get(r, set()) for i in logged.items) / logged.k
             for r, logged in lists.items()]  # fmt: skip
    return float(np.mean(shown)) if shown else float("nan")


def positives_of(events: Sequence, is_positive, lists: Mapping[str, LoggedList]) -> dict:
    """``rec_id -> {item}`` from feedback ``events`` (anything with ``rec_id`` and ``item_id``)
    that answer a logged list with a positive event (``is_positive(event)``) on one of its
    items; an event on an item the list did not show counts for nothing."""
    out: dict[str, set[str]] = {}
    for event in events:
        logged = lists.get(event.rec_id) if event.rec_id else None
        if logged is not None and event.item_id in logged.items and is_positive(event):
            out.setdefault(event.rec_id, set()).add(event.item_id)
    return out
