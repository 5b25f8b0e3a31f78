"""A micro-batch's events applied to all its users' states at once (:class:`StateRows`).

:func:`core.interest.apply_user_events` decays, updates and snaps a user's small arrays with
~25 numpy calls an event, which cost more than anything else in the worker. Here the decisions
an event needs (replayed? a repeated id? a delete, a TTL restart, an impression?) are still taken
per event in plain Python, but the array work is collected into rounds: round k applies every
user's k-th update as one set of array operations (decay, add the item, snap onto the grid).
The results are bit for bit the per-user function's (the same float32 operations on the same
values, in the same order: tests/unit/test_state_codec.py holds the two paths to each other).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

from core.events import DELETE, IMPRESSION, Event
from core.interest import InterestConfig, Snapshot, UserState, decay_factor, event_id_hash
from core.precision import FRACTION_BITS, MAX_EXPONENT, MIN_EXPONENT
from core.codebook import ItemCodebook
from core.state_codec import StateRows, power, read_rows, write_rows

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
    """Apply user u's ``events_of[u]`` in arrival order to row u, as
    :func:`core.interest.apply_user_events` would; the rows end holding each user's new state.
    Also returns the users whose state would turn non-finite: their rows are left as they
    were, for the per-user path to refuse."""
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
            if at[0] == position[0] and at[1] <= position[1]:  # applied before a crash
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
            reset = bool(interest and config.ttl_ms is not None and count
                         and event.ts - last_ts > config.ttl_ms)  # fmt: skip
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
    """Every op of one round (at most one per user), as :func:`core.interest.apply_event`."""
    ops = [op for op in ops if op.user not in failed]
    if not ops:
        return
    with np.errstate(over="ignore", invalid="ignore"):  # what overflows is refused below
        _apply_ops(ops, rows, failed)


def _apply_ops(ops: list[_Op], rows: StateRows, failed: set[int]) -> None:
    users = np.array([op.user for op in ops])
    vectors, weights = rows.vectors[users], rows.weights[users]
    reset = np.array([op.reset for op in ops])
    vectors[reset] = 0.0
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
    kept = np.arange(weights.shape[1])[None, :]
    window = (kept >= np.array([op.start for op in ops])[:, None]) & (kept <= columns[:, None])
    weights = np.where(window, weights, np.float32(0.0))
    vectors, vector_exponents, bad_vectors = _snapped(vectors)
    weights, weight_exponents, bad_weights = _snapped(weights)
    deletes = np.array([op.delete for op in ops])
    vectors[deletes], weights[deletes] = 0.0, 0.0
    vector_exponents[deletes] = weight_exponents[deletes] = 0
    bad = (bad_vectors | bad_weights) & ~deletes
    failed.update(users[bad].tolist())
    good = ~bad
    rows.vectors[users[good]] = vectors[good]
    rows.weights[users[good]] = weights[good]
    rows.vector_exponents[users[good]] = vector_exponents[good]
    rows.weight_exponents[users[good]] = weight_exponents[good]


def _snapped(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row rounded onto the stored grid of its own exponent, as
    :func:`core.precision.snapped`; rows that cannot be stored are flagged (and left as 0)."""
    largest = np.abs(values).max(axis=1) if values.shape[1] else np.zeros(len(values))
    bad = ~np.isfinite(largest)
    exponents = np.maximum(np.frexp(np.where(bad, 0.0, largest))[1].astype(np.int64),
                           MIN_EXPONENT)  # fmt: skip
    bad |= exponents > MAX_EXPONENT
    exponents[bad] = 0
    values = np.where(bad[:, None], np.float32(0.0), values)
    snapped = np.rint(values * power(FRACTION_BITS - exponents)) * power(
        exponents - FRACTION_BITS)  # fmt: skip
    return snapped, exponents, bad


class StoredUpdates(NamedTuple):
    """:func:`apply_stored`'s outcome, by the user's index: their update, and the new value of
    each user whose state is to be stored; ``left`` are the users for the per-user path, and
    ``rebased`` those whose vector was taken into the serving model (a state of an unknown one)."""

    updates: dict[int, RowUpdate]
    values: dict[int, bytes]
    left: list[int]
    rebased: set[int]


def apply_stored(
    raws: Sequence[bytes | None],
    events_of: Sequence[Sequence[tuple[Event, Position]]],
    item_vector: Callable[[str], np.ndarray | None],
    dim: int,
    config: InterestConfig,
    codebook: ItemCodebook,
    model_tag: int = 0,
) -> StoredUpdates:
    """Read the stored values, apply each user's events, and write the states that changed:
    a batch's state path in whole-batch array operations. Left to the per-user path: values
    the batch reader does not read, states of another model version (to be rebased), and
    updates that would turn non-finite."""
    rows, unread = read_rows(raws, [codebook], dim, max((len(e) for e in events_of), default=0))
    left = list(unread)
    others = {u for u in range(len(raws)) if model_tag and rows.model[u] not in (0, model_tag)}
    left_out = set(left) | others
    rebased = set()
    if model_tag:
        for u in range(len(raws)):
            rebased.update([u] if rows.model[u] == 0 and rows.count[u] else [])
            rows.model[u] = model_tag
    updates, failed = apply_rows(
        rows, [() if u in left_out else e for u, e in enumerate(events_of)], item_vector, config)
    left_out |= failed
    kept = [u for u, update in enumerate(updates)
            if u not in left_out and update.applied and not update.forgotten]  # fmt: skip
    values = dict(zip(kept, write_rows(rows, kept, codebook)))
    return StoredUpdates(
        {u: update for u, update in enumerate(updates) if u not in left_out},
        values,
        sorted(left_out),
        rebased - left_out,
    )
