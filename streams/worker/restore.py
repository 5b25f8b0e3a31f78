"""Restoring the user table from its changelog keeps each user's newest state, not merely the
last one written.

At-least-once has no fencing: a worker that stalls past its session (a zombie: a long GC pause,
a SIGSTOP, a frozen VM) wakes with a batch in flight for partitions that another worker now
owns, and delivers it: its changelog values for users the new owner has since moved on. The
owner's RocksDB is right, but the changelog now ends on older states, and whoever restores that
partition next (a restart, a rebalance, a standby) would serve them, its committed offset past
the events they lack: lost events, found by the soak's zombie (bench/soak.py --zombies).

Every value carries the (partition, offset) of the last event it applied, so a restore can tell:
a value older than what the store holds for that user (same partition, lower offset) is
skipped. Tombstones are always applied (a deletion has no position to compare).

What this cannot mend, and only fenced transactions can: once the broker has compacted the
changelog, the zombie's late value is the one kept for its key, so a worker restoring from an
empty store gets the older state; and a late value written after a user's tombstone brings the
deleted user back.

The zombie itself wrote its late batch into its own RocksDB too, with the changelog's end as
its persisted offset: were it given the partition back, Faust would restore nothing and serve
those older states. It learns what it may be from a failed offset commit (the batch's, the
periodic one or the revocation's: streams/kafka_edge/batch_plane.py), and at revocation
:func:`distrust_local_state` drops that partition's persisted offset, so the next restore reads
the whole changelog partition, newest state first.
Exactly-once with fenced transactions makes a zombie's writes impossible instead (issue 31).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Sequence

import faust

from core.state_codec import position_of
from streams.kafka_edge import compat

log = logging.getLogger(__name__)

Position = tuple[int, int]


def newest_only(
    events: Sequence[Any], stored: Callable[[int, Sequence[bytes]], Sequence[bytes | None]]
) -> tuple[list[Any], int]:
    """The changelog ``events`` (Faust's, each with a ``message``) to apply, in order, and how
    many were skipped as older than the state already stored or applied before them;
    ``stored(partition, keys)`` reads the store's current values."""
    keys: dict[int, list[bytes]] = {}
    for event in events:
        if event.message.value is not None:
            keys.setdefault(event.message.partition, []).append(event.message.key)
    newest: dict[tuple[int, bytes], Position | None] = {}
    for partition, wanted in keys.items():
        wanted = list(dict.fromkeys(wanted))
        for key, value in zip(wanted, stored(partition, wanted)):
            newest[partition, key] = position_of(value) if value is not None else None
    kept, stale = [], 0
    for event in events:
        message = event.message
        slot = (message.partition, message.key)
        if message.value is None:
            newest[slot] = None
        else:
            position = position_of(message.value)
            held = newest.get(slot)
            if position and held and position[0] == held[0] and position[1] < held[1]:
                stale += 1
                continue
            newest[slot] = position
        kept.append(event)
    return kept, stale


def keep_newest_on_restore(table: faust.Table,
                           forgot: Callable[[set[int]], None] = lambda partitions: None) -> None:
    """Make ``table``'s changelog restores and standby updates skip stale values; its
    persisted offsets still advance past them. ``forgot`` hears of the partitions a restore
    or a standby update wrote tombstones into (a deleted or evicted user: their files are to
    be compacted, as the active path's are)."""
    apply = table.apply_changelog_batch

    def stored(partition: int, keys: Sequence[bytes]) -> Sequence[bytes | None]:
        return compat.rocksdb_partition(table, partition).get(list(keys))

    def apply_newest(batch: Iterable[Any]) -> None:
        events = list(batch)
        kept, stale = newest_only(events, stored)
        apply(kept)
        tombstoned = {event.message.partition for event in kept if event.message.value is None}
        if tombstoned:
            forgot(tombstoned)
        if stale:
            log.warning("changelog restore of %s skipped %d values older than the state it "
                        "held (superseded ones on a full reread, or written late by a worker "
                        "that had lost the partition)", table.name, stale)
            offsets: dict[Any, int] = {}
            for event in events:
                tp, offset = event.message.tp, event.message.offset
                offsets[tp] = max(offset, offsets.get(tp, -1))
            for tp, offset in offsets.items():
                table.data.set_persisted_offset(tp, offset)

    table.apply_changelog_batch = apply_newest


def distrust_local_state(table: faust.Table, partitions: Iterable[int]) -> None:
    """Make the next restore of these partitions of ``table`` read their whole changelog (over
    what RocksDB holds, newest state kept): this worker's writes to them since its last commit
    may be a zombie's."""
    for partition in partitions:
        compat.rocksdb_partition(table, partition).delete(compat.persisted_offset_key(table))
        log.warning("%s partition %d: this worker's last offset commit failed (it may have "
                    "been put out of the group); its next restore rereads the whole changelog",
                    table.name, partition)
