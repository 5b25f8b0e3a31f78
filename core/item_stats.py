"""Per-item statistics, kept by the item path from the events repartitioned by item.

What exploration, cold start and the trending fallback read of an item: how often it was shown
(``impression`` events) and chosen (events of positive weight), its popularity decayed in event
time (the sum of positive weights, each halved every ``half_life_ms``, lazily as in
core/interest.py, so arrival order does not matter), when it was first and last seen, and the
Beta posterior of its positive rate: Beta(1 + positives, 1 + max(0, impressions - positives))
from a uniform prior, each impression a trial and each positive a success (positives without an
impression, found by search or browsing, add successes and no failures).

Exactly once: every event carries its position on the events topic, and the state keeps the
highest applied offset of each events partition, so an event sent again (a worker's replay after
a crash, or the item path's own) is skipped; and, like a user's state, the last 32 event ids,
so a producer retry that a replay sends (the user path skipped it the first time, but a replay
cannot tell it from the event it repeats) is skipped too. A small binary value.

With online item learning (models/item_learning.py) the value also holds the item's learned
vector, the model version it is in and how many updates made it, so a vector moves exactly once
per event by the same rules (version 2 of the value; version 1, without a vector, still reads).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from core.codec import CorruptState
from core.events import IMPRESSION

ITEM_STATS_VERSION = 2
# version, impressions, positives, popularity, last, first, sources, seen ids
_HEAD = struct.Struct("<BQQdqqHH")
_VECTOR_HEAD = struct.Struct("<IIH")  # model tag, updates, dimension (0: no vector)
_SOURCE = struct.Struct("<iq")  # events partition, highest applied offset
SEEN_IDS = 32  # the item's last event-id hashes: a producer retry replayed is still one event


@dataclass(frozen=True)
class ItemStats:
    impressions: int = 0
    positives: int = 0
    popularity: float = 0.0  # decayed sum of positive weights at ``last_ts``
    last_ts: int = 0  # ms, newest event time seen
    first_ts: int = -1  # ms, oldest event time seen (-1: none yet)
    applied: Mapping[int, int] = field(default_factory=dict)  # partition -> highest offset
    seen: tuple[int, ...] = ()  # the last SEEN_IDS event-id hashes counted, oldest first
    vector: bytes = b""  # learned online: float32 little-endian (empty: none learned)
    vector_model: int = 0  # version tag of the model whose space the vector is in
    vector_updates: int = 0  # the online steps that made it in that model's space

    @property
    def alpha(self) -> int:
        return 1 + self.positives

    @property
    def beta(self) -> int:
        return 1 + max(0, self.impressions - self.positives)

    def popularity_at(self, ts: int, half_life_ms: float) -> float:
        """The decayed popularity at event time ``ts`` (not before ``last_ts``)."""
        return self.popularity * 2.0 ** (-max(0, ts - self.last_ts) / half_life_ms)


def beta_posterior(impressions: np.ndarray, positives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:attr:`ItemStats.alpha` and :attr:`ItemStats.beta` over arrays of counts."""
    return 1.0 + positives, 1.0 + np.maximum(0.0, impressions - positives)


def apply_item_events(
    stats: ItemStats,
    events: Iterable[tuple[str, int, float, tuple[int, int], int | None]],
    half_life_ms: float,
    by_position: bool = True,
) -> tuple[ItemStats, list[tuple[str, int, float, tuple[int, int], int | None]]]:
    """Apply ``(type, ts, weight, (partition, offset), event-id hash or None)`` in order;
    returns the new stats and the events applied (the rest were counted before: at or below
    their partition's highest counted offset, or repeating a recent event id). The vector is
    kept as it is: the caller steps it for the applied events.

    ``by_position`` off, the offset does not decide: for user paths that hold a hot user's events
    back (the batch plane's slices), whose by-item records then come out of offset order, under
    exactly-once, where each by-item record is read once and none is sent twice."""
    applied = dict(stats.applied)
    seen = stats.seen
    impressions, positives, popularity = stats.impressions, stats.positives, stats.popularity
    last, first = stats.last_ts, stats.first_ts
    done = []
    for entry in events:
        kind, ts, weight, (partition, offset), id_hash = entry
        if by_position and offset <= applied.get(partition, -1):
            continue
        applied[partition] = max(offset, applied.get(partition, -1))
        if id_hash is not None:
            if id_hash in seen:  # a producer retry of an event counted (the user path skips
                continue  # it, but after a crash its replay cannot tell it from the first)
            seen = (seen + (id_hash,))[-SEEN_IDS:]
        done.append(entry)
        first = ts if first < 0 else min(first, ts)
        positive = kind != IMPRESSION and weight > 0
        if ts >= last:  # the popularity moves to the newest time seen, decayed
            popularity *= 2.0 ** (-(ts - last) / half_life_ms)
            last, added = ts, weight
        else:  # older than what is held: added already decayed
            added = weight * 2.0 ** (-(last - ts) / half_life_ms)
        impressions += kind == IMPRESSION
        positives += positive
        popularity += added if positive else 0.0
    # one new state for the whole fold, not one per event (this runs once per event)
    return ItemStats(impressions, positives, popularity, last, first, applied, seen,
                     stats.vector, stats.vector_model, stats.vector_updates), done


def encode_item_stats(stats: ItemStats) -> bytes:
    """Version 1 when there is no vector (what a worker without item learning writes, and
    reads back after a downgrade), version 2 with one."""
    version = ITEM_STATS_VERSION if stats.vector else 1
    parts = [_HEAD.pack(version, stats.impressions, stats.positives, stats.popularity,
                        stats.last_ts, stats.first_ts, len(stats.applied), len(stats.seen))]
    parts += [_SOURCE.pack(p, o) for p, o in sorted(stats.applied.items())]
    parts.append(struct.pack(f"<{len(stats.seen)}Q", *stats.seen))
    if stats.vector:
        parts.append(_VECTOR_HEAD.pack(stats.vector_model, stats.vector_updates,
                                       len(stats.vector) // 4))  # fmt: skip
        parts.append(stats.vector)
    return b"".join(parts)


def decode_item_stats(data: bytes) -> ItemStats:
    if len(data) < _HEAD.size or data[0] not in (1, ITEM_STATS_VERSION):
        raise CorruptState(f"not item stats ({len(data)} bytes)")
    version, impressions, positives, popularity, last_ts, first_ts, n, n_seen = \
        _HEAD.unpack_from(data)  # fmt: skip
    end = _HEAD.size + n * _SOURCE.size + 8 * n_seen
    model = updates = dim = 0
    if version == ITEM_STATS_VERSION:  # version 1 has no vector
        if len(data) < end + _VECTOR_HEAD.size:
            raise CorruptState("truncated item stats")
        model, updates, dim = _VECTOR_HEAD.unpack_from(data, end)
        end += _VECTOR_HEAD.size
    if len(data) != end + 4 * dim:
        raise CorruptState("truncated item stats")
    applied = dict(_SOURCE.unpack_from(data, _HEAD.size + i * _SOURCE.size) for i in range(n))
    seen = struct.unpack_from(f"<{n_seen}Q", data, _HEAD.size + n * _SOURCE.size)
    return ItemStats(impressions, positives, popularity, last_ts, first_ts, applied, seen,
                     bytes(data[end:]), model, updates)


def decode_item_counts(data: bytes) -> tuple[int, int, float, int]:
    """Only the counts at the head of a value: impressions, positives, popularity and its time
    (what a worker's item board keeps of every item, read without the rest)."""
    if len(data) < _HEAD.size or data[0] not in (1, ITEM_STATS_VERSION):
        raise CorruptState(f"not item stats ({len(data)} bytes)")
    _, impressions, positives, popularity, last_ts, _, _, _ = _HEAD.unpack_from(data)
    return impressions, positives, popularity, last_ts


def encode_item_vector(model: int, updates: int, vector: bytes) -> bytes:
    """A learned vector as ``<events>.item-vectors`` carries it: model tag, updates, float32s."""
    return _VECTOR_HEAD.pack(model, updates, len(vector) // 4) + vector


def decode_item_vector(data: bytes) -> tuple[int, int, bytes]:
    """(model tag, updates, float32 little-endian bytes), or CorruptState."""
    if len(data) < _VECTOR_HEAD.size:
        raise CorruptState(f"not an item vector ({len(data)} bytes)")
    model, updates, dim = _VECTOR_HEAD.unpack_from(data)
    if len(data) != _VECTOR_HEAD.size + 4 * dim:
        raise CorruptState("truncated item vector")
    return model, updates, bytes(data[_VECTOR_HEAD.size :])
