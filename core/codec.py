"""Compact binary codec for :class:`UserState` (the user table's value), versioned.

Layout, little-endian: ``u8 version | u16 dim | i64 last_ts | u32 count | i32 partition |
i64 offset | u16 n_recent | f32[dim] vector | f32[n_recent] recent weights |
n_recent x (u8 len, utf-8 id)``.
At d=32 with 20 recent ids of ~4 characters that is ~340 bytes, against ~1,200 as JSON.
Version 1 had no recent weights; it is read with zero weights.
"""

from __future__ import annotations

import struct

import numpy as np

from core.interest import UserState

CODEC_VERSION = 2
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
        np.asarray(state.recent_weights, dtype="<f4").tobytes(),
    ]
    for raw in ids:
        parts.append(bytes((len(raw),)))
        parts.append(raw)
    return b"".join(parts)


def decode_state(data: bytes) -> UserState:
    if len(data) < _HEADER.size or data[0] not in (1, CODEC_VERSION):
        raise CorruptState(f"not a v1 or v{CODEC_VERSION} user state ({len(data)} bytes)")
    _, dim, last_ts, count, partition, offset, n_recent = _HEADER.unpack_from(data)
    start = _HEADER.size
    end = start + 4 * dim
    if len(data) < end:
        raise CorruptState("truncated vector")
    vector = np.frombuffer(data, dtype="<f4", count=dim, offset=start).copy()
    weights = [0.0] * n_recent
    if data[0] == CODEC_VERSION:
        if len(data) < end + 4 * n_recent:
            raise CorruptState("truncated recent weights")
        weights = np.frombuffer(data, dtype="<f4", count=n_recent, offset=end).tolist()
        end += 4 * n_recent
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
        recent_weights=tuple(weights),
    )
