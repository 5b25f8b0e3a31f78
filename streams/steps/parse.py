"""A worker's micro-batch parsed: the messages as events, grouped by user, with the bad ones
kept for the dead-letter topic, and the settings the steps read (:class:`StepConfig`).

Plain functions over plain values (no framework), so what is dead-lettered and why, and the
arrival order per user, are tested without a broker (tests/unit/test_steps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Container, Literal, NamedTuple, Protocol, Sequence

from core.events import DELETE, MAX_ABS_VALUE, Event, InvalidEvent, parse_event
from core.interest import InterestConfig


Position = tuple[int, int]  # (partition, offset) of an event on the events topic
MAX_FUTURE_MS = 300_000.0  # how far an event's time may run ahead of its broker timestamp


@dataclass(frozen=True)
class StepConfig:
    """The settings the steps read, and nothing else, so a test builds one in a line."""

    interest: InterestConfig
    top_k: int
    emit: Literal["every", "coalesce"]
    max_future_ms: float = MAX_FUTURE_MS
    max_abs_value: float = MAX_ABS_VALUE
    # an event the stored state already holds (read again after a crash) gets a record again,
    # since its first may have died with the worker; not when records and state commit in one
    # transaction: the state holding it says its record was committed with it
    replay_records: bool = True


class Message(Protocol):
    """What the steps read of a Kafka message (Faust's ``event.message`` has all of it)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def topic(self) -> str: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]] | None: ...


class Fetched(NamedTuple):
    """A Kafka client's record as the steps read a message (a :class:`Message`)."""

    key: bytes | None
    value: bytes
    partition: int
    offset: int
    timestamp: float  # seconds, as Faust's messages have it
    topic: str
    headers: Sequence[tuple[str, bytes]] = ()

    @classmethod
    def of(cls, record: Any) -> Fetched:
        """From an aiokafka or kafka-python record (their timestamps are in ms)."""
        return cls(record.key, record.value, record.partition, record.offset,
                   record.timestamp / 1000.0, record.topic, record.headers or ())  # fmt: skip


@dataclass
class ParsedBatch:
    """A micro-batch parsed and grouped.

    ``by_user`` holds each user's valid events with their positions in arrival order (dict order
    is the order users first appeared); ``last_index`` the batch index of each user's last valid
    message, the Faust event to make current before touching that user's table entry.
    """

    by_user: dict[str, list[tuple[Event, Position]]] = field(default_factory=dict)
    messages_of: dict[str, list[Message]] = field(default_factory=dict)  # to dead-letter a user
    last_index: dict[str, int] = field(default_factory=dict)
    dead: list[tuple[Message, InvalidEvent]] = field(default_factory=list)
    produced: list[float] = field(default_factory=list)  # Kafka timestamps (s) of valid events
    unknown_items: int = 0  # valid events on items the catalog lacks (scored, no vector)
    next_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last offset + 1


def parse_event_message(
    message: Message,
    max_future_ms: float = MAX_FUTURE_MS,
    max_abs_value: float = MAX_ABS_VALUE,
) -> Event:
    """The message's event; raises :class:`InvalidEvent` for bad input, a missing key or one that
    is not the user id (the key is what partitions users: without it, or with a wrong one, a
    user's state would split across partitions), and an event time more than
    ``max_future_ms`` ahead of the broker's timestamp (it would make the user's real events
    later look out of order, decayed to nothing)."""
    event = parse_event(message.value, max_abs_value)
    if message.key is None:
        raise InvalidEvent("missing_key", "the message needs the user_id as its key")
    if message.key != event.user_id.encode():
        raise InvalidEvent("key_mismatch", "message key must be the user_id (partitioning)")
    if event.ts > message.timestamp * 1000.0 + max_future_ms:
        ahead_s = (event.ts - message.timestamp * 1000.0) / 1000.0
        raise InvalidEvent("future_ts", f"ts is {ahead_s:,.0f} s ahead of the broker's time")
    return event


def parse_batch(
    messages: Sequence[Message],
    catalog: Container[str],
    max_future_ms: float = MAX_FUTURE_MS,
    max_abs_value: float = MAX_ABS_VALUE,
) -> ParsedBatch:
    """Parse every message; a bad one is kept with its reason for the dead-letter topic."""
    parsed = ParsedBatch()
    for index, message in enumerate(messages):
        parsed.next_offsets[message.partition] = message.offset + 1  # bad ones are done too
        try:
            event = parse_event_message(message, max_future_ms, max_abs_value)
        except InvalidEvent as exc:
            parsed.dead.append((message, exc))
            continue
        parsed.by_user.setdefault(event.user_id, []).append(
            (event, (message.partition, message.offset))
        )
        parsed.messages_of.setdefault(event.user_id, []).append(message)
        parsed.produced.append(message.timestamp)
        parsed.last_index[event.user_id] = index
        if event.type != DELETE and event.item_id not in catalog:
            parsed.unknown_items += 1
    return parsed
