"""Per-user interest with forgetting decay, in event time.

With half-life ``h`` the interest after events ``(t_i, w_i, e_i)`` is, at the newest time ``T``::

    v(T) = sum_i  w_i * e_i * 2 ** (-(T - t_i) / h)

Applied lazily, one event at a time: an event at or after the state's time ``t0`` decays the
vector forward and adds ``w*e``; an older (out-of-order) event is added already decayed,
``w * e * 2**(-(t0 - t)/h)``. Both give the sum above, so the vector does not depend on arrival
order, and replaying a log gives the state that living through it gave. ``h = inf`` never forgets.
The step that applies events, and decides which apply, is :mod:`core.state_step`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping, NamedTuple

import numpy as np

from core.events import Event
from core.precision import snap

NO_POSITION = (-1, -1)

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "cart": 4.0,
    "purchase": 8.0,
    # A rating contributes weight * (value - rating_center): 5 stars pulls, 1 star pushes away.
    "rating": 1.0,
    "skip": -1.0,
    "impression": 0.0,  # shown, not chosen: no interest (the state step leaves it out)
}


@dataclass(frozen=True)
class InterestConfig:
    """What the interest state reads of the settings: how events weigh, decay and are kept.

    The worker, the trainer and the evaluator all build user interest from this one object, so
    a model is trained on the decay it is served with.
    """

    event_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    rating_center: float = 3.0
    half_life_ms: float = 7 * 86400 * 1000.0  # event time; inf = no decay
    half_life_events: float | None = None  # if set, the clock is the user's own event count
    history_len: int = 50  # recent items kept per user
    dedupe_window: int = 32  # a user's last N event ids: a repeat of one is skipped (0 = off)
    ttl_ms: float | None = None  # a user silent longer than this (event time) starts afresh

    def weight(self, event: Event) -> float:
        return event_weight(event, self.event_weights, self.rating_center)

    def decays(self, times: np.ndarray) -> np.ndarray:
        """(T,) each of a user's time-ordered events' decay factor at the newest one: the
        closed form of folding :func:`core.state_step.apply_user_events` over them
        (``2 ** (-age / h)``, the age in event time, or in later events of the user with
        ``half_life_events``)."""
        if self.half_life_events is not None:
            later = np.arange(len(times) - 1, -1, -1, dtype=np.float64)
            return 2.0 ** (-later / self.half_life_events)
        return 2.0 ** (-(times[-1] - times) / self.half_life_ms)


class StoredForm(NamedTuple):
    """The exponents the codec stores a state's vector and weights under, kept from the step or
    the read that made them so the codec does not compute them again. Valid only for the very
    objects it names (a ``replace`` of the vector leaves it behind, and the codec then computes
    afresh)."""

    vector: np.ndarray
    vector_exponent: int
    weights: tuple[float, ...]
    weights_exponent: int

    def holds(self, vector: np.ndarray, weights: tuple[float, ...]) -> bool:
        return self.vector is vector and self.weights is weights


@dataclass(frozen=True, slots=True)
class UserState:
    """What the user table holds per user.

    ``position`` is the (partition, offset) of the last applied event, written in the same table
    value as the vector, so a replayed event is recognised and skipped after a crash.
    """

    vector: np.ndarray  # (D,) float32
    last_ts: int = 0  # ms, newest event time applied
    count: int = 0
    recent: tuple[str, ...] = ()  # last N item ids, oldest first, in arrival order
    position: tuple[int, int] = NO_POSITION
    # Each recent item's share of ``vector`` at ``last_ts``: its event weight, decayed like the
    # vector. Weight x similarity is how much an item explains a recommendation.
    recent_weights: tuple[float, ...] = ()
    seen: tuple[int, ...] = ()  # 64-bit hashes of the last applied event ids, oldest first
    # 32-bit tag of the model version whose item space the vector is in (0: not known, taken to
    # be the serving one); a worker serving another version rebases the vector when it loads it
    model: int = 0
    # the stored (block) form of vector and weights, from the snap or the read that made them
    stored: StoredForm | None = field(default=None, compare=False, repr=False)

    @classmethod
    def empty(cls, dim: int) -> UserState:
        return cls(vector=np.zeros(dim, dtype=np.float32))

    def has_applied(self, partition: int, offset: int) -> bool:
        return applied_before(self.position, (partition, offset))


def applied_before(position: tuple[int, int], at: tuple[int, int]) -> bool:
    """Whether the event at ``at`` is one a state last applied at ``position`` holds: the same
    partition, at or before it (a replay after a crash)."""
    return at[0] == position[0] and at[1] <= position[1]


def past_ttl(last_ts: float, now_ts: float, ttl_ms: float | None) -> bool:
    """Whether a user whose newest event is at ``last_ts`` has been silent past the TTL at
    event time ``now_ts``: the step restarts such a user afresh at their next event, and the
    retention sweep evicts them before it (streams/worker/retention.py)."""
    return ttl_ms is not None and now_ts - last_ts > ttl_ms


def decay_factor(dt_ms: float, half_life_ms: float) -> float:
    """``2 ** (-dt/h)``; 1.0 for ``h = inf``."""
    return 2.0 ** (-dt_ms / half_life_ms)


def event_weight(event: Event, weights: dict[str, float], rating_center: float) -> float:
    """Signed weight of an event; a rating scales by its distance from ``rating_center``."""
    weight = weights.get(event.type, 0.0)
    if event.type == "rating" and event.value is not None:
        weight *= event.value - rating_center
    return weight


def rebase(
    state: UserState, item_vector: Callable[[str], np.ndarray | None], dim: int
) -> UserState:
    """The state with its vector rebuilt from the recent items' weights in another model's
    space, for a hot-swapped model version. Exact while the user has at most ``history_len``
    events; beyond that the oldest, most decayed contributions are dropped."""
    vector = np.zeros(dim, dtype=np.float32)
    for item, weight in zip(state.recent, state.recent_weights):
        item_vec = item_vector(item)
        if item_vec is not None:
            vector += np.float32(weight) * item_vec
    return replace(state, vector=snap(vector))


class NonFiniteState(ValueError):
    """An event would leave an inf or NaN in the user's state: refused, never stored."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """An event and the user's state right after it: what its record is scored from."""

    event: Event
    position: tuple[int, int]
    state: UserState


class UserUpdate(NamedTuple):
    """One user's events applied: the new state, a snapshot per event that gets a record, how
    many events changed the state, how many were skipped as a repeated ``event_id``, and
    whether the last applied event was a ``delete`` (the user's entry is to go), and where
    the repeated ones were."""

    state: UserState
    snapshots: list[Snapshot]
    applied: int
    repeated_ids: int = 0
    forgotten: bool = False
    repeated_at: tuple[tuple[int, int], ...] = ()  # positions of the repeated-id events


def version_tag(version: str) -> int:
    """A model version as the 32 bits a state stores (``UserState.model``); never 0."""
    return int.from_bytes(hashlib.blake2b(version.encode(), digest_size=4).digest(), "little") or 1


def event_id_hash(event_id: str) -> int:
    """64 bits of BLAKE2b: the window stores 8 bytes per id whatever the id's length (a false
    repeat needs a collision among the window's ids, about ``window / 2**64``)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")
