"""Why a fused list shows an item the neighbours put there: the user's recent items whose
co-visits, rules, content or alike sessions brought it (models/neighbours.py), as a record's ``because`` names
them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from models.candidates import positions_in
from models.fusion import Fused
from models.neighbours import Neighbours


def explain(neighbours: Neighbours, fused: Fused, weights: Sequence[float],
            n_explain: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Which of each user's recent items brought the slots of ``fused`` the neighbours put
    there: recent item ``j`` contributes ``w_covisit cov(j, i) / max c`` (and ``w_content
    content(j, i) / max s`` when among the last ``CONTENT_WINDOW``), and the newest one also
    ``w_rules rule(j, i) / max r``; a session like the user's window gives its vote for ``i``
    (``w_sessions v / max v``) to the newest recent item it shares (``weights``: one per kind,
    ``KINDS`` order).
    (B, k, n_explain) recent item indices (-1: none) and contributions, best first (ties: the
    lower index). The whole batch in a few array operations, over the entries the fused list
    was ranked from (``fused.found``), so nothing is looked up twice."""
    indices, wanted = fused.indices, fused.by_neighbours
    batch, k = indices.shape
    n = neighbours.n_items
    because = np.full((batch, k, n_explain), -1, dtype=np.int64)
    contributions = np.zeros((batch, k, n_explain), dtype=np.float32)
    slot_user, slot = np.nonzero(wanted)
    slot_keys = slot_user * n + indices[slot_user, slot]
    parts = [_brought(found, weight, best, slot_keys, n * batch, n)
             for found, weight, best in zip(fused.found, weights, fused.best)]  # fmt: skip
    which, source, value = (np.concatenate(p) for p in zip(*parts))
    if n_explain == 0 or not len(which):
        return because, contributions
    keys, inverse = np.unique(which * n + source, return_inverse=True)
    summed = np.bincount(inverse, value, len(keys))
    which, recent = np.divmod(keys, n)  # which wanted slot, which recent item
    ranked = np.lexsort((recent, -summed, which))
    which, recent, summed = which[ranked], recent[ranked], summed[ranked]
    place = np.arange(len(which)) - np.searchsorted(which, which)
    kept = place < n_explain
    rows, cols = slot_user[which[kept]], slot[which[kept]]
    because[rows, cols, place[kept]] = recent[kept]
    contributions[rows, cols, place[kept]] = summed[kept]
    return because, contributions


def _brought(found: tuple[np.ndarray, ...], weight: float, best: np.ndarray,
             slot_keys: np.ndarray, space: int, n: int) -> tuple[np.ndarray, ...]:  # fmt: skip
    """(which slot, source, weight x score over the owner's ``best``) of a kind's entries
    ``found`` (owner, target, score, source) where ``owner * n + target`` is one of the
    ``slot_keys`` (distinct, in ``range(space)``): which of them it is."""
    owner, target, got, source = found if weight > 0 else (f[:0] for f in found)
    which = positions_in(slot_keys, owner * n + target, space)
    mine = which >= 0
    owner, got = owner[mine], got[mine]
    return which[mine], source[mine], weight * got / np.where(best[owner] > 0, best[owner], 1.0)
