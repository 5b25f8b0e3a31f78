"""A worker's micro-batch applied to its users' stored states: exactly-once state, a snapshot
for each record, deletes, and one user's failure confined to that user.

Plain functions over plain values (no framework): the worker (streams/worker/user_path.py)
gives them its batch transaction as the table, the tests a dict.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol, Sequence

import numpy as np

from core.codebook import ItemCodebook
from core.codec import CorruptState, UnknownCodebook, decode_state, put_states, state_of
from core.events import DELETE, Event, InvalidEvent
from core.interest import NonFiniteState, Snapshot, UserState, applied_before, rebase
from core.state_codec import StateRows, read_rows, write_rows
from core.state_step import apply_rows
from streams.steps.parse import Message, ParsedBatch, Position, StepConfig

log = logging.getLogger(__name__)


@dataclass
class Applied:
    """What applying a batch did: the snapshots to score (one per event, or per user with
    ``emit="coalesce"``), events applied, replayed events skipped as already applied, events
    skipped as a repeated ``event_id``, the keys deleted (users who asked to be forgotten), and
    the messages of users whose update failed, to dead-letter."""

    snapshots: list[Snapshot]
    applied: int
    duplicates: int
    dead: list[tuple[Message, InvalidEvent]] = field(default_factory=list)
    repeated_ids: int = 0
    deleted: list[bytes] = field(default_factory=list)
    rebased: int = 0  # users whose vector was rebuilt in the serving model's space
    # what the item statistics count, in log order: every event applied now or before (a
    # replay: its first pass may not have reached them), but deletes, repeated ids and dead
    # letters
    item_events: list[tuple[Event, Position]] = field(default_factory=list)
    # each user's interest after the batch (not for one forgotten): what online item learning
    # moves the items they engaged with towards
    interests: dict[str, np.ndarray] = field(default_factory=dict)


def load_user_state(
    raw: bytes | None,
    user_id: str,
    dim: int,
    codebook: ItemCodebook | None = None,
    older_codebooks: Sequence[ItemCodebook] = (),
) -> UserState:
    """A table value as state; none, or one the codec cannot read, is a fresh state (logged),
    so one corrupt value costs that user's history, not the worker. A state whose recent items
    index another catalog than ``codebook`` keeps all but those items: its position and seen
    ids still make the replay exactly-once."""
    if raw is None:
        return UserState.empty(dim)
    try:
        try:
            return decode_state(raw, [*([codebook] if codebook else []), *older_codebooks])
        except UnknownCodebook as exc:
            log.warning("user %s: %s; their recent items are dropped", user_id, exc)
            return decode_state(raw, drop_unknown_items=True)
    except CorruptState:  # also a value that fails without its items (cut short, say)
        log.exception("user %s: unreadable state, starting afresh", user_id)
    return UserState.empty(dim)


def in_model_space(
    state: UserState, item_vector: Callable[[str], np.ndarray | None], dim: int, model_tag: int
) -> UserState:
    """The state in the space of model ``model_tag``: a vector of another known version is
    rebuilt from the recent items' weights (:func:`core.interest.rebase`); one of an unknown
    version (0, written before states carried it) is taken as it is unless its dimension
    differs."""
    if state.model == model_tag and state.vector.shape[0] == dim:
        return state
    other_space = state.model or state.vector.shape[0] != dim
    if state.count and other_space:
        state = rebase(state, item_vector, dim)
    elif state.vector.shape[0] != dim:
        state = replace(state, vector=np.zeros(dim, dtype=np.float32))
    return replace(state, model=model_tag)


class StateTable(Protocol):
    """The user table as the steps use it: Faust's table (deleting a missing key sends a
    tombstone, no KeyError), or a dict behind the same rules in tests."""

    def get(self, key: bytes) -> bytes | None: ...
    def __setitem__(self, key: bytes, value: bytes) -> None: ...
    def __delitem__(self, key: bytes) -> None: ...


def apply_users(
    parsed: ParsedBatch,
    table: StateTable,
    item_vector: Callable[[str], np.ndarray | None],
    dim: int,
    config: StepConfig,
    bind: Callable[[int], None] = lambda index: None,
    codebook: ItemCodebook | None = None,
    model_tag: int = 0,
    older_codebooks: Sequence[ItemCodebook] = (),
) -> Applied:
    """Apply each user's events to the stored state, writing it back only if something applied.

    ``bind`` is called with the batch index of the user's last valid message before the user's
    table access: the worker makes that Faust event current, so the read and the write go to the
    partition the user's events come from.
    The stored position makes state exactly-once (see :func:`core.state_step.apply_user_events`).

    A user whose events end in a ``delete`` has their entry deleted (Faust's table sends the
    changelog a tombstone); one who wrote again after it keeps only the new events.

    A failure while updating one user (a state that would turn non-finite, a value the codec
    cannot hold) is confined to that user: their events of the batch the stored state does not
    hold yet become ``internal_error`` dead letters, nothing of theirs is stored, and the other
    users proceed. The table's own errors are not confined: they propagate and stop the batch.

    States are written in ``codebook`` (the serving catalog) and read in it or any of
    ``older_codebooks``. A stored vector built by another model version than ``model_tag`` is
    rebuilt in the serving model's space from its recent items first (:func:`rebase`), the
    same way on a replay, so a hot swap keeps state exactly-once.

    With ``config.replay_records`` off (exactly-once), an event the stored state already held
    gets no snapshot: the transaction that applied it committed its record.

    The states are read, updated and written as rows of whole-batch array operations
    (:mod:`core.state_step`); a value the row reader does not read (an older version, another
    catalog or dimension, a corrupt one) is loaded per user (:func:`load_user_state`) into its
    row first, and so is a state to take into the serving model's space.
    """
    done = Applied([], 0, 0)
    users = list(parsed.by_user)
    raws = []
    for user_id in users:
        bind(parsed.last_index[user_id])
        raws.append(table.get(user_id.encode()))
    events_of = [parsed.by_user[u] for u in users]
    codebooks = [*([codebook] if codebook else []), *older_codebooks]
    rows, unread = read_rows(raws, codebooks, dim, max(map(len, events_of), default=0))
    failures: dict[int, Exception] = {}
    loaded, rebased = {}, set()
    for n in sorted({*unread, *(n for n in range(len(users)) if model_tag and
                                rows.model[n] != model_tag)}):  # fmt: skip
        stored = load_user_state(raws[n], users[n], dim, codebook, older_codebooks) \
            if n in unread else state_of(rows, n)  # fmt: skip
        rows.position[n] = stored.position  # what a failure below dead-letters against
        try:  # a failing rebase is this user's failure too, confined like the update's
            loaded[n] = in_model_space(stored, item_vector, dim, model_tag) if model_tag \
                else stored  # fmt: skip
            put_states(rows, {n: loaded[n]})
        except Exception as exc:  # noqa: BLE001 - any failure here is this user's alone
            failures[n] = exc
            continue
        if loaded[n] is not stored and stored.count > 0:
            rebased.add(n)
    before = list(rows.position)
    updates, non_finite = apply_rows(rows, [() if n in failures else events
                                            for n, events in enumerate(events_of)],
                                     item_vector, config.interest)  # fmt: skip
    failures.update((n, NonFiniteState("an event makes the state non-finite"))
                    for n in non_finite)  # fmt: skip
    kept = [n for n, update in enumerate(updates)
            if n not in failures and update.applied and not update.forgotten]  # fmt: skip
    values = _written(rows, kept, codebook, failures)
    for n, user_id in enumerate(users):
        events, raw, key = events_of[n], raws[n], user_id.encode()
        if n in failures:
            _dead_letter(done, user_id, parsed.messages_of[user_id], before[n], failures[n])
            continue
        update = updates[n]
        done.rebased += n in rebased
        done.duplicates += len(events) - update.applied - update.repeated_ids
        done.repeated_ids += update.repeated_ids
        bind(parsed.last_index[user_id])
        if n in values:
            table[key] = values[n]
        elif update.forgotten:
            del table[key]  # a tombstone even for a gone entry: a replayed delete's may be lost
            # forgotten: a user stored before, or created by this batch's events
            existed = raw is not None or any(e.type != DELETE for e, _ in events)
            done.deleted.extend([key] if existed else [])
        done.applied += update.applied
        repeated_at = set(update.repeated_at)
        # exactly-once (no replayed records): an event applied before a restart had its by-item
        # record committed with it, so it is not sent again
        done.item_events.extend((e, at) for e, at in events
                                if e.type != DELETE and at not in repeated_at and (
                                    config.replay_records or not applied_before(before[n], at)))
        snapshots = update.snapshots
        if snapshots and not update.forgotten:
            done.interests[user_id] = snapshots[-1].state.vector
        if not config.replay_records:
            snapshots = [s for s in snapshots if not applied_before(before[n], s.position)]
        done.snapshots.extend(snapshots[-1:] if config.emit == "coalesce" else snapshots)
    # back in log order (they were grouped by user): without slices the item side skips any
    # event at or below the highest offset it counted from that partition
    done.item_events.sort(key=lambda entry: entry[1])
    return done


def _written(
    rows: StateRows, kept: list[int], codebook: ItemCodebook | None, failures: dict[int, Exception]
) -> dict[int, bytes]:
    """The new values of the ``kept`` rows; a value the codec cannot hold fails its user alone
    (added to ``failures``)."""
    try:
        return dict(zip(kept, write_rows(rows, kept, codebook)))
    except Exception:  # noqa: BLE001 - found again below, user by user
        pass
    values = {}
    for n in kept:
        try:
            values[n] = write_rows(rows, [n], codebook)[0]
        except Exception as exc:  # noqa: BLE001 - this user's value alone
            failures[n] = exc
    return values


def _dead_letter(
    done: Applied, user_id: str, messages: Sequence[Message], position: Position, exc: Exception
) -> None:
    """A failed user's messages the stored state (last applied at ``position``) does not hold
    become dead letters; those it holds were applied before (a replay), not dead-lettered."""
    unapplied = [m for m in messages if not applied_before(position, (m.partition, m.offset))]
    log.error("user %s: update failed; %d events dead-lettered", user_id, len(unapplied),
              exc_info=exc)  # fmt: skip
    error = InvalidEvent("internal_error", f"{type(exc).__name__}: {exc}"[:1000])
    done.dead.extend((message, error) for message in unapplied)
    done.duplicates += len(messages) - len(unapplied)
