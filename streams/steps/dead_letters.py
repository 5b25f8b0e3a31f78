"""The dead-letter copy of a message: its bytes, why it was refused and where from.

A dead letter must always be writable, or the worker could never move past the message: one too
large for the broker is cut to fit, with what identifies the original (size, SHA-256, source).
"""

from __future__ import annotations

import hashlib

from core.events import InvalidEvent
from streams.steps.parse import Message

DLQ_MAX_BYTES = 256 * 1024  # a dead letter larger than this is stored truncated


def dead_letter_headers(message: Message, exc: InvalidEvent) -> list[tuple[str, bytes]]:
    """Why and where from, for the dead-letter copy of ``message`` (its bytes go unchanged)."""
    source = f"{message.topic}/{message.partition}/{message.offset}"
    return [
        ("streamrec.reason", exc.reason.encode()),
        ("streamrec.detail", exc.detail.encode()[:2000]),
        ("streamrec.source", source.encode()),
    ]


def dead_letter_record(
    message: Message, exc: InvalidEvent, max_bytes: int = DLQ_MAX_BYTES
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """``(key, value, headers)`` of the dead letter for ``message``.

    The bytes go unchanged while they fit in ``max_bytes``; a larger message (the broker would
    refuse it, and the worker could not move past it) is stored cut to fit, with its full size,
    its SHA-256 and ``streamrec.truncated`` in the headers beside where it came from.
    """
    headers = dead_letter_headers(message, exc)
    key, value = message.key, message.value
    size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)
    if size <= max_bytes:
        return key, value, headers
    source_headers = [(n, v[:120] if n == "streamrec.detail" else v) for n, v in headers]
    headers = source_headers + [
        ("streamrec.truncated", b"1"),
        ("streamrec.size", str(len(value or b"")).encode()),
        ("streamrec.key_size", str(len(key or b"")).encode()),
        ("streamrec.sha256", hashlib.sha256(value or b"").hexdigest().encode()),
        ("streamrec.key_sha256", hashlib.sha256(key or b"").hexdigest().encode()),
    ]
    # headers are under 1 KiB (the detail cut to 120 bytes), the smallest max_bytes allowed
    room = max(0, max_bytes - sum(len(n) + len(v) for n, v in headers) - 64)  # record framing
    key = None if key is None else key[: min(len(key), 1024, room // 2)]
    value = None if value is None else value[: max(0, room - len(key or b""))]
    return key, value, headers
