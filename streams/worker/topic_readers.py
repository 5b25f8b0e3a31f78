"""What each follower (streams/worker/followers.py) makes of the records it read: the newest
readable value per key of its topic, and how many records were unreadable."""

from __future__ import annotations

import numpy as np

from core.codec import CorruptState
from core.item_stats import decode_item_counts, decode_item_vector
from models.content import ENCODER_HEADER, Content, unpack_content
from models.item_learning import Learned
from streams.announcements import Announcement, newest_of


def read_announcements(records: list) -> tuple[dict[str, Announcement], int]:
    """The newest valid announcement of ``records``, and how many were not announcements."""
    newest, bad = newest_of(records)
    return ({"serve": newest} if newest is not None else {}), bad


def read_vectors(records: list) -> tuple[dict[str, Learned], int]:
    """The newest readable vector per item of ``records``, and how many were unreadable."""
    vectors: dict[str, Learned] = {}
    bad = 0
    for record in records:
        if record.value is None:
            continue  # a tombstone: the item keeps what it has
        try:
            model, updates, raw = decode_item_vector(record.value)
            item = record.key.decode()
        except (CorruptState, AttributeError, UnicodeDecodeError):
            bad += 1
            continue
        vectors[item] = Learned(model, updates, np.frombuffer(raw, "<f4").astype(np.float32))
    return vectors, bad


def read_content(records: list) -> tuple[dict[str, Content], int]:
    """The newest readable content vector per item of ``records`` with the encoder that made it
    (its ``streamrec.encoder`` header), and how many were not readable."""
    content: dict[str, Content] = {}
    bad = 0
    for record in records:
        if record.value is None:
            continue  # a retired item: kept, like a learned vector's tombstone
        try:
            encoder = dict(record.headers or ()).get(ENCODER_HEADER, b"").decode()
            content[record.key.decode()] = Content(encoder, unpack_content(record.value))
        except (ValueError, AttributeError, UnicodeDecodeError):
            bad += 1
    return content, bad


def read_stats(records: list) -> tuple[dict[str, tuple[int, int, float, int]], int]:
    """The newest readable counts per item of ``records`` (the head of each value, all a
    worker's board keeps), and how many were unreadable."""
    stats: dict[str, tuple[int, int, float, int]] = {}
    bad = 0
    for record in records:
        if record.value is None:
            continue
        try:
            stats[record.key.decode()] = decode_item_counts(record.value)
        except (CorruptState, AttributeError, UnicodeDecodeError):
            bad += 1
    return stats, bad
