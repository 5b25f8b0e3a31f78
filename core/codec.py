"""Compact binary codec for :class:`UserState` (the user table's value), versioned.

Version 4, little-endian::

    u8 version | u32 codebook fingerprint (0: none) | u32 model tag | u16 dim | i64 last_ts |
    u32 count |
    i32 partition | i64 offset | u16 n_recent | u8 code width |
    i16 exponent, i16[dim] vector | i16 exponent, i16[n_recent] recent weights |
    n_recent x code (width bytes; k > 0: the codebook's item k - 1; 0: an id stored as a string) |
    per code 0, in order: u8 length, utf-8 id | u16 n_seen | u64[n_seen] seen event-id hashes

The arrays are 16-bit integers under one power-of-two scale each (:mod:`core.precision`), the
grid the state math keeps them on, so a round trip is exact both ways: a state decodes to what
was encoded, and bytes re-encode to themselves (the decoded state keeps its stored form). An item in the catalog's codebook takes the
fewest bytes of 1, 2 or 4 that hold the state's largest code (2 for MovieLens' 1,682 items): a
fixed width per state, so the codes decode as one array (varints were 4 bytes smaller at
MovieLens' size and took 18 µs more per state to read). An item outside the codebook (one the
model has not seen) is stored as its string. At d = 64 with 50 recent items that is 372 bytes,
against 740 in version 3, plus 8 bytes per remembered event id. Versions 1 to 3 are still read
(:mod:`core.codec_legacy`).
"""

from __future__ import annotations

import struct
from typing import Iterable

import numpy as np

from core.codebook import ItemCodebook
from core.codec_legacy import LEGACY_VERSIONS, CorruptState, decode_legacy, legacy_last_ts
from core.interest import StoredForm, UserState
from core.precision import MAX_EXPONENT, MIN_EXPONENT, Blocks, from_blocks, to_blocks

__all__ = ["CODEC_VERSION", "CorruptState", "UnknownCodebook", "decode_state", "encode_state",
           "stored_last_ts"]  # fmt: skip

CODEC_VERSION = 4
_HEADER = struct.Struct("<BIIHqIiqHB")
_EXPONENT = struct.Struct("<h")
_SEEN = struct.Struct("<H")
_CODE_TYPES = {1: "<u1", 2: "<u2", 4: "<u4"}


class UnknownCodebook(CorruptState):
    """A state whose recent items are indices into a catalog this reader was not given."""

    def __init__(self, fingerprint: int) -> None:
        super().__init__(f"recent items index an unknown catalog (fingerprint {fingerprint:08x})")
        self.fingerprint = fingerprint


def encode_state(state: UserState, codebook: ItemCodebook | None = None) -> bytes:
    """The state as bytes; its recent items as indices into ``codebook`` where it has them."""
    if len(state.recent) != len(state.recent_weights):
        raise ValueError(f"{len(state.recent)} recent items but {len(state.recent_weights)} weights")
    lookup = codebook.code if codebook else {}
    codes = [lookup.get(item, 0) for item in state.recent]
    largest = max(codes, default=0)
    width = 1 if largest < 2**8 else 2 if largest < 2**16 else 4
    parts = [
        _HEADER.pack(
            CODEC_VERSION, codebook.fingerprint if codebook else 0, state.model,
            state.vector.shape[0], state.last_ts, state.count, state.position[0],
            state.position[1], len(codes), width,
        ),
    ]  # fmt: skip
    form = state.stored
    if form is not None and form.holds(state.vector, state.recent_weights):
        arrays = (form.vector_blocks, form.weights_blocks)
    else:  # a state the math did not make (a test's, an older version's): snapped here
        arrays = (to_blocks(state.vector), to_blocks(np.asarray(state.recent_weights)))
    for exponent, integers in arrays:
        parts += (_EXPONENT.pack(exponent), np.asarray(integers, "<i2").tobytes())
    parts.append(np.asarray(codes, dtype=_CODE_TYPES[width]).tobytes())
    for item, code in zip(state.recent, codes):
        if code == 0:
            raw = item.encode()
            parts += (bytes((len(raw),)), raw)
    parts += (_SEEN.pack(len(state.seen)), np.asarray(state.seen, dtype="<u8").tobytes())
    return b"".join(parts)


def stored_last_ts(data: bytes) -> int:
    """The newest event time of a stored state, read from the header alone (the TTL sweep
    reads every user's; decoding the vector and ids for that would be wasted)."""
    if not data or data[0] not in (*LEGACY_VERSIONS, CODEC_VERSION):
        raise CorruptState(f"not a user state ({len(data)} bytes)")
    if data[0] != CODEC_VERSION:
        return legacy_last_ts(data)
    if len(data) < _HEADER.size:
        raise CorruptState(f"truncated header ({len(data)} bytes)")
    return _HEADER.unpack_from(data)[4]


def decode_state(
    data: bytes, codebooks: Iterable[ItemCodebook] = (), *, drop_unknown_items: bool = False
) -> UserState:
    """The state ``data`` holds. Its recent items resolve with the codebook of the fingerprint
    it names; without that codebook it raises :class:`UnknownCodebook`, or with
    ``drop_unknown_items`` keeps everything but the recent items (position, seen ids, vector)."""
    if not data or data[0] not in (*LEGACY_VERSIONS, CODEC_VERSION):
        raise CorruptState(f"not a v1..v{CODEC_VERSION} user state ({len(data)} bytes)")
    if data[0] != CODEC_VERSION:
        return decode_legacy(data)
    if len(data) < _HEADER.size:
        raise CorruptState(f"truncated header ({len(data)} bytes)")
    _, fingerprint, model, dim, last_ts, count, partition, offset, n_recent, width = (
        _HEADER.unpack_from(data)
    )
    codebook = None
    for candidate in codebooks:
        if candidate.fingerprint == fingerprint:
            codebook = candidate
    if fingerprint and codebook is None and not drop_unknown_items:
        raise UnknownCodebook(fingerprint)
    if width not in _CODE_TYPES:
        raise CorruptState(f"item code width {width}")
    pos = _HEADER.size
    vector_blocks, pos = _read_blocks(data, pos, dim)
    weights_blocks, pos = _read_blocks(data, pos, n_recent)
    vector = from_blocks(*vector_blocks)
    if pos + width * n_recent > len(data):
        raise CorruptState("truncated item codes")
    codes = np.frombuffer(data, _CODE_TYPES[width], n_recent, pos).tolist()
    pos += width * n_recent
    by_code = codebook.by_code if codebook else ("",)
    if codebook is not None and max(codes, default=0) >= len(by_code):
        raise CorruptState(f"an item code beyond the catalog's {len(codebook)} items")
    # without the codebook each coded id reads as "", dropped below with the weights
    recent = [by_code[code] for code in codes] if codebook else [""] * n_recent
    for n, code in enumerate(codes):
        if code == 0:
            size = data[pos] if pos < len(data) else -1
            raw = data[pos + 1 : pos + 1 + size]
            if len(raw) != size:
                raise CorruptState("truncated recent item id")
            try:
                recent[n] = raw.decode()
            except UnicodeDecodeError:
                raise CorruptState("a recent item id is not UTF-8") from None
            pos += 1 + size
    if pos + _SEEN.size > len(data):
        raise CorruptState("truncated seen ids")
    (n_seen,) = _SEEN.unpack_from(data, pos)
    pos += _SEEN.size
    if pos + 8 * n_seen != len(data):
        raise CorruptState("truncated seen ids or trailing bytes")
    seen = tuple(np.frombuffer(data, "<u8", n_seen, pos).tolist())
    stored = None
    if codebook is not None or not fingerprint:
        weights = tuple(from_blocks(*weights_blocks).tolist())
        stored = StoredForm(vector, vector_blocks, weights, weights_blocks)
    else:
        recent, weights = [], ()
    return UserState(
        vector=vector,
        last_ts=last_ts,
        count=count,
        recent=tuple(recent),
        position=(partition, offset),
        recent_weights=weights,
        seen=seen,
        model=model,
        stored=stored,
    )


def _read_blocks(data: bytes, pos: int, size: int) -> tuple[Blocks, int]:
    end = pos + _EXPONENT.size + 2 * size
    if end > len(data):
        raise CorruptState("truncated vector or weights")
    (exponent,) = _EXPONENT.unpack_from(data, pos)
    if not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
        raise CorruptState(f"a stored exponent {exponent} out of range")
    return Blocks(exponent, np.frombuffer(data, "<i2", size, pos + _EXPONENT.size)), end
