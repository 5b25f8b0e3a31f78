"""What each follower (streams/worker/followers.py) makes of the records it read: the newest
readable value per key of its topic, and the unreadable records, each with its reason and what
was wrong (their dead letters' headers)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from core.codec import CorruptState
from core.item_stats import decode_item_counts, decode_item_vector
from models.content import ENCODER_HEADER, Content, unpack_content
from models.item_learning import Learned
from streams.announcements import Announcement

Refused = tuple[Any, str, str]  # a record, its reason, what was wrong


def unreadable(record: Any, reason: str, exc: Exception) -> Refused:
    return record, reason, f"{type(exc).__name__}: {exc}"[:500]


def read_announcements(records: list) -> tuple[dict[str, Announcement], list[Refused]]:
    """The newest valid announcement of ``records``, and those that are not announcements."""
    newest, refused = None, []
    for record in records:
        try:
            newest = Announcement.model_validate_json(record.value or b"")
        except ValidationError as exc:
            refused.append(unreadable(record, "bad_announcement", exc))
    return ({"serve": newest} if newest is not None else {}), refused


def read_vectors(records: list) -> tuple[dict[str, Learned], list[Refused]]:
    """The newest readable vector per item of ``records``, and the unreadable ones."""
    vectors: dict[str, Learned] = {}
    refused = []
    for record in records:
        if record.value is None:
            continue  # a tombstone: the item keeps what it has
        try:
            model, updates, raw = decode_item_vector(record.value)
            item = record.key.decode()
        except (CorruptState, AttributeError, UnicodeDecodeError) as exc:
            refused.append(unreadable(record, "bad_item_vector", exc))
            continue
        vectors[item] = Learned(model, updates, np.frombuffer(raw, "<f4").astype(np.float32),
                                int(record.timestamp or 0))
    return vectors, refused


def read_content(records: list) -> tuple[dict[str, Content], list[Refused]]:
    """The newest readable content vector per item of ``records`` with the encoder that made it
    (its ``streamrec.encoder`` header), and the unreadable ones."""
    content: dict[str, Content] = {}
    refused = []
    for record in records:
        if record.value is None:
            continue  # a retired item: kept, like a learned vector's tombstone
        try:
            encoder = dict(record.headers or ()).get(ENCODER_HEADER, b"").decode()
            content[record.key.decode()] = Content(encoder, unpack_content(record.value))
        except (ValueError, AttributeError, UnicodeDecodeError) as exc:
            refused.append(unreadable(record, "bad_content_vector", exc))
    return content, refused


def read_stats(records: list) -> tuple[dict[str, tuple[int, int, float, int]], list[Refused]]:
    """The newest readable counts per item of ``records`` (the head of each value, all a
    worker's board keeps), and the unreadable ones."""
    stats: dict[str, tuple[int, int, float, int]] = {}
    refused = []
    for record in records:
        if record.value is None:
            continue
        try:
            stats[record.key.decode()] = decode_item_counts(record.value)
        except (CorruptState, AttributeError, UnicodeDecodeError) as exc:
            refused.append(unreadable(record, "bad_item_stats", exc))
    return stats, refused
