"""Item neighbours counted event by event, between the versions that carry the rest.

A version's neighbours (models/neighbours.py) are as old as the version and cover only the
items it was trained on: on session logs, where most clicked items are newer than the newest
version, that is what kept the product below item-kNN and STAN, which count every event the
moment it lands and know an item from its first click (docs/evaluation.md). :class:`LiveCounts`
counts the events after a version by the same rules as :func:`models.neighbours.build` — each
positive with the user's previous ``WINDOW`` positives, co-visits both ways and rules from the
last ``RULE_STEPS`` — over item ids, so an item the version lacks is counted from its first
event. :meth:`counted` hands the counts over as neighbour rows over the served catalog, laid
on the version's (:meth:`Neighbours.with_live`), so a candidate's co-visit and rule scores are
the sums of the two: the counts over everything up to now, as a baseline keeps them, with only
the version's rows trimmed to their strongest. A new version, whose neighbours count those
events, starts them again from nothing.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from models.neighbours import RULE_STEPS, WINDOW, Neighbours, strongest


class LiveCounts:
    """Co-visits and rules of the positives since a version, by item id."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}  # item id -> its number here, in order of first count
        self._covisits: list[int] = []  # (earlier, later) numbers, flat
        self._rules: list[int] = []  # (earlier, later) numbers, flat
        self._rule_weights: list[float] = []

    def add(self, item: str, before: Sequence[str]) -> None:
        """Count a positive of ``item`` after the user's previous positives ``before`` (oldest
        first)."""
        number = self._number(item)
        for back, earlier in enumerate(reversed(before[-WINDOW:]), start=1):
            if earlier == item:
                continue
            pair = (self._number(earlier), number)
            self._covisits += pair
            if back <= RULE_STEPS:
                self._rules += pair
                self._rule_weights.append(1.0 - 0.1 * back)

    def _number(self, item: str) -> int:
        return self._ids.setdefault(item, len(self._ids))

    def items(self) -> list[str]:
        """Every item counted, in order of first count."""
        return list(self._ids)

    def counted(self, index: Mapping[str, int], n_items: int) -> Neighbours:
        """The counts as neighbour rows over a catalog of ``n_items`` whose ``index`` holds
        every counted item (every pair kept, both ways for co-visits)."""
        where = np.array([index[item] for item in self._ids], dtype=np.int64)
        covisits = where[np.array(self._covisits, dtype=np.int64)].reshape(-1, 2)
        rules = where[np.array(self._rules, dtype=np.int64)].reshape(-1, 2)
        covisit_keys = np.concatenate([covisits[:, 0] * n_items + covisits[:, 1],
                                       covisits[:, 1] * n_items + covisits[:, 0]])
        return Neighbours(
            n_items,
            strongest([covisit_keys], [np.ones(len(covisit_keys))], n_items, n_items),
            strongest([rules[:, 0] * n_items + rules[:, 1]], [np.array(self._rule_weights)],
                      n_items, n_items))  # fmt: skip
