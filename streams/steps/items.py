"""The item path's pure steps: the user path's events, keyed by item, into the item table.

The user path (streams/worker/user_path.py) sends each event it applied, or found applied before (a
replay: its first pass may not have got this far), to ``<events topic>.by-item``, keyed by item id,
so each item's events land in one partition whatever user they came from. The item path takes whole
fetches of that topic through the batch plane, as the user path does, and keeps
:class:`core.item_stats.ItemStats` per item in the ``item-stats`` table: read in one multi-get,
written to the changelog and then to RocksDB in one transaction (streams/worker/item_path.py). Each
event carries its position on the events topic, which makes the counts exactly-once however often
it is sent. Plain functions over plain values, so the rules are tested without a broker.

With online item learning on (``STREAMREC_ITEM_LEARNING``), a record of an engagement also
carries the user's unit interest after their batch, and the item path moves the item's vector by
:class:`models.item_learning.OnlineItems` for each event it counts, keeps the vector in the same
value (so it moves exactly once per event) and sends it to ``<events topic>.item-vectors``,
which every worker follows (streams/worker/followers.py).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field, replace
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import orjson

from core.codec import CorruptState
from core.events import (
    DELETE,
    EVENT_TYPES,
    IMPRESSION,
    MAX_ABS_VALUE,
    MAX_TS_MS,
    Event,
    InvalidEvent,
)
from core.interest import InterestConfig, event_id_hash
from core.seal import Seal
from core.item_stats import (
    ItemStats,
    apply_item_events,
    decode_item_stats,
    encode_item_stats,
    encode_item_vector,
)
from models.item_learning import OnlineItems
from streams.steps.parse import Message, Position
from streams.steps.users import StateTable

log = logging.getLogger(__name__)
# what the user path sends to the by-item topic: every event it applies but a delete request
ITEM_EVENT_TYPES = frozenset(EVENT_TYPES) - {DELETE}


def item_event_records(
    events: Sequence[tuple[Event, Position]],
    interests: Mapping[str, np.ndarray] | None = None,
    model_tag: int = 0,
) -> list[tuple[bytes, bytes]]:
    """``(item id, value)`` records of the by-item topic for the user path's events; with
    ``interests`` (user id -> interest after the batch: online item learning) an event that is
    not an impression carries its user's, unit length, as base64 float16 under ``"u"``, and the
    tag of the model whose space it is in under ``"m"``."""
    out = []
    for event, at in events:
        record = {"i": event.item_id, "t": event.type, "ts": event.ts, "v": event.value,
                  "p": at[0], "o": at[1],
                  "h": event_id_hash(event.event_id) if event.event_id else None}  # fmt: skip
        user = interests.get(event.user_id) if interests and event.type != IMPRESSION else None
        if user is not None and (norm := float(np.linalg.norm(user))) > 0 and np.isfinite(norm):
            record["u"] = base64.b64encode((user / norm).astype("<f2").tobytes()).decode()
            record["m"] = model_tag
        out.append((event.item_id.encode(), orjson.dumps(record)))
    return out


@dataclass
class ItemsApplied:
    """What a by-item batch did: events counted, events seen before, and bad records."""

    applied: int = 0
    duplicates: int = 0
    dead: list[tuple[Message, InvalidEvent]] = field(default_factory=list)
    # item id -> its learned vector record (model tag, updates, vector), to send to every worker
    vectors: dict[str, bytes] = field(default_factory=dict)


class ItemRecords(NamedTuple):
    """A by-item fetch parsed: each item's ``(type, ts, weight, position, event-id hash)`` in
    order, the batch index of each item's last record (to bind its partition), the records
    that are not ours (dead letters), the users' unit interests by event position, and the
    batch index of the record that claimed each position."""

    by_item: dict[str, list[tuple[str, int, float, Position, int | None]]]
    last: dict[str, int]
    dead: list[tuple[Message, InvalidEvent]]
    interests: dict[Position, np.ndarray]
    at: dict[Position, int] = {}

    def claimed(self) -> dict[int, int]:
        """The highest offset claimed on each events partition."""
        highest: dict[int, int] = {}
        for partition, offset in self.at:
            highest[partition] = max(offset, highest.get(partition, -1))
        return highest

    def within(self, ends: Mapping[int, int], messages: Sequence[Message]) -> ItemRecords:
        """Without the events at or past their events partition's end (``ends``: its next
        offset), each dead-lettered: no user path applied an event that is not there yet, and
        a position far ahead (2**62) would make every later real event of the item look
        counted (issue 32 #4)."""
        past = {at for at in self.at if at[1] >= ends.get(at[0], 0)}
        if not past:
            return self
        by_item = {item: kept for item, entries in self.by_item.items()
                   if (kept := [e for e in entries if e[3] not in past])}  # fmt: skip
        dead = self.dead + [(messages[self.at[at]], InvalidEvent(
            "bad_item_event", f"position {at[0]}/{at[1]} past the events topic's end "
            f"{ends.get(at[0], 0)}")) for at in sorted(past)]  # fmt: skip
        return ItemRecords(by_item, {i: n for i, n in self.last.items() if i in by_item}, dead,
                           self.interests, {at: n for at, n in self.at.items() if at not in past})


def parse_item_records(
    messages: Sequence[Message],
    interest: InterestConfig,
    max_abs_value: float = MAX_ABS_VALUE,
    space: tuple[int, int] | None = None,
    partitions: int = 2**31,
    seal: Seal | None = None,
) -> ItemRecords:
    """The records parsed. Each must be what the user path writes: its MAC when there is a
    ``seal`` (core/seal.py), its key the item, an event type it sends here, a rating's value,
    a position on one of the events topic's ``partitions`` (whether the topic has it yet,
    :meth:`ItemRecords.within` says). An interest (``"u"``) is read only with ``space``, the
    learner's (dimension, model tag), and only if its ``"m"`` is that tag (a user path on
    another version wrote it: the event still counts, with no step); then it must be that many
    finite float16 numbers of about unit length."""
    by_item: dict[str, list[tuple[str, int, float, Position, int | None]]] = {}
    last: dict[str, int] = {}
    dead = []
    interests: dict[Position, np.ndarray] = {}
    claimed_at: dict[Position, int] = {}
    for index, message in enumerate(messages):
        if seal is not None and not seal.verifies(message.topic, message.key, message.value,
                                                  message.headers):  # fmt: skip
            dead.append((message, InvalidEvent("bad_mac", "no valid MAC of the internal key")))
            continue
        try:
            obj = orjson.loads(message.value)
            item, kind, ts, value = obj["i"], obj["t"], obj["ts"], obj["v"]
            at, id_hash = (obj["p"], obj["o"]), obj["h"]
            # within what the user path lets through (core/events.py), so nothing a record
            # says can make a statistic non-finite
            if not (isinstance(item, str) and message.key == item.encode()
                    and kind in ITEM_EVENT_TYPES and (kind != "rating" or value is not None)
                    and _int(ts, 63) and ts < MAX_TS_MS
                    and _int(at[0], 31) and at[0] < partitions and _int(at[1], 63)
                    and (id_hash is None or _int(id_hash, 64))
                    and (value is None or (isinstance(value, (int, float))
                                           and abs(value) <= max_abs_value))):  # fmt: skip
                raise ValueError("a field of the wrong type or range")
            event = Event("", item, kind, ts, value)
            entry = (kind, ts, interest.weight(event), (at[0], at[1]), id_hash)
            if space is not None and obj.get("u") is not None:
                if not _int(obj.get("m"), 32):
                    raise ValueError("an interest without its model tag")
                if obj["m"] == space[1]:
                    interests[entry[3]] = _unit_interest(obj["u"], space[0])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            dead.append((message, InvalidEvent("bad_item_event", f"{type(exc).__name__}: {exc}")))
            continue
        by_item.setdefault(event.item_id, []).append(entry)
        last[event.item_id] = index
        claimed_at[entry[3]] = index
    return ItemRecords(by_item, last, dead, interests, claimed_at)


def _unit_interest(text: object, dim: int) -> np.ndarray:
    """``"u"`` read back, or ValueError: a vector of another size, not finite or not unit."""
    if not isinstance(text, str):
        raise ValueError("an interest that is not base64 text")
    vector = np.frombuffer(base64.b64decode(text, validate=True), dtype="<f2")
    if vector.shape != (dim,):
        raise ValueError(f"an interest of {vector.size} numbers, not {dim}")
    vector = vector.astype(np.float32)
    if not (np.isfinite(vector).all() and abs(float(np.linalg.norm(vector)) - 1.0) < 0.01):
        raise ValueError("an interest that is not a finite unit vector")
    return vector


def _int(value: object, bits: int) -> bool:
    """A non-negative whole number below ``2 ** bits`` (what the item state stores)."""
    return type(value) is int and 0 <= value < 2**bits


def apply_items(
    by_item: dict[str, list[tuple[str, int, float, Position, int | None]]],
    table: StateTable,
    half_life_ms: float,
    bind=lambda item: None,
    learner: OnlineItems | None = None,
    interests: Mapping[Position, np.ndarray] | None = None,
    by_position: bool = True,
) -> ItemsApplied:
    """Each item's events onto its stored statistics (a corrupt value starts afresh, logged);
    an item is written back only if an event counted. With a ``learner`` each counted event
    that ``interests`` has a user for moves the item's vector, and every item with a vector in
    the learner's space that had such an event in the batch (counted now or before: its record
    may not have reached the workers) is in ``vectors``. ``by_position`` off: a position at or
    below the item's highest counted one is not skipped (:func:`core.item_stats.apply_item_events`
    says when)."""
    done = ItemsApplied()
    for item, events in by_item.items():
        bind(item)
        key = item.encode()
        raw = table.get(key)
        stats = ItemStats()
        if raw is not None:
            try:
                stats = decode_item_stats(raw)
            except CorruptState:
                log.exception("item %s: unreadable statistics, starting afresh", item)
        stats, applied = apply_item_events(stats, events, half_life_ms, by_position)
        done.applied += len(applied)
        done.duplicates += len(events) - len(applied)
        if learner is not None and interests:
            stats = _learned(item, stats, applied, events, learner, interests, done)
        if applied:
            table[key] = encode_item_stats(stats)
    return done


def _learned(item: str, stats: ItemStats, applied: list, events: list, learner: OnlineItems,
             interests: Mapping[Position, np.ndarray], done: ItemsApplied) -> ItemStats:  # fmt: skip
    """``stats`` with the vector moved by the applied engagements; records the vector to send."""
    engaged = [(e[3], interests[e[3]]) for e in applied if e[2] > 0 and e[3] in interests]
    if engaged:
        vector, updates = learner.learn(
            item, learner.start(item, stats.vector, stats.vector_model, stats.vector_updates),
            engaged)  # fmt: skip
        stats = replace(stats, vector=vector.astype("<f4").tobytes(), vector_model=learner.tag,
                        vector_updates=updates)  # fmt: skip
    if stats.vector and any(e[2] > 0 and e[3] in interests for e in events):
        done.vectors[item] = encode_item_vector(stats.vector_model, stats.vector_updates,
                                                stats.vector)  # fmt: skip
    return stats


def stats_view(stats: ItemStats, now_ts: int, half_life_ms: float) -> dict:
    """What GET /items/ID/stats says."""
    return {
        "impressions": stats.impressions,
        "positives": stats.positives,
        "popularity": stats.popularity_at(max(now_ts, stats.last_ts), half_life_ms),
        "first_seen_ts": stats.first_ts,
        "last_seen_ts": stats.last_ts,
        "beta_posterior": {"alpha": stats.alpha, "beta": stats.beta,
                           "mean": stats.alpha / (stats.alpha + stats.beta)},  # fmt: skip
    }
