"""The state step: a user's events applied to their state, each rule (replayed, a repeated
id, a delete, a TTL restart, an impression, a late event) decided here and nowhere else.

It runs on :class:`core.state_codec.StateRows`, all of a micro-batch's users at once: the
decisions are taken per event in plain Python, and the array work is collected into rounds,
round k applying every user's k-th update as one set of array operations (decay, add the item,
snap onto the stored grid), because per-event numpy calls cost more than anything else in the
worker (docs/benchmarks.md). :func:`apply_user_events` is the same step for one user, as the
evaluator and the trainer call it; a batch of N events and N batches of one give the same bits
(tests/unit/test_state_step.py).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from core.codec import rows_of, state_of
from core.events import DELETE, IMPRESSION, Event
from core.interest import (
    InterestConfig,
    NonFiniteState,
    Snapshot,
    UserState,
    UserUpdate,
    applied_before,
    decay_factor,
    event_id_hash,
    past_ttl,
)
from core.precision import FRACTION_BITS, MAX_EXPONENT, MIN_EXPONENT, snapped
from core.state_codec import StateRows, power

Position = tuple[int, int]


class RowUpdate(NamedTuple):
    """What one user's events did (as :class:`core.interest.UserUpdate`, the state in the rows)."""

    snapshots: list[Snapshot]
    applied: int
    repeated_ids: int
    forgotten: bool
    repeated_at: tuple[Position, ...]


class _Op(NamedTuple):
    """One array update of a user: reset first (a delete or a TTL restart), then unless
    ``delete`` decay by ``factor``, add ``contribution`` x the item, append the contribution at
    weight column ``column``, the window then being ``[start, column]``."""

    user: int
    delete: bool
    reset: bool
    factor: float
    contribution: float
    item: np.ndarray | None
    column: int
    start: int


class _Wanted(NamedTuple):
    """A snapshot to take once the user's first ``version`` updates are applied."""

    index: int
    user: int
    start: int
    end: int


def apply_rows(
    rows: StateRows,
    events_of: Sequence[Sequence[tuple[Event, Position]]],
    item_vector: Callable[[str], np.ndarray | None],
    config: InterestConfig,
) -> tuple[list[RowUpdate], set[int]]:
    """Apply user u's ``events_of[u]`` in arrival order to row u (the rules:
    :func:`apply_user_events`); the rows end holding each user's new state. Also returns the
    users whose state would turn non-finite: their rows are left as they were, to refuse."""
    ops: list[list[_Op]] = []
    wanted: dict[int, list[_Wanted]] = {}
    snapshots: list = []  # a snapshot's scalars, then (once taken) the Snapshot
    updates = []
    for u, events in enumerate(events_of):
        user_ops: list[_Op] = []
        user_snaps: list[int] = []
        applied = repeated = 0
        forgotten = False
        repeated_at = []
        last_ts, count, recent = rows.last_ts[u], rows.count[u], rows.recent[u]
        position, seen, start, end = rows.position[u], rows.seen[u], rows.start[u], rows.end[u]
        for event, at in events:
            if applied_before(position, at):  # applied before a crash
                if event.type != IMPRESSION:
                    user_snaps.append(len(snapshots))
                    wanted.setdefault(len(user_ops), []).append(
                        _Wanted(len(snapshots), u, start, end))
                    snapshots.append((event, at, last_ts, count, recent, position, seen))
                continue
            id_hash = event_id_hash(event.event_id) if event.event_id and config.dedupe_window \
                else None  # fmt: skip
            if id_hash is not None and id_hash in seen:
                repeated += 1
                repeated_at.append(at)
                continue
            applied += 1
            forgotten = event.type == DELETE
            if forgotten:
                last_ts = count = 0
                recent, seen, position, start = (), (), at, end
                user_ops.append(_Op(u, True, True, 1.0, 0.0, None, -1, end))
                continue
            interest = event.type != IMPRESSION
            reset = bool(interest and count and past_ttl(last_ts, event.ts, config.ttl_ms))
            if reset:
                last_ts = count = 0
                recent, seen, start = (), (), end
            if id_hash is not None:
                seen = (seen + (id_hash,))[-config.dedupe_window:]
            if not interest:
                position = at
                continue
            weight = config.weight(event)
            factor = 1.0
            if config.half_life_events is not None or event.ts >= last_ts or count == 0:
                if count:
                    factor = (decay_factor(1.0, config.half_life_events)
                              if config.half_life_events is not None
                              else decay_factor(event.ts - last_ts, config.half_life_ms))
                last_ts = max(event.ts, last_ts)
                contribution = weight
            else:
                contribution = weight * decay_factor(last_ts - event.ts, config.half_life_ms)
            start = end - min(end - start, config.history_len - 1)
            user_ops.append(_Op(u, False, reset, factor, contribution,
                                item_vector(event.item_id), end, start))  # fmt: skip
            end += 1
            count += 1
            recent = (recent + (event.item_id,))[-config.history_len:]
            position = at
            user_snaps.append(len(snapshots))
            wanted.setdefault(len(user_ops), []).append(_Wanted(len(snapshots), u, start, end))
            snapshots.append((event, at, last_ts, count, recent, position, seen))
        ops.append(user_ops)
        updates.append((user_snaps, applied, repeated, forgotten, tuple(repeated_at)))
        rows.last_ts[u], rows.count[u], rows.recent[u] = last_ts, count, recent
        rows.position[u], rows.seen[u], rows.start[u], rows.end[u] = position, seen, start, end

    failed: set[int] = set()
    _take(rows, wanted.get(0, []), snapshots, failed)
    for version in range(1, max((len(o) for o in ops), default=0) + 1):
        _apply_round([o[version - 1] for o in ops if len(o) >= version], rows, failed)
        _take(rows, wanted.get(version, []), snapshots, failed)
    return [
        RowUpdate([snapshots[i] for i in snaps], applied, repeated, forgotten, repeated_at)
        for snaps, applied, repeated, forgotten, repeated_at in updates
    ], failed


def _take(rows: StateRows, wanted: list[_Wanted], snapshots: list, failed: set[int]) -> None:
    """Make the wanted snapshots (until now the event and the state's scalars as the plan saw
    them) with the vector and weights the rows hold now."""
    wanted = [w for w in wanted if w.user not in failed]
    if not wanted:
        return
    users = np.array([w.user for w in wanted])
    vectors = rows.vectors[users]
    weights = rows.weights[users].tolist()
    for n, w in enumerate(wanted):
        event, at, last_ts, count, recent, position, seen = snapshots[w.index]
        snapshots[w.index] = Snapshot(event, at, UserState(
            vectors[n], last_ts, count, recent, position, tuple(weights[n][w.start:w.end]),
            seen, rows.model[w.user]))  # fmt: skip


def _apply_round(ops: list[_Op], rows: StateRows, failed: set[int]) -> None:
    """Every op of one round (at most one per user): reset, decay, add the item, snap."""
    ops = [op for op in ops if op.user not in failed]
    if not ops:
        return
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused below
        (_apply_op if len(ops) == 1 else _apply_ops)(ops, rows, failed)


def _apply_op(ops: list[_Op], rows: StateRows, failed: set[int]) -> None:
    """:func:`_apply_ops` for a round of one op, on the row itself: the same float32 operations
    in the same order (so the same bits: tests/unit/test_state_step.py holds one batch of N
    events to N batches of one), without the gathers and masks a round of many users needs,
    which cost most of a single event's step (the evaluator's and the trainer's case)."""
    (op,) = ops
    factor, contribution = np.float32(op.factor), np.float32(op.contribution)
    vector = (np.zeros_like(rows.vectors[op.user]) if op.reset else rows.vectors[op.user]) * factor
    if op.item is not None and op.contribution:
        vector += contribution * op.item
    weights = rows.weights[op.user] * factor
    weights[op.column] = contribution
    weights[: op.start] = weights[op.column + 1 :] = 0.0
    vector, vector_blocks = snapped(vector)
    weights, weight_blocks = snapped(weights)
    if op.delete:
        rows.vectors[op.user], rows.weights[op.user] = 0.0, 0.0
        rows.vector_exponents[op.user] = rows.weight_exponents[op.user] = 0
    elif vector_blocks is None or weight_blocks is None:  # not finite, or too large to store
        failed.add(op.user)
    else:
        rows.vectors[op.user], rows.weights[op.user] = vector, weights
        rows.vector_exponents[op.user] = vector_blocks.exponent
        rows.weight_exponents[op.user] = weight_blocks.exponent


def _apply_ops(ops: list[_Op], rows: StateRows, failed: set[int]) -> None:
    """The round's array work. What no op of the round needs (a reset, a delete, a row that
    cannot be stored) costs no array call: one user's event is the evaluator's common case."""
    users = [op.user for op in ops]
    vectors, weights = rows.vectors[users], rows.weights[users]
    resets = [n for n, op in enumerate(ops) if op.reset]
    if resets:
        vectors[resets] = 0.0
    factors = np.array([op.factor for op in ops], np.float64).astype(np.float32)[:, None]
    contributions = np.array([op.contribution for op in ops], np.float64).astype(np.float32)
    vectors *= factors
    adds = [n for n, op in enumerate(ops) if op.item is not None and op.contribution]
    if adds:
        items = np.stack([ops[n].item for n in adds])
        vectors[adds] += contributions[adds, None] * items
    weights *= factors
    columns = np.array([op.column for op in ops])
    weights[np.arange(len(ops)), columns] = contributions
    kept = np.arange(weights.shape[1])
    window = (kept >= np.array([op.start for op in ops])[:, None]) & (kept <= columns[:, None])
    weights = np.where(window, weights, np.float32(0.0))
    vectors, vector_exponents, bad_vectors = _snapped(vectors)
    weights, weight_exponents, bad_weights = _snapped(weights)
    deletes = [n for n, op in enumerate(ops) if op.delete]
    if deletes:
        vectors[deletes], weights[deletes] = 0.0, 0.0
        vector_exponents[deletes] = weight_exponents[deletes] = 0
        bad_vectors[deletes] = bad_weights[deletes] = False
    bad = bad_vectors | bad_weights
    if bad.any():
        failed.update(np.asarray(users)[bad].tolist())
        good = ~bad
        users = np.asarray(users)[good]
        vectors, weights = vectors[good], weights[good]
        vector_exponents, weight_exponents = vector_exponents[good], weight_exponents[good]
    rows.vectors[users] = vectors
    rows.weights[users] = weights
    rows.vector_exponents[users] = vector_exponents
    rows.weight_exponents[users] = weight_exponents


def _snapped(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row rounded onto the stored grid of its own exponent (:func:`core.precision.snapped`
    for one array); rows that cannot be stored are flagged (and left as 0)."""
    largest = np.abs(values).max(axis=1) if values.shape[1] else np.zeros(len(values))
    bad = ~np.isfinite(largest)
    if bad.any():
        largest = np.where(bad, 0.0, largest)
    exponents = np.maximum(np.frexp(largest)[1].astype(np.int64), MIN_EXPONENT)
    bad |= exponents > MAX_EXPONENT
    if bad.any():
        exponents[bad] = 0
        values = np.where(bad[:, None], np.float32(0.0), values)
    snapped = np.rint(values * power(FRACTION_BITS - exponents)) * power(
        exponents - FRACTION_BITS)  # fmt: skip
    return snapped, exponents, bad


def apply_user_events(
    state: UserState,
    events: Sequence[tuple[Event, Position]],
    item_vector: Callable[[str], np.ndarray | None],
    config: InterestConfig,
) -> UserUpdate:
    """Apply one user's events in arrival order.

    An event at or before the stored position was applied before a crash: it is not applied
    again, but it still gets a snapshot (of the current state), because its record may have
    been lost with the crash. So state is exactly-once and records at-least-once.
    An event whose ``event_id`` is among the user's last ``config.dedupe_window`` applied ids
    is the same event written twice (a producer retry): skipped, with no record.
    A ``delete`` forgets the user (vector, history, seen ids: an empty state, no record); a
    user silent for longer than ``config.ttl_ms`` of event time starts afresh. An impression
    moves the position and the seen ids only. An event older than the state is added already
    decayed (:mod:`core.interest`).
    Raises :class:`NonFiniteState` rather than return a state with an inf or NaN in it.
    """
    rows = rows_of([state], len(events))
    (update,), failed = apply_rows(rows, [events], item_vector, config)
    if failed:
        raise NonFiniteState("an event makes the state non-finite")
    return UserUpdate(state_of(rows, 0), *update)
