"""Session neighbours a worker serves beside the item neighbours: V-SKNN over the version's users.

On session logs the strongest cheap baseline is not an item-to-item count but a session's
likeness to other recent sessions (V-SKNN, STAN: docs/evaluation.md), which no co-visit carries:
a session that shares the user's newest items votes for all of its own, and only the ``NEAREST``
most alike vote. The trainer keeps each user's last ``WINDOW`` positives as of the version (the
newest ``SESSIONS_KEPT`` users), so a worker finds neighbours without any state shared across
partitions; between versions they are as fresh as the model is.

The scoring is models/session_knn.py's V-SKNN, the streamed baseline's, over this frozen index:
the asking user's last ``WINDOW`` items weigh ``1 - 0.1 b`` by steps back ``b``; of the sessions
holding any of them, the ``SAMPLE`` with the newest last event are candidates; a candidate's
likeness is the summed weight of the items it shares over the asking window's distinct items;
each of the ``NEAREST`` most alike gives every item of its window that likeness, times ``1 + idf
IDF_WEIGHTING`` and over ``step`` (the newest shared item's place among the asking window's
distinct items, 1 = the newest). One difference: the user's own window of the version is among
the candidates (a worker does not know which row is its user's). Its votes go to the user's items
as of the version, which a worker never serves while they are among the user's recent items; one
that has left them since (more than ``history_len - WINDOW`` positives later) can be served back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from models.csr import indptr, positions

WINDOW = 20  # each session's items: its user's last positives (item-kNN's window)
SAMPLE = 500  # candidate neighbours: the sessions with the newest last event (V-SKNN's)
NEAREST = 100  # the most alike candidates that vote (V-SKNN's k)
IDF_WEIGHTING = 10.0
SESSIONS_KEPT = 100_000  # the users whose windows an artifact keeps, the newest by last event


@dataclass(frozen=True)
class Sessions:
    """The version's sessions: (M, WINDOW) items, oldest first, -1 padded; each one's last event
    time; (N,) each item's positives and the users counted, for the idf. Derived on creation:
    which slot of a row is its item's newest, each item's holders, newest session first, and
    the idf (so that no batch works it out again)."""

    rows: np.ndarray  # (M, WINDOW) int32
    last: np.ndarray  # (M,) int64
    item_events: np.ndarray  # (N,) float32
    users: int
    newest: np.ndarray = field(init=False, repr=False)  # (M, WINDOW) bool
    by_recency: np.ndarray = field(init=False, repr=False)  # (M,) sessions, newest last event first
    holders_indptr: np.ndarray = field(init=False, repr=False)  # (N + 1,) int64
    holders: np.ndarray = field(init=False, repr=False)  # places in by_recency, SAMPLE an item
    idf: np.ndarray = field(init=False, repr=False)  # (N,) log(users / the item's positives)

    def __post_init__(self) -> None:
        rows, last, events = self.rows, self.last, self.item_events
        if (rows.ndim != 2 or last.ndim != 1 or events.ndim != 1
                or rows.dtype.kind not in "iu" or last.dtype.kind not in "iu"
                or events.dtype.kind not in "iuf" or not np.isfinite(events).all()
                or events.min(initial=0) < 0 or not isinstance(self.users, int)
                or self.users < 0):  # fmt: skip
            raise ValueError("sessions are not integer windows with finite item counts")
        m, width = rows.shape
        n = len(events)
        if (len(last) != m or width != WINDOW or rows.max(initial=-1) >= n
                or rows.min(initial=-1) < -1):  # fmt: skip
            raise ValueError(f"sessions are not windows of {WINDOW} over {n} items")
        session, slot = np.nonzero(self.rows >= 0)
        item = self.rows[session, slot].astype(np.int64)
        order = np.lexsort((-slot, session * n + item))  # each (session, item): newest slot first
        key = (session * n + item)[order]
        first = order[np.r_[True, key[1:] != key[:-1]]] if len(key) else order
        newest = np.zeros(self.rows.shape, dtype=bool)
        newest[session[first], slot[first]] = True
        by_recency = np.lexsort((np.arange(m), -self.last))  # ties: the lower index
        recency = np.empty(m, dtype=np.int64)
        recency[by_recency] = np.arange(m)
        place, item = recency[session[first]], item[first]
        by_item = np.lexsort((place, item))
        place, item = place[by_item], item[by_item]
        kept = np.arange(len(item)) - np.searchsorted(item, item) < SAMPLE
        idf = np.log(max(self.users, 1) / np.maximum(events.astype(np.float64), 1.0))
        object.__setattr__(self, "newest", newest)
        object.__setattr__(self, "by_recency", by_recency)
        object.__setattr__(self, "holders_indptr", indptr(item[kept], n))
        object.__setattr__(self, "holders", place[kept])
        object.__setattr__(self, "idf", idf)

    @classmethod
    def build(cls, items: Sequence[np.ndarray], times: Sequence[np.ndarray], n_items: int,
              kept: int = SESSIONS_KEPT) -> Sessions:  # fmt: skip
        """Each user's last ``WINDOW`` of ``items`` (indices in time order, with their
        ``times``), the ``kept`` users with the newest last event, in the users' order (equal
        likenesses then tie to the lower user, as the streamed V-SKNN's do)."""
        users = [u for u, s in enumerate(items) if len(s)]
        users = sorted(sorted(users, key=lambda u: (-int(times[u][-1]), u))[:kept])
        rows = np.full((len(users), WINDOW), -1, dtype=np.int32)
        for row, u in enumerate(users):
            tail = items[u][-WINDOW:]
            rows[row, : len(tail)] = tail
        last = np.array([int(times[u][-1]) for u in users], dtype=np.int64)
        flat = np.concatenate(list(items)).astype(np.int64) if len(items) else np.zeros(0, np.int64)
        counts = np.bincount(flat, minlength=n_items).astype(np.float32)
        return cls(rows, last, counts, sum(1 for s in items if len(s)))

    def expand(self, owner: np.ndarray, sources: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
        """(owner, target, vote, source) of every item the ``NEAREST`` neighbours of each
        owner's window vote for (``sources``: each owner's recent items, oldest first, grouped
        by owner); ``source`` is the window's newest item the neighbour shares, what explains
        the vote. An owner's summed votes for an item are its V-SKNN score."""
        empty = np.zeros(0, np.int64)
        n, m = len(self.item_events), len(self.rows)
        if not len(owner) or not m:
            return empty, empty, np.zeros(0), empty
        back = np.searchsorted(owner, owner, side="right") - 1 - np.arange(len(owner))
        key = owner * max(n, int(sources.max()) + 1) + sources  # an item past ours: no holders
        order = np.lexsort((back, key))  # each (owner, item) at its newest place
        order = order[np.r_[True, key[order][1:] != key[order][:-1]]]
        owner, item, back = owner[order], sources[order], back[order]
        order = np.lexsort((back, owner))
        owner, item, back = owner[order], item[order], back[order]
        step = np.arange(len(owner)) - np.searchsorted(owner, owner) + 1  # distinct place
        distinct = np.bincount(owner, minlength=owner.max() + 1)
        weight = np.maximum(0.0, 1.0 - 0.1 * back)
        known = np.minimum(item, n - 1)  # an item past the version's has no holders
        start = self.holders_indptr[known]
        length = np.where(item < n, np.diff(self.holders_indptr)[known], 0)
        at = positions(start, length)
        entry = np.repeat(np.arange(len(item)), length)  # which (owner, item) each holder is of
        # one sort: by owner, then the session's recency, then the step of the shared item
        steps = int(step.max()) + 1
        key = (owner[entry] * m + self.holders[at]) * steps + step[entry]
        order = np.argsort(key)
        pair = key[order] // steps
        new_pair = np.r_[True, pair[1:] != pair[:-1]] if len(pair) else pair.astype(bool)
        starts = np.flatnonzero(new_pair)
        # summed newest item first, one at a time, as the streamed V-SKNN sums (equal floats,
        # so equal likenesses tie as there)
        overlap = np.bincount(np.cumsum(new_pair) - 1, weight[entry[order]], len(starts))
        first = entry[order[starts]]  # each (owner, session) at its newest shared item
        p_owner, place = np.divmod(pair[starts], m)
        # by owner, the newest session first: each owner's first SAMPLE are its candidates
        recent = np.flatnonzero(np.arange(len(p_owner)) - np.searchsorted(p_owner, p_owner)
                                < SAMPLE)  # fmt: skip
        p_session = self.by_recency[place[recent]]
        alike = overlap[recent] / distinct[p_owner[recent]]
        near = np.lexsort((p_session, -alike, p_owner[recent]))
        rank = np.arange(len(near)) - np.searchsorted(p_owner[recent][near],
                                                       p_owner[recent][near])  # fmt: skip
        near = near[(rank < NEAREST) & (alike[near] > 0)]
        chosen, likeness, via = p_session[near], alike[near], first[recent[near]]
        held = self.newest[chosen]  # (K, WINDOW): each neighbour's distinct items
        votes = held.sum(axis=1)
        target = self.rows[chosen][held].astype(np.int64)
        gain = np.repeat(likeness / step[via], votes) * (1.0 + IDF_WEIGHTING * self.idf[target])
        return (np.repeat(owner[via], votes), target, gain, np.repeat(item[via], votes))

    def arrays(self) -> dict[str, np.ndarray]:
        """What an artifact stores (the derived arrays are rebuilt on load)."""
        return {"sessions_rows": self.rows, "sessions_last": self.last,
                "sessions_item_events": self.item_events,
                "sessions_users": np.int64(self.users)}  # fmt: skip

    @classmethod
    def from_arrays(cls, f) -> Sessions | None:
        """The sessions stored by :meth:`arrays` in ``f`` (an npz), None if it has none."""
        if "sessions_rows" not in f:
            return None
        users = f["sessions_users"]
        if users.ndim or users.dtype.kind not in "iu":
            raise ValueError("sessions_users is not a count")
        return cls(f["sessions_rows"], f["sessions_last"], f["sessions_item_events"], int(users))
