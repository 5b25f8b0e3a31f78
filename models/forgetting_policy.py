"""The interest policy under any forgetting function (core/forgetting.py), computed exactly.

The worker's state carries one lazily decayed vector, which only the exponential family allows.
Here the vector at each tested event is recomputed from the user's newest ``kept`` events
(``max(history_len, 50)``; older ones dropped, so exact within them)::

    v = sum_i  weight(event_i) * g(age_i) * item_vector_i

with the ages from the user's newest event on the function's clock, as the worker's state
measures them. Everything else is the product's interest policy (``streamrec evaluate --policy
interest``): the same model versions (:class:`models.product.ModelVersions`), the same scoring
(:func:`models.slates.candidates`, the vector normalised, item biases added), the user's last
``history_len`` items never shown. One pass over the stream computes the lists of several
functions at once (:class:`ForgettingRun`), so a grid costs one replay plus one scoring per
function; each :class:`ForgettingPolicy` of a run hands back its own lists.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from core.forgetting import Forgetting
from core.interest import InterestConfig
from models.blend import Blend
from models.product import ModelVersions, ProductPolicy
from models.slates import ListRules, candidates
from models.stream import Stream

MIN_KEPT = 50  # events kept per user for the recomputation, whatever history_len says


class ForgettingRun:
    """Lists of the interest policy for each of ``functions``, from one replay of a stream."""

    def __init__(
        self,
        versions: ModelVersions,
        interest: InterestConfig,
        blend: Blend,
        functions: Sequence[Forgetting],
        batch: int = 1024,
    ) -> None:
        self.versions = versions
        self.interest = interest
        self.functions = list(functions)
        # the product's interest-only scoring of each version (no sequence model, ranker or
        # neighbours)
        self._serving = ProductPolicy("interest", versions, interest, blend, sequence=False,
                                      neighbours=False)
        self.kept = max(interest.history_len, MIN_KEPT)
        self.batch = batch
        self._lists: dict[tuple[int, int], list[np.ndarray]] = {}

    def lists(self, stream: Stream, k: int) -> list[np.ndarray]:
        """Per function, (tested events, k) stream item indices, -1 where a list is shorter."""
        key = (id(stream), k)
        if key not in self._lists:
            self._lists = {key: self._replay(stream, k)}
        return self._lists[key]

    def _replay(self, stream: Stream, k: int) -> list[np.ndarray]:
        n_tested = int(stream.tested.sum())
        out = [np.full((n_tested, k), -1, dtype=np.int64) for _ in self.functions]
        history: dict[int, tuple[list[int], list[int], list[float]]] = {}
        pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # items, times, weights
        pending_recent: list[list[int]] = []  # the items never shown, as of the test
        rules = ListRules()
        done = 0
        rec = to_catalog = to_stream = None
        swaps = set(self.versions.starts)
        excluded = self.interest.history_len

        def flush() -> None:
            nonlocal done
            if not pending:
                return
            recent = [[stream.item_ids[i] for i in items[-excluded:]] for items in pending_recent]
            batch = _Batch.of(pending, to_catalog)
            for f, forgetting in enumerate(self.functions):
                shown = candidates(rec, batch.vectors(forgetting, rec.vectors), recent, k,
                                   rules)[0]  # fmt: skip
                shown = np.where(shown >= 0, to_stream[shown.clip(0)], -1)
                out[f][done : done + len(pending), : shown.shape[1]] = shown
            done += len(pending)
            pending.clear()
            pending_recent.clear()

        for n, event in enumerate(stream.events):
            if n in swaps:
                flush()
                rec = self._serving.serving(n)
                to_catalog = np.array([rec.index.get(i, -1) for i in stream.item_ids], np.int64)
                to_stream = _inverse(to_catalog, len(rec.item_ids))
            user = int(stream.users[n])
            items, times, weights = history.setdefault(user, ([], [], []))
            if stream.tested[n]:  # (a user with only impressions so far: a zero vector)
                pending.append(_recent(items, times, weights, self.kept))
                pending_recent.append(items[-excluded:])
                if len(pending) == self.batch:
                    flush()
            if event.type == "impression":  # shown, not chosen: no interest (the state step's rule)
                continue
            items.append(int(stream.items[n]))
            times.append(int(stream.ts[n]))
            weights.append(self.interest.weight(event))
            if len(items) > 2 * self.kept:  # trimmed now and then, not at every event
                del items[: -self.kept], times[: -self.kept], weights[: -self.kept]
        flush()
        return out


class ForgettingPolicy:
    """One forgetting function's interest policy (the :class:`models.prequential.Policy`
    protocol); policies built on the same :class:`ForgettingRun` share its replay, so the
    first one run takes the time of all."""

    baseline = False

    def __init__(
        self,
        versions: ModelVersions,
        interest: InterestConfig,
        blend: Blend,
        forgetting: Forgetting,
        run: ForgettingRun | None = None,
    ) -> None:
        self.forgetting = forgetting
        self.name = f"interest g={forgetting.label}"
        self._run = run or ForgettingRun(versions, interest, blend, [forgetting])
        self._slot = self._run.functions.index(forgetting)
        self.versions = versions

    @property
    def train_seconds(self) -> float:
        return self.versions.train_seconds

    def run(self, stream: Stream, k: int) -> np.ndarray:
        return self._run.lists(stream, k)[self._slot]


def forgetting_policies(
    versions: ModelVersions, interest: InterestConfig, blend: Blend,
    functions: Sequence[Forgetting],
) -> list[ForgettingPolicy]:  # fmt: skip
    """The interest policy under each of ``functions``, all from one replay."""
    shared = ForgettingRun(versions, interest, blend, functions)
    return [ForgettingPolicy(versions, interest, blend, f, shared) for f in functions]


def _recent(items: list[int], times: list[int], weights: list[float],
            kept: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """A user's newest ``kept`` events: stream items, times (ms), event weights."""
    return (np.array(items[-kept:], np.int64), np.array(times[-kept:], np.int64),
            np.array(weights[-kept:], np.float64))  # fmt: skip


class _Batch(NamedTuple):
    """A batch of users' kept events, flat: row, catalog item (known items only), weight, and
    age on either clock (ms from the user's newest event; later events of the user)."""

    rows: np.ndarray
    catalog: np.ndarray
    weights: np.ndarray
    age_ms: np.ndarray
    age_events: np.ndarray
    n_rows: int

    @classmethod
    def of(cls, users: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
           to_catalog: np.ndarray) -> _Batch:  # fmt: skip
        lengths = np.array([len(items) for items, _, _ in users])
        rows = np.repeat(np.arange(len(users)), lengths)
        items, times, weights = (np.concatenate(column) for column in zip(*users))
        newest = np.array([t[-1] if len(t) else 0 for _, t, _ in users], dtype=np.int64)
        ends = np.cumsum(lengths)
        age_events = (ends[rows] - 1 - np.arange(len(rows))).astype(np.float64)
        age_ms = (newest[rows] - times).astype(np.float64)
        catalog = to_catalog[items]
        known = catalog >= 0  # an item the version lacks counts nothing, as in rebase
        return cls(rows[known], catalog[known], weights[known], age_ms[known],
                   age_events[known], len(users))  # fmt: skip

    def vectors(self, forgetting: Forgetting, item_vectors: np.ndarray) -> np.ndarray:
        """(B, D) float32: each user's sum of weight x forgetting x item vector."""
        ages = self.age_events if forgetting.clock == "events" else self.age_ms
        coefficients = self.weights * forgetting.weights(ages)
        n_items = len(item_vectors)
        dense = np.bincount(self.rows * n_items + self.catalog, coefficients,
                            minlength=self.n_rows * n_items).reshape(self.n_rows, n_items)
        return (dense @ item_vectors.astype(np.float64)).astype(np.float32)


def _inverse(to_catalog: np.ndarray, n_catalog: int) -> np.ndarray:
    """Catalog index -> stream index (-1: an item the stream lacks)."""
    out = np.full(n_catalog, -1, dtype=np.int64)
    present = to_catalog >= 0
    out[to_catalog[present]] = np.nonzero(present)[0]
    return out
