"""A micro-batch's user states as arrays, read from and written to the v4 codec's bytes at once.

The per-user codec (core/codec.py) makes ~25 small numpy calls a state to read and write one;
at one state per event that cost more than the interest math. Here a batch's vectors and recent
weights are gathered from all values into two matrices with a few array operations, and written
back the same way; what is left per user is ``struct`` work on the header, the item codes and the
seen ids. The bytes are exactly :func:`core.codec.encode_state`'s, and a value read here is the
state :func:`core.codec.decode_state` reads (tests/unit/test_state_codec.py). A value this path
does not read (another version, catalog or dimension, ids stored as strings, anything malformed)
is left to the per-user codec, which reads it or says why not.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from core.codebook import ItemCodebook
from core.codec import CODEC_VERSION
from core.interest import NO_POSITION
from core.precision import FRACTION_BITS, MAX_EXPONENT, MIN_EXPONENT, POWERS

# the codec's header, with the vector's exponent that follows it
_HEAD = struct.Struct("<BIIHqIiqHBh")
_EXPONENT = struct.Struct("<h")
_COUNT = struct.Struct("<H")
_CODE_FORMAT = {1: "B", 2: "H", 4: "I"}


def power(exponents: np.ndarray) -> np.ndarray:
    """(n,) float32 ``2 ** exponents`` as a column, for the per-row scale of a block array."""
    return POWERS[exponents + 126][:, None]


@dataclass
class StateRows:
    """Users' states, one row each. Vector and recent weights are on the stored grid with their
    row's exponent (``vector = integers * 2 ** (exponent - 14)``); user u's recent weights are
    ``weights[u, start[u]:end[u]]``, the columns past ``end`` room for the batch's new ones."""

    vectors: np.ndarray  # (U, D) float32
    vector_exponents: np.ndarray  # (U,) int64
    weights: np.ndarray  # (U, C) float32
    weight_exponents: np.ndarray  # (U,) int64
    start: list[int]
    end: list[int]
    last_ts: list[int]
    count: list[int]
    recent: list[tuple[str, ...]]
    position: list[tuple[int, int]]
    seen: list[tuple[int, ...]]
    model: list[int]


def read_rows(
    raws: Sequence[bytes | None], codebook: ItemCodebook, dim: int, room: int
) -> tuple[StateRows, list[int]]:
    """The states ``raws`` hold (None: a new user's empty state), with ``room`` free weight
    columns each, and the indices of the values left to the per-user codec (their rows empty)."""
    n = len(raws)
    heads: list[tuple | None] = [None] * n
    codes_at: list[int] = [0] * n
    left: list[int] = []
    last_ts, count, position = [0] * n, [0] * n, [NO_POSITION] * n
    recent: list[tuple[str, ...]] = [()] * n
    seen: list[tuple[int, ...]] = [()] * n
    model, n_recent = [0] * n, [0] * n
    vector_exponents, weight_exponents = np.zeros(n, np.int64), np.zeros(n, np.int64)
    by_code = codebook.by_code
    for u, raw in enumerate(raws):
        if raw is None:
            continue
        head = _readable_head(raw, codebook, dim)
        if head is None:
            left.append(u)
            continue
        _, _, model[u], _, last_ts[u], count[u], part, offset, size, width, exponent = head
        pos = _HEAD.size + 2 * dim
        (weight_exponent,) = _EXPONENT.unpack_from(raw, pos)
        pos += _EXPONENT.size + 2 * size
        codes = struct.unpack_from(f"<{size}{_CODE_FORMAT[width]}", raw, pos)
        pos += width * size
        (n_seen,) = _COUNT.unpack_from(raw, pos)
        pos += _COUNT.size
        if (
            pos + 8 * n_seen != len(raw)
            or not MIN_EXPONENT <= weight_exponent <= MAX_EXPONENT
            or (codes and (min(codes) == 0 or max(codes) >= len(by_code)))
        ):
            left.append(u)  # malformed, or ids stored as strings: the per-user codec's
            continue
        heads[u], codes_at[u], n_recent[u] = head, _HEAD.size, size
        vector_exponents[u], weight_exponents[u] = exponent, weight_exponent
        position[u] = (part, offset)
        recent[u] = tuple([by_code[code] for code in codes])
        seen[u] = struct.unpack_from(f"<{n_seen}Q", raw, pos)
    widest = max(n_recent, default=0)
    vectors = np.zeros((n, dim), np.float32)
    weights = np.zeros((n, widest + room), np.float32)
    read = [u for u in range(n) if heads[u] is not None]
    if read:
        values = [raws[u] for u in read]
        starts = np.cumsum([0] + [len(v) for v in values[:-1]])
        data = np.frombuffer(b"".join(values), np.uint8)
        rows = np.array(read)
        vectors[rows] = _gather_int16(data, starts + _HEAD.size, dim) * power(
            vector_exponents[rows] - FRACTION_BITS)  # fmt: skip
        if widest:
            ints = _gather_int16(data, starts + _HEAD.size + 2 * dim + _EXPONENT.size, widest)
            sizes = np.array([n_recent[u] for u in read])
            ints[np.arange(widest)[None, :] >= sizes[:, None]] = 0
            weights[rows, :widest] = ints * power(weight_exponents[rows] - FRACTION_BITS)
    rows_out = StateRows(vectors, vector_exponents, weights, weight_exponents, [0] * n,
                         n_recent, last_ts, count, recent, position, seen, model)  # fmt: skip
    return rows_out, left


def _readable_head(raw: bytes, codebook: ItemCodebook, dim: int) -> tuple | None:
    """The header of a v4 value in ``codebook`` at ``dim``; None for any other value."""
    if len(raw) < _HEAD.size or raw[0] != CODEC_VERSION:
        return None
    head = _HEAD.unpack_from(raw)
    _, fingerprint, _, value_dim, _, _, _, _, size, width, exponent = head
    if (
        fingerprint != codebook.fingerprint
        or value_dim != dim
        or width not in _CODE_FORMAT
        or not MIN_EXPONENT <= exponent <= MAX_EXPONENT
        or len(raw) < _HEAD.size + 2 * dim + _EXPONENT.size + (2 + width) * size + _COUNT.size
    ):
        return None
    return head


def _gather_int16(data: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """(len(starts), size) int16 read at each byte offset (bytes past the end read as 0)."""
    index = starts[:, None] + np.arange(2 * size)[None, :]
    padded = np.concatenate([data, np.zeros(2 * size, np.uint8)])
    return padded[index].view("<i2").astype(np.float32)


def write_rows(rows: StateRows, users: Sequence[int], codebook: ItemCodebook) -> list[bytes]:
    """The v4 bytes of each of ``users``' states (exactly :func:`core.codec.encode_state`'s)."""
    if not users:
        return []
    picked = np.array(users)
    dim = rows.vectors.shape[1]
    vector_bytes = (rows.vectors[picked] * power(FRACTION_BITS - rows.vector_exponents[picked])
                    ).astype("<i2").tobytes()  # fmt: skip
    weights = rows.weights[picked] * power(FRACTION_BITS - rows.weight_exponents[picked])
    width_all = weights.shape[1]
    weight_bytes = weights.astype("<i2").tobytes()
    code = codebook.code
    out = []
    for n, u in enumerate(users):
        start, end = rows.start[u], rows.end[u]
        codes = [code.get(item, 0) for item in rows.recent[u]]  # 0: stored as its string
        largest = max(codes, default=0)
        width = 1 if largest < 2**8 else 2 if largest < 2**16 else 4
        size, seen = end - start, rows.seen[u]
        part, offset = rows.position[u]
        row_at = 2 * (n * width_all + start)
        out.append(b"".join((
            _HEAD.pack(CODEC_VERSION, codebook.fingerprint, rows.model[u], dim, rows.last_ts[u],
                       rows.count[u], part, offset, size, width,
                       int(rows.vector_exponents[u])),
            vector_bytes[2 * dim * n: 2 * dim * (n + 1)],
            _EXPONENT.pack(int(rows.weight_exponents[u])),
            weight_bytes[row_at: row_at + 2 * size],
            struct.pack(f"<{size}{_CODE_FORMAT[width]}", *codes),
            *(_named(item) for item, c in zip(rows.recent[u], codes) if c == 0),
            _COUNT.pack(len(seen)),
            struct.pack(f"<{len(seen)}Q", *seen),
        )))  # fmt: skip
    return out


def _named(item: str) -> bytes:
    raw = item.encode()
    return bytes((len(raw),)) + raw
