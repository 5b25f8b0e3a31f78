"""Exploration in the scoring path: which of a list's slots try items the model does not rank
first, and with what probability each item lands in its slot (its propensity, for off-policy
evaluation of other policies on the logs).

The model ranks the user's unseen candidates; the list is its top K. Only the last ``budget``
slots (default 1 of 10) explore, so at most that many items of a list are not the model's:

- ``greedy``: the model's top K, every propensity 1.
- ``epsilon``: each exploring slot independently keeps the model's item with probability
  1 - epsilon, or shows an item drawn uniformly (without repeats) from the ``pool`` candidates
  ranked after the top K. Exact propensities: 1 - epsilon for a kept item; epsilon / |pool| for a
  drawn one (each draw is uniform over the pool, whatever the other slots drew). New items
  first: when the item statistics are known and some of the pool has had fewer than
  ``new_items`` impressions, the draws are from those alone (the same rule, a smaller pool).
- ``ucb``: the exploring slots take, from the model's items for them and the pool, the highest
  upper confidence bounds on the positive rate, ``mean + c sqrt(ln(1 + N) / (1 + n))`` (n the
  item's impressions, N the sum over the candidates); deterministic, propensity 1.
- ``thompson``: the same candidates, ranked by a draw from each one's Beta posterior. The
  propensities are *estimated* by the policy's own sampling: the share of ``samples`` further
  draws that put the item in its slot (the draw shown included, so never 0).

An explored item with fewer than ``new_items`` impressions is marked ``new`` (UCB's bound and
Thompson's wide posterior already favour it). Random draws come from a generator seeded by the record's ``rec_id``, so a replay of the log
reproduces every list exactly. Pure numpy over catalog indices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from core.item_stats import beta_posterior

POLICIES = ("greedy", "epsilon", "ucb", "thompson")


@dataclass(frozen=True)
class Exploration:
    policy: str = "greedy"
    budget: int = 1  # slots of a list that may explore (the last ones)
    epsilon: float = 0.1
    ucb_c: float = 1.0
    pool: int = 100  # candidates after the model's top K that exploring slots draw from
    samples: int = 100  # Thompson: draws behind each estimated propensity
    new_items: int = 20  # impressions below which an item is new (explored first by epsilon)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"exploration policy {self.policy!r}: one of {', '.join(POLICIES)}")
        if self.budget < 0 or self.pool < 1 or self.samples < 1 or self.new_items < 0:
            raise ValueError("budget and new_items must be >= 0, pool and samples >= 1")
        if not 0.0 <= self.epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {self.epsilon}")

    def candidates(self, k: int) -> int:
        """How many of the model's ranked candidates a list of ``k`` needs."""
        return k if self.policy == "greedy" or self.budget == 0 else k + self.pool


class Slate(NamedTuple):
    """One list: catalog indices (-1: empty slot), each one's propensity, whether it was
    explored (not the model's own pick for that slot), and whether it was new to the users."""

    items: np.ndarray  # (K,) int64
    propensity: np.ndarray  # (K,) float64
    explored: np.ndarray  # (K,) bool
    new: np.ndarray  # (K,) bool: explored, with fewer than ``new_items`` impressions


def seed_of(rec_id: str) -> int:
    """The generator seed for a record: its 64-bit id (hex)."""
    return int(rec_id, 16)


def explore(ranked: np.ndarray, k: int, config: Exploration, alpha: np.ndarray,
            beta: np.ndarray, seed: int, shown: np.ndarray | None = None) -> Slate:  # fmt: skip
    """The list of ``k`` from ``ranked`` (C,), the model's unseen candidates best first (-1
    padded), with ``alpha``/``beta`` (C,) their Beta posteriors and ``shown`` (C,) their
    impressions (None: unknown, so no item counts as new)."""
    slate = _explore(ranked, k, config, alpha, beta, seed, shown)
    if shown is None or not config.new_items:
        return slate
    impressions = np.zeros(len(slate.items))
    impressions[slate.items >= 0] = shown[_positions(ranked, slate.items[slate.items >= 0])]
    return slate._replace(new=slate.explored & (impressions < config.new_items))


def _positions(ranked: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Where each of ``items`` is in ``ranked`` (each is there once)."""
    order = np.argsort(ranked, kind="stable")
    return order[np.searchsorted(ranked, items, sorter=order)]


def _explore(ranked: np.ndarray, k: int, config: Exploration, alpha: np.ndarray,
             beta: np.ndarray, seed: int, shown: np.ndarray | None) -> Slate:  # fmt: skip
    valid = ranked[ranked >= 0]
    items = np.full(k, -1, dtype=np.int64)
    top = valid[:k]
    items[: len(top)] = top
    propensity = np.ones(k)
    explored = np.zeros(k, dtype=bool)
    budget = min(config.budget, len(top))
    if config.policy == "greedy" or budget == 0:
        return Slate(items, propensity, explored, np.zeros(k, dtype=bool))
    first = len(top) - budget  # the exploring slots: first .. len(top) - 1
    rng = np.random.default_rng(seed)
    if config.policy == "epsilon":
        pool = valid[k : k + config.pool]
        if shown is not None and config.new_items:
            fresh = shown[ranked >= 0][k : k + config.pool] < config.new_items
            pool = pool[fresh] if fresh.any() else pool
        drawn = rng.permutation(len(pool))
        used = 0
        for slot in range(first, len(top)):
            if used == len(pool):
                continue  # nothing left to draw: the model's item, surely
            if rng.random() < config.epsilon:
                items[slot] = pool[drawn[used]]
                propensity[slot] = config.epsilon / len(pool)
                explored[slot] = True
                used += 1
            else:
                propensity[slot] = 1.0 - config.epsilon
        return Slate(items, propensity, explored, np.zeros(k, dtype=bool))
    # ucb and thompson choose the exploring slots among the model's picks for them and the pool
    options = np.flatnonzero(ranked >= 0)[first : k + config.pool]
    a, b = alpha[options].astype(np.float64), beta[options].astype(np.float64)
    if config.policy == "ucb":
        shown = a + b - 2.0
        bound = a / (a + b) + config.ucb_c * np.sqrt(math.log1p(shown.sum()) / (1.0 + shown))
        order = np.argsort(-bound, kind="stable")[:budget]
    else:
        order = np.argsort(-rng.beta(a, b), kind="stable")[:budget]
        again = -rng.beta(a, b, size=(config.samples, len(options)))
        if budget == 1:  # the common case: the best of each draw, no sort
            again = again.argmin(axis=1)[:, None]
        else:
            again = np.argsort(again, axis=1, kind="stable")[:, :budget]
        hits = (again == order[None, :]).sum(axis=0)  # per slot: draws putting that item there
        propensity[first : first + budget] = (hits + 1) / (config.samples + 1)
    items[first : first + budget] = ranked[options[order]]
    explored[first : first + budget] = ~np.isin(items[first : first + budget], top)
    return Slate(items, propensity, explored, np.zeros(k, dtype=bool))


def explore_rows(ranked: np.ndarray, k: int, config: Exploration, first_seed: int,
                 targets: list[int], impressions: np.ndarray,
                 positives: np.ndarray) -> np.ndarray:  # fmt: skip
    """Each row's list of ``k`` from ``ranked`` (B, C), row b seeded ``first_seed + b``, its
    Beta posteriors read from ``impressions``/``positives`` (updated in place as each list is
    shown: an impression per item, a positive for ``targets[b]`` if shown). (B, k) indices."""
    out = np.full((len(ranked), k), -1, dtype=np.int64)
    for row, candidates in enumerate(ranked):
        at = candidates.clip(0)
        alpha, beta = beta_posterior(impressions[at], positives[at])
        items = explore(candidates, k, config, alpha, beta, first_seed + row, impressions[at]).items
        out[row] = items
        shown = items[items >= 0]
        impressions[shown] += 1
        positives[targets[row]] += targets[row] in shown
    return out
