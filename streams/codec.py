"""Compact binary codec for :class:`UserState` (the user table's value), versioned.

Layout, little-endian: ``u8 version | u16 dim | i64 last_ts | u32 count | i32 partition |
i64 offset | u16 n_recent | f32[dim] vector | n_recent x (u8 len, utf-8 id)``.
At d=32 with 20 recent ids of ~4 characters that is ~260 bytes, against ~900 as JSON.
"""

from __future__ import annotations

import struct

import numpy as np

from streams.interest import UserState

CODEC_VERSION = 1
_HEADER = struct.Struct("<BHqIiqH")


class CorruptState(ValueError):
    """A table value this codec cannot read (wrong version or truncated)."""


def encode_state(state: UserState) -> bytes:
    vector = np.ascontiguousarray(state.vector, dtype="<f4")
    ids = [item.encode() for item in state.recent]
    parts = [
        _HEADER.pack(
            CODEC_VERSION,
            vector.shape[0],
            state.last_ts,
            state.count,
            state.position[0],
            state.position[1],
            len(ids),
        ),
        vector.tobytes(),
    ]
    for raw in ids:
        parts.append(bytes((len(raw),)))
        parts.append(raw)
    return b"".join(parts)


def decode_state(data: bytes) -> UserState:
    if len(data) < _HEADER.size or data[0] != CODEC_VERSION:
        raise CorruptState(f"not a v{CODEC_VERSION} user state ({len(data)} bytes)")
    _, dim, last_ts, count, partition, offset, n_recent = _HEADER.unpack_from(data)
    start = _HEADER.size
    end = start + 4 * dim
    if len(data) < end:
        raise CorruptState("truncated vector")
    vector = np.frombuffer(data, dtype="<f4", count=dim, offset=start).copy()
    recent = []
    pos = end
    for _ in range(n_recent):
        if pos >= len(data):
            raise CorruptState("truncated recent items")
        size = data[pos]
        recent.append(data[pos + 1 : pos + 1 + size].decode())
        pos += 1 + size
    return UserState(
        vector=vector,
        last_ts=last_ts,
        count=count,
        recent=tuple(recent),
        position=(partition, offset),
    )
