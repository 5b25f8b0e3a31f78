"""What a partition's committed offset says about the records past it, when the batch plane's
slices hold a hot key back (streams/kafka_edge/batch_plane.py).

A transaction commits its partition's offset only up to the first record held back, yet the
other keys' records past it have been applied. A worker that reads the partition again from
that offset (after a crash, or as its next owner) must not apply them twice: a user deleted or
evicted since has no stored position left to skip them by. So the commit carries a note in the
offset's metadata, in the same transaction: up to which offset the partition was read, and which
keys (hashed) still had records to apply from which offset. A re-reader skips every other
record below that read end.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

# keys a note names at most: 16 bytes each, so a note stays far below the 4 KB the broker
# takes by default (offset.metadata.max.bytes); past it, a hot key goes whole, unsliced
MOST_KEYS = 100
_VERSION = "held1"
_ENTRY = 16  # a key's hash, then its first offset not applied
log = logging.getLogger(__name__)


def key_hash(key: bytes | None) -> bytes:
    return hashlib.blake2b(key or b"", digest_size=8).digest()


@dataclass(frozen=True)
class HeldBack:
    """Below ``read_end``, past the committed offset, every record was applied except those of
    the keys in ``since`` (by :func:`key_hash`) from the offset given for each."""

    read_end: int
    since: Mapping[bytes, int]

    def applied(self, record: Any) -> bool:
        """Whether ``record`` (read again past the commit) was applied before."""
        if record.offset >= self.read_end:
            return False
        first = self.since.get(key_hash(record.key))
        return first is None or record.offset < first

    def holds(self, key: bytes) -> bool:
        """Whether ``key`` has records held back (or not read again yet) still to apply."""
        return key_hash(key) in self.since

    def resume(self) -> Resume:
        return Resume(min(self.since.values()), self)

    def encode(self) -> str:
        entries = b"".join(h + first.to_bytes(8, "big") for h, first in sorted(self.since.items()))
        return f"{_VERSION}:{self.read_end}:{base64.urlsafe_b64encode(entries).decode()}"

    @classmethod
    def decode(cls, note: str | None) -> HeldBack | None:
        """The note of a commit; None for a commit without one (or another tool's metadata)."""
        if not note or not note.startswith(_VERSION + ":"):
            return None
        try:
            _, read_end, packed = note.split(":")
            entries = base64.urlsafe_b64decode(packed)
            if len(entries) % _ENTRY:
                raise ValueError(f"{len(entries)} bytes of entries")
            since = {entries[i:i + 8]: int.from_bytes(entries[i + 8:i + _ENTRY], "big")
                     for i in range(0, len(entries), _ENTRY)}  # fmt: skip
            return cls(int(read_end), since) if since else None
        except ValueError as exc:  # a note no worker of ours wrote: read again as before slices
            log.warning("ignoring a committed offset's note that is not one: %s", exc)
            return None


class Resume(NamedTuple):
    """Where a partition's input resumes once a batch is applied (what its transaction commits
    for the consumer group), and what past it was applied already (committed as the offset's
    note; None: nothing)."""

    offset: int
    held: HeldBack | None = None

    @property
    def note(self) -> str:
        return self.held.encode() if self.held is not None else ""


def after_batch(before: HeldBack | None, read_end: int, later: Sequence[Any]) -> HeldBack | None:
    """The note once a batch is applied: ``read_end`` is one past the last record read of the
    partition, ``later`` the records held back (in order). A note read at the commit whose read
    end is not reached yet carries on: its keys' records not read again are still to apply."""
    since: dict[bytes, int] = {}
    for record in later:  # keys that share a hash (None and b"") start at the earlier of them
        h = key_hash(record.key)
        since[h] = min(since.get(h, record.offset), record.offset)
    if before is not None and read_end < before.read_end:
        for h, first in before.since.items():
            unread = max(first, read_end)  # read this time and not held back: applied
            since[h] = min(since.get(h, unread), unread)
        read_end = before.read_end
    return HeldBack(read_end, since) if since else None


def keys_free(before: HeldBack | None, read_end: int) -> int:
    """How many keys a batch may hold back so that its note stays within :data:`MOST_KEYS`."""
    carried = len(before.since) if before is not None and read_end < before.read_end else 0
    return max(0, MOST_KEYS - carried)


class HeldRecords:
    """A partition's records held back, by key, each key's in offset order: a batch takes a
    slice of each held key from the front of its queue, so a batch costs what it takes and how
    many keys are held, not how long a hot key's backlog is."""

    def __init__(self) -> None:
        self.keys: dict[Any, deque] = {}

    def __len__(self) -> int:
        return sum(len(queue) for queue in self.keys.values())

    def take(self, fresh: Sequence[Any], most: int, keys_most: int = MOST_KEYS) -> list[Any]:
        """What a batch applies: of each held key (the first ``keys_most``; any other goes
        whole) at most ``most`` from the front of its queue, then ``fresh`` (in offset order),
        at most ``most`` a key in all; a key past it is held from there on, while fewer than
        ``keys_most`` keys are. The rest stays held, in order."""
        now: list[Any] = []
        taken: dict[Any, int] = {}
        for place, key in enumerate(list(self.keys)):
            queue = self.keys[key]
            count = len(queue) if place >= keys_most else min(most, len(queue))
            now.extend(queue.popleft() for _ in range(count))
            taken[key] = count
            if not queue:
                del self.keys[key]
        for record in fresh:
            queue = self.keys.get(record.key)
            if queue is not None:
                queue.append(record)
                continue
            count = taken.get(record.key, 0)
            if count >= most and len(self.keys) < keys_most:
                self.keys[record.key] = deque([record])
            else:
                taken[record.key] = count + 1
                now.append(record)
        return now

    def heads(self) -> list[Any]:
        """Each held key's first record (what a note names it by)."""
        return [queue[0] for queue in self.keys.values()]

    def records(self) -> list[Any]:
        """Every held record, in offset order."""
        return sorted((r for queue in self.keys.values() for r in queue), key=lambda r: r.offset)
