"""Read the soak's topics back from the start, and sort what the events topic holds.

The events topic read back is the truth the soak checks against: what the broker stored and at
which offsets, whatever the producer did during a broker freeze (a message it never got
acknowledged is not expected of the worker; one it wrote twice is seen twice). Readers here
never fail at a deadline: a soak reports what came.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from core.events import Event, InvalidEvent, parse_event
from streams.tools.producer import Message

Position = tuple[int, int]  # (partition, offset), as the worker's records and state name them


class TopicReader:
    """Every partition of ``topic`` from offset 0, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str, partitions: int,
                 isolation: str = "read_uncommitted") -> None:  # fmt: skip
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
            isolation_level=isolation,
            max_partition_fetch_bytes=2 * 1024 * 1024,  # the ~300 KB hostile message and more
        )
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.consumer.assign(self.partitions)
        for tp in self.partitions:
            self.consumer.seek(tp, 0)
        self.records: list[ConsumerRecord] = []

    def poll(self) -> list[ConsumerRecord]:
        for batch in self.consumer.poll(timeout_ms=200, max_records=5000).values():
            self.records.extend(batch)
        return self.records

    def at_end(self) -> bool:
        """Read up to every partition's high watermark, as the last fetch reported it (the
        embedded broker's ListOffsets undercounts; its Fetch answer does not)."""
        for tp in self.partitions:
            highwater = self.consumer.highwater(tp)
            if highwater is None or self.consumer.position(tp) < highwater:
                return False
        return True

    def close(self) -> None:
        self.consumer.close()


def read_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    timeout: float,
    done: Callable[[list[ConsumerRecord]], bool] | None = None,
    isolation: str = "read_uncommitted",
) -> tuple[list[ConsumerRecord], bool]:
    """Records of ``topic`` until ``done(records)`` (default: up to the high watermark) or the
    deadline; returns them and whether ``done`` was reached."""
    reader = TopicReader(bootstrap, topic, partitions, isolation)
    finished = (lambda records: reader.at_end()) if done is None else done
    deadline = time.monotonic() + timeout
    try:
        while True:
            records = reader.poll()
            if finished(records):
                return records, True
            if time.monotonic() > deadline:
                return records, False
    finally:
        reader.close()


@dataclass
class Stored:
    """The events topic, sorted: each user's valid events (first copies, in offset order), the
    later copies of an event_id already seen (retries, planned or the producer's own), the
    planned hostile messages by position, and anything else that did not parse."""

    events_in: int = 0
    valid: dict[str, list[tuple[Event, Position]]] = field(default_factory=dict)
    retries: dict[str, list[tuple[Event, Position]]] = field(default_factory=dict)
    hostile: dict[Position, str] = field(default_factory=dict)
    unplanned: dict[Position, str] = field(default_factory=dict)  # position -> parse reason
    produced_ms: dict[Position, int] = field(default_factory=dict)  # the broker's timestamps

    @property
    def valid_count(self) -> int:
        return sum(len(events) for events in self.valid.values())

    @property
    def retry_count(self) -> int:
        return sum(len(events) for events in self.retries.values())

    def last_offset(self, user: str) -> int:
        """Offset of the user's last valid message (first copy or retry)."""
        return max(p[1] for _, p in [*self.valid[user], *self.retries.get(user, ())])


def sort_stored(records: list[ConsumerRecord], kind_of: dict[Message, str]) -> Stored:
    """Sort the events topic's ``records``; ``kind_of`` names the planned hostile messages."""
    stored = Stored(events_in=len(records))
    seen: set[tuple[str, str]] = set()
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        position = (record.partition, record.offset)
        stored.produced_ms[position] = record.timestamp
        kind = kind_of.get((record.key, record.value))
        if kind is not None:
            stored.hostile[position] = kind
            continue
        try:
            event = parse_event(record.value)
        except InvalidEvent as exc:
            stored.unplanned[position] = exc.reason
            continue
        copy = (event.user_id, event.event_id or f"@{position}")
        into = stored.retries if copy in seen else stored.valid
        seen.add(copy)
        into.setdefault(event.user_id, []).append((event, position))
    return stored


def dead_letter_of(record: ConsumerRecord) -> tuple[Position | None, str]:
    """Where a dead letter came from (None if its header is missing or odd) and its reason."""
    headers = {name: value for name, value in record.headers or []}
    reason = headers.get("streamrec.reason", b"(no reason header)").decode(errors="replace")
    try:
        _, partition, offset = headers["streamrec.source"].decode().rsplit("/", 2)
        return (int(partition), int(offset)), reason
    except (KeyError, ValueError):
        return None, reason


def trigger_of(record: ConsumerRecord) -> Position | None:
    """The events-topic position a recommendation record answers (None if it names none)."""
    try:
        trigger = orjson.loads(record.value)["trigger"]
        return int(trigger["partition"]), int(trigger["offset"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
