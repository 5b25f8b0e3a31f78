"""Readers of the user table's value versions 1 to 3, kept so a worker upgraded in place reads
what its predecessor stored (:mod:`core.codec` writes version 4).

Layout, little-endian: ``u8 version | u16 dim | i64 last_ts | u32 count | i32 partition |
i64 offset | u16 n_recent | f32[dim] vector | f32[n_recent] recent weights |
n_recent x (u8 len, utf-8 id) | u16 n_seen | u64[n_seen] seen event-id hashes``.
Version 1 had no recent weights (read as zeros); versions 1 and 2 had no seen ids (read as none).
"""

from __future__ import annotations

import struct

import numpy as np

from core.interest import UserState
from core.state_codec import CorruptState

LEGACY_VERSIONS = (1, 2, 3)
_HEADER = struct.Struct("<BHqIiqH")
_SEEN = struct.Struct("<H")


def legacy_last_ts(data: bytes) -> int:
    if len(data) < _HEADER.size:
        raise CorruptState(f"not a user state ({len(data)} bytes)")
    return _HEADER.unpack_from(data)[2]


def decode_legacy(data: bytes) -> UserState:
    if len(data) < _HEADER.size:
        raise CorruptState(f"not a user state ({len(data)} bytes)")
    _, dim, last_ts, count, partition, offset, n_recent = _HEADER.unpack_from(data)
    start = _HEADER.size
    end = start + 4 * dim
    if len(data) < end:
        raise CorruptState("truncated vector")
    vector = np.frombuffer(data, dtype="<f4", count=dim, offset=start).copy()
    weights = [0.0] * n_recent
    if data[0] >= 2:
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
        raw = data[pos + 1 : pos + 1 + size]
        if len(raw) != size:
            raise CorruptState("truncated recent items")
        try:
            recent.append(raw.decode())
        except UnicodeDecodeError:
            raise CorruptState("a recent item id is not UTF-8") from None
        pos += 1 + size
    seen: tuple[int, ...] = ()
    if data[0] >= 3:
        if len(data) < pos + _SEEN.size:
            raise CorruptState("truncated seen ids")
        (n_seen,) = _SEEN.unpack_from(data, pos)
        if len(data) < pos + _SEEN.size + 8 * n_seen:
            raise CorruptState("truncated seen ids")
        seen = tuple(
            np.frombuffer(data, dtype="<u8", count=n_seen, offset=pos + _SEEN.size).tolist()
        )
    return UserState(
        vector=vector,
        last_ts=last_ts,
        count=count,
        recent=tuple(recent),
        position=(partition, offset),
        recent_weights=tuple(weights),
        seen=seen,
    )
