"""Forgetting users: deletion requests and the TTL, down to the worker's local disk.

A ``delete`` event removes the user's table entry (streams/steps/users.py), a tombstone on the
changelog and in RocksDB (streams/worker/transaction.py), so a restored worker never sees the user
again. With ``STREAMREC_USER_TTL`` a sweep evicts users silent for longer than that in *event
time*: each partition's clock is the newest event time the worker has applied on it, so replaying a
log evicts what living through it evicted. A RocksDB delete only writes a tombstone of its own: the
old value stays in the SST files until they are compacted, so partitions that lost a user are
compacted and reopened (a timer calls :meth:`Retention.compact`; streams.kafka_edge.compat says
why).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Container, Iterable, Mapping

from core.codec import CorruptState, stored_last_ts
from core.interest import past_ttl
from streams.kafka_edge.compat import FAUST_ROWS
from streams.steps.parse import ParsedBatch

log = logging.getLogger(__name__)

SWEEPS_PER_TTL = 10  # a user is evicted at most ttl / 10 of event time after expiring
COMPACT_EVERY_S = 5.0


def expired_users(
    rows: Iterable[tuple[bytes, bytes]], watermark_ms: float, ttl_ms: float
) -> list[bytes]:
    """Keys of the stored users whose newest event is more than ``ttl_ms`` before the
    partition's event time ``watermark_ms``. A value this codec cannot read is left alone: it
    may be a newer worker's format in a rolling upgrade, not ours to judge."""
    expired = []
    for key, raw in rows:
        if key.startswith(FAUST_ROWS):
            continue  # Faust's own rows (its persisted changelog offset), not a user
        try:
            if past_ttl(stored_last_ts(raw), watermark_ms, ttl_ms):
                expired.append(key)
        except CorruptState:
            log.warning("user %r: unreadable state left to the TTL sweep of its writer", key)
    return expired


class Retention:
    """Per-partition event-time watermarks, the TTL sweep and the compaction of what it (or a
    delete request) removed."""

    def __init__(
        self,
        partitions: Callable[[], Mapping[int, Any]],
        compact_partition: Callable[[int], bool],
        ttl_ms: float | None,
    ) -> None:
        # partition -> open rocksdict.Rdict (streams.kafka_edge.compat)
        self.partitions = partitions
        self.compact_partition = compact_partition
        self.ttl_ms = ttl_ms
        self.watermarks: dict[int, int] = {}
        self.next_sweep: dict[int, float] = {}
        self.dirty: set[int] = set()

    @property
    def expires(self) -> bool:
        """Whether there is a TTL to sweep for."""
        return self.ttl_ms is not None and not math.isinf(self.ttl_ms)

    def observe(self, parsed: ParsedBatch) -> None:
        """Advance each partition's event time to the newest valid event of the batch."""
        for events in parsed.by_user.values():
            for event, (partition, _) in events:
                if event.ts > self.watermarks.get(partition, -1):
                    self.watermarks[partition] = event.ts

    def forgot(self, partitions: set[int]) -> None:
        """Users were deleted from these partitions: compact them at the next chance."""
        self.dirty |= partitions

    def sweep(self, delete: Callable[[int, list[bytes]], int],
              spared: Callable[[bytes], bool] = lambda key: False,
              partitions: Container[int] | None = None) -> int:  # fmt: skip
        """Evict the expired users of every partition (of ``partitions``, the batch's, if
        given: a transaction writes its own partition's tombstones) whose event time moved a
        sweep interval with ``delete(partition, keys)`` (the batch's tombstones,
        streams/worker/transaction.py; it returns how many it added), but not those ``spared``
        (events of theirs are held back by the batch plane's slices: applied in order, they
        would have kept the user alive). Returns the users evicted."""
        if not self.expires:
            return 0
        evicted = 0
        dbs = self.partitions()
        for partition, watermark in self.watermarks.items():
            if watermark < self.next_sweep.get(partition, -math.inf) or partition not in dbs or (
                    partitions is not None and partition not in partitions):  # fmt: skip
                continue
            self.next_sweep[partition] = watermark + self.ttl_ms / SWEEPS_PER_TTL
            expired = [key for key in expired_users(dbs[partition].items(), watermark,
                                                    self.ttl_ms) if not spared(key)]  # fmt: skip
            if not expired:
                continue
            evicted += delete(partition, expired)  # a user this batch wrote is not expired
            self.dirty.add(partition)
            log.info("partition %d: %d users expired (TTL)", partition, len(expired))
        return evicted

    def compact(self) -> int:
        """Compact the partitions that lost users, so their old values leave the disk; returns
        how many were compacted."""
        done = sum(self.compact_partition(partition) for partition in sorted(self.dirty))
        self.dirty.clear()
        return done
