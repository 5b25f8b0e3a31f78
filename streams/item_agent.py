"""The item statistics' steps: the user path's events, keyed by item, into the item table.

The user path (streams/app.py) sends each event it applied, or found applied before (a replay:
its first pass may not have got this far), to ``<events topic>.by-item``, keyed by item id, so
each item's events land in one partition whatever user they came from. This agent takes whole
fetches of that topic through the batch plane, as the user path does, and keeps
:class:`core.item_stats.ItemStats` per item in the ``item-stats`` table: read in one multi-get,
written to the changelog and then to RocksDB in one batch (streams/batch_state.py). Each event
carries its position on the events topic, which makes the counts exactly-once however often it
is sent. Plain functions over plain values, so the rules are tested without a broker.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import orjson

from core.codec_legacy import CorruptState
from core.events import MAX_ABS_VALUE, MAX_TS_MS, Event, InvalidEvent
from core.interest import InterestConfig, event_id_hash
from core.item_stats import ItemStats, apply_item_events, decode_item_stats, encode_item_stats
from streams import compat
from streams.batch_state import BatchedUsers
from streams.steps import Message, Position, StateTable

log = logging.getLogger(__name__)


def item_event_records(events: Sequence[tuple[Event, Position]]) -> list[tuple[bytes, bytes]]:
    """``(item id, value)`` records of the by-item topic for the user path's events."""
    return [
        (event.item_id.encode(), orjson.dumps(
            {"i": event.item_id, "t": event.type, "ts": event.ts, "v": event.value,
             "p": at[0], "o": at[1],
             "h": event_id_hash(event.event_id) if event.event_id else None}))  # fmt: skip
        for event, at in events
    ]


@dataclass
class ItemsApplied:
    """What a by-item batch did: events counted, events seen before, and bad records."""

    applied: int = 0
    duplicates: int = 0
    dead: list[tuple[Message, InvalidEvent]] = field(default_factory=list)


def parse_item_records(
    messages: Sequence[Message], interest: InterestConfig, max_abs_value: float = MAX_ABS_VALUE
) -> tuple[dict[str, list[tuple[str, int, float, Position, int | None]]], dict[str, int],
           list]:
    """Each item's ``(type, ts, weight, position, event-id hash)`` in order, the batch index of
    each item's last record (to bind its partition), and the records that are not ours (dead
    letters)."""
    by_item: dict[str, list[tuple[str, int, float, Position, int | None]]] = {}
    last: dict[str, int] = {}
    dead = []
    for index, message in enumerate(messages):
        try:
            obj = orjson.loads(message.value)
            item, kind, ts, value = obj["i"], obj["t"], obj["ts"], obj["v"]
            at, id_hash = (obj["p"], obj["o"]), obj["h"]
            # within what the user path lets through (core/events.py), so nothing a record
            # says can make a statistic non-finite
            if not (isinstance(item, str) and isinstance(kind, str) and _int(ts, 63)
                    and ts < MAX_TS_MS and _int(at[0], 31) and _int(at[1], 63)
                    and (id_hash is None or _int(id_hash, 64))
                    and (value is None or (isinstance(value, (int, float))
                                           and abs(value) <= max_abs_value))):  # fmt: skip
                raise ValueError("a field of the wrong type or range")
            event = Event("", item, kind, ts, value)
            entry = (kind, ts, interest.weight(event), at, id_hash)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            dead.append((message, InvalidEvent("bad_item_event", f"{type(exc).__name__}: {exc}")))
            continue
        by_item.setdefault(event.item_id, []).append(entry)
        last[event.item_id] = index
    return by_item, last, dead


def _int(value: object, bits: int) -> bool:
    """A non-negative whole number below ``2 ** bits`` (what the item state stores)."""
    return type(value) is int and 0 <= value < 2**bits


def apply_items(
    by_item: dict[str, list[tuple[str, int, float, Position, int | None]]],
    table: StateTable,
    half_life_ms: float,
    bind=lambda item: None,
) -> ItemsApplied:
    """Each item's events onto its stored statistics (a corrupt value starts afresh, logged);
    an item is written back only if an event counted."""
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
        stats, applied = apply_item_events(stats, events, half_life_ms)
        done.applied += applied
        done.duplicates += len(events) - applied
        if applied:
            table[key] = encode_item_stats(stats)
    return done


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


async def process_batch(
    batch: Sequence[Message],
    items: Any,
    producer: Any,
    interest: InterestConfig,
    half_life_ms: float,
    dead_letter: Callable[[Message, InvalidEvent], Awaitable[Any]],
    max_abs_value: float = MAX_ABS_VALUE,
) -> ItemsApplied:
    """One fetch of the by-item topic, as the user path's ``process`` does one of events: its
    statistics on the changelog and in RocksDB, and bad records dead-lettered, before it
    returns (and Faust acks it)."""
    by_item, last, dead = parse_item_records(batch, interest, max_abs_value)
    keys: dict[int, list[bytes]] = {}
    for item, index in last.items():
        keys.setdefault(batch[index].partition, []).append(item.encode())
    state = BatchedUsers(lambda partition: compat.rocksdb_partition(items, partition), keys)
    done = apply_items(by_item, state, half_life_ms,
                       bind=lambda item: state.bind(batch[last[item]].partition))  # fmt: skip
    done.dead += dead
    changelog = await state.send_changelog(producer, items.changelog_topic.get_topic_name())
    deliveries = [sent.delivery for sent in changelog]
    for message, exc in done.dead:
        deliveries.append(await dead_letter(message, exc))
    await asyncio.gather(*deliveries)
    await state.write_local(changelog, compat.persisted_offset_key(items))
    return done
