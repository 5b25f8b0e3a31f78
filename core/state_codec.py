"""The user table's value, version 4: its byte layout, read into and written from arrays.

Little-endian::

    u8 version | u32 codebook fingerprint (0: none) | u32 model tag | u16 dim | i64 last_ts |
    u32 count | i32 partition | i64 offset | u16 n_recent | u8 code width |
    i16 exponent, i16[dim] vector | i16 exponent, i16[n_recent] recent weights |
    n_recent x code (width bytes; k > 0: the codebook's item k - 1; 0: an id stored as a string) |
    per code 0, in order: u8 length, utf-8 id | u16 n_seen | u64[n_seen] seen event-id hashes

The arrays are 16-bit integers under one power-of-two scale each (:mod:`core.precision`), the
grid the state math keeps them on, so a round trip is exact both ways. A catalog item takes the
fewest bytes of 1, 2 or 4 that hold the state's largest code: one width per state, so the codes
read as one array (varints were smaller and slower to read: docs/benchmarks.md). An item the
catalog lacks is stored as its string. Versions 1 to 3 are still read (:mod:`core.codec_legacy`).

A batch's states are read at once: the per-value ``struct`` work (header, codes, ids, seen
ids) is done per user, the vectors and weights of all values are gathered into two matrices
with a few array operations and written back the same way, because per-state numpy calls cost
more than the interest math (docs/benchmarks.md). :mod:`core.codec` reads and writes one value
with the same functions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from core.codebook import ItemCodebook
from core.interest import NO_POSITION
from core.precision import FRACTION_BITS, MAX_EXPONENT, MIN_EXPONENT, POWERS

CODEC_VERSION = 4
HEAD = struct.Struct("<BIIHqIiqHBh")  # the header, with the vector's exponent that follows it
_EXPONENT = struct.Struct("<h")
_COUNT = struct.Struct("<H")
_CODE_FORMAT = {1: "B", 2: "H", 4: "I"}
_NO_CODEBOOK = ("",)  # a state with fingerprint 0 holds its ids as strings only


class CorruptState(ValueError):
    """A table value this codec cannot read (wrong version or truncated)."""


class UnknownCodebook(CorruptState):
    """A state whose recent items are indices into a catalog this reader was not given."""

    def __init__(self, fingerprint: int) -> None:
        super().__init__(f"recent items index an unknown catalog (fingerprint {fingerprint:08x})")
        self.fingerprint = fingerprint


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


class _Value(NamedTuple):
    """What a value holds besides its two arrays (read at fixed places after the header)."""

    head: tuple
    weight_exponent: int
    recent: tuple[str, ...] | None  # None: coded in a catalog the reader lacks
    seen: tuple[int, ...]


def read_rows(
    raws: Sequence[bytes | None], codebooks: Sequence[ItemCodebook], dim: int, room: int
) -> tuple[StateRows, dict[int, CorruptState]]:
    """The states ``raws`` hold (None: a new user's empty state) in rows with ``room`` free
    weight columns each, and why each value not read was not (its row is left empty): another
    version, dimension or catalog than ``codebooks``, or a malformed value."""
    by_fingerprint = {codebook.fingerprint: codebook for codebook in codebooks}
    values: dict[int, _Value] = {}
    left: dict[int, CorruptState] = {}
    for u, raw in enumerate(raws):
        if raw is None:
            continue
        try:
            values[u] = _parse(raw, by_fingerprint, False)
            if values[u].head[3] != dim:
                raise CorruptState(f"a vector of {values[u].head[3]} dimensions, not {dim}")
        except CorruptState as exc:
            values.pop(u, None)
            left[u] = exc
    return _rows(raws, values, dim, room), left


def read_value(
    raw: bytes, codebooks: Mapping[int, ItemCodebook], drop_unknown_items: bool
) -> StateRows:
    """One value as a one-row :class:`StateRows` (for :func:`core.codec.decode_state`); with
    ``drop_unknown_items`` recent items coded in a catalog not in ``codebooks`` are left out."""
    value = _parse(raw, codebooks, drop_unknown_items)
    if value.recent is None:
        value = value._replace(head=value.head[:8] + (0,) + value.head[9:], recent=())
    return _rows([raw], {0: value}, value.head[3], 0)


def last_ts_of(raw: bytes) -> int:
    """A v4 value's newest event time, from the header alone."""
    if len(raw) < HEAD.size:
        raise CorruptState(f"truncated header ({len(raw)} bytes)")
    return HEAD.unpack_from(raw)[4]


def position_of(raw: bytes) -> tuple[int, int] | None:
    """A v4 value's (partition, offset) of the last event it applied, from the header alone;
    None for an older version or a value too short to say (whoever compares then cannot)."""
    if len(raw) < HEAD.size or raw[0] != CODEC_VERSION:
        return None
    head = HEAD.unpack_from(raw)
    return (head[6], head[7]) if head[6] >= 0 else None


def _exponent(exponent: int) -> int:
    if not MIN_EXPONENT <= exponent <= MAX_EXPONENT:
        raise CorruptState(f"a stored exponent {exponent} out of range")
    return exponent


def _parse(raw: bytes, codebooks: Mapping[int, ItemCodebook], drop_unknown_items: bool) -> _Value:
    """The header, codes, ids and seen ids of a v4 value (its arrays are read by :func:`_rows`)."""
    if len(raw) < HEAD.size or raw[0] != CODEC_VERSION:
        raise CorruptState(f"not a v{CODEC_VERSION} user state ({len(raw)} bytes)")
    head = HEAD.unpack_from(raw)
    _, fingerprint, _, dim, _, _, _, _, size, width, exponent = head
    codebook = codebooks.get(fingerprint)
    if fingerprint and codebook is None and not drop_unknown_items:
        raise UnknownCodebook(fingerprint)
    if width not in _CODE_FORMAT:
        raise CorruptState(f"item code width {width}")
    _exponent(exponent)
    pos = HEAD.size + 2 * dim
    if pos + _EXPONENT.size + (2 + width) * size > len(raw):
        raise CorruptState("truncated weights or item codes")
    weight_exponent = _exponent(_EXPONENT.unpack_from(raw, pos)[0])
    pos += _EXPONENT.size + 2 * size
    codes = struct.unpack_from(f"<{size}{_CODE_FORMAT[width]}", raw, pos)
    pos += width * size
    known = codebook is not None or not fingerprint  # else the ids are dropped, unread
    by_code = codebook.by_code if codebook else _NO_CODEBOOK
    if known and codes and max(codes) >= len(by_code):
        raise CorruptState(f"an item code beyond the catalog's {len(by_code) - 1} items")
    recent = [by_code[code] for code in codes] if known else [""] * size
    for n, code in enumerate(codes):
        if code == 0:
            if pos >= len(raw) or pos + 1 + raw[pos] > len(raw):
                raise CorruptState("truncated recent item id")
            length = raw[pos]
            try:
                recent[n] = raw[pos + 1 : pos + 1 + length].decode()
            except UnicodeDecodeError:
                raise CorruptState("a recent item id is not UTF-8") from None
            pos += 1 + length
    if pos + _COUNT.size > len(raw):
        raise CorruptState("truncated seen ids")
    (n_seen,) = _COUNT.unpack_from(raw, pos)
    pos += _COUNT.size
    if pos + 8 * n_seen != len(raw):
        raise CorruptState("truncated seen ids or trailing bytes")
    seen = struct.unpack_from(f"<{n_seen}Q", raw, pos)
    return _Value(head, weight_exponent, tuple(recent) if known else None, seen)


def _rows(raws: Sequence[bytes | None], values: dict[int, _Value], dim: int, room: int
          ) -> StateRows:  # fmt: skip
    """The rows of the parsed ``values`` (by row), the arrays gathered from all at once."""
    n = len(raws)
    last_ts, count, position = [0] * n, [0] * n, [NO_POSITION] * n
    recent: list[tuple[str, ...]] = [()] * n
    seen: list[tuple[int, ...]] = [()] * n
    model, n_recent = [0] * n, [0] * n
    vector_exponents, weight_exponents = np.zeros(n, np.int64), np.zeros(n, np.int64)
    for u, value in values.items():
        _, _, model[u], _, last_ts[u], count[u], part, offset, n_recent[u], _, exponent = value.head
        vector_exponents[u], weight_exponents[u] = exponent, value.weight_exponent
        position[u], recent[u], seen[u] = (part, offset), value.recent, value.seen
    widest = max(n_recent, default=0)
    vectors = np.zeros((n, dim), np.float32)
    weights = np.zeros((n, widest + room), np.float32)
    read = list(values)
    if read:
        chosen = [raws[u] for u in read]
        starts = np.cumsum([0] + [len(v) for v in chosen[:-1]])
        data = np.frombuffer(b"".join(chosen), np.uint8)
        rows = np.array(read)
        vectors[rows] = _gather_int16(data, starts + HEAD.size, dim) * power(
            vector_exponents[rows] - FRACTION_BITS)  # fmt: skip
        if widest:
            ints = _gather_int16(data, starts + HEAD.size + 2 * dim + _EXPONENT.size, widest)
            sizes = np.array([n_recent[u] for u in read])
            ints[np.arange(widest)[None, :] >= sizes[:, None]] = 0
            weights[rows, :widest] = ints * power(weight_exponents[rows] - FRACTION_BITS)
    return StateRows(vectors, vector_exponents, weights, weight_exponents, [0] * n,
                     n_recent, last_ts, count, recent, position, seen, model)  # fmt: skip


def _gather_int16(data: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """(len(starts), size) int16 read at each byte offset (bytes past the end read as 0)."""
    index = starts[:, None] + np.arange(2 * size)[None, :]
    padded = np.concatenate([data, np.zeros(2 * size, np.uint8)])
    return padded[index].view("<i2").astype(np.float32)


def write_rows(
    rows: StateRows, users: Sequence[int], codebook: ItemCodebook | None
) -> list[bytes]:
    """The v4 bytes of each of ``users``' states, recent items coded in ``codebook``."""
    if not users:
        return []
    picked = np.array(users)
    dim = rows.vectors.shape[1]
    vector_bytes = (rows.vectors[picked] * power(FRACTION_BITS - rows.vector_exponents[picked])
                    ).astype("<i2").tobytes()  # fmt: skip
    weights = rows.weights[picked] * power(FRACTION_BITS - rows.weight_exponents[picked])
    width_all = weights.shape[1]
    weight_bytes = weights.astype("<i2").tobytes()
    code = codebook.code if codebook else {}
    fingerprint = codebook.fingerprint if codebook else 0
    out = []
    for n, u in enumerate(users):
        start, end = rows.start[u], rows.end[u]
        if len(rows.recent[u]) != end - start:
            raise ValueError(f"{len(rows.recent[u])} recent items but {end - start} weights")
        codes = [code.get(item, 0) for item in rows.recent[u]]  # 0: stored as its string
        largest = max(codes, default=0)
        width = 1 if largest < 2**8 else 2 if largest < 2**16 else 4
        size, seen = end - start, rows.seen[u]
        part, offset = rows.position[u]
        row_at = 2 * (n * width_all + start)
        out.append(b"".join((
            HEAD.pack(CODEC_VERSION, fingerprint, rows.model[u], dim, rows.last_ts[u],
                      rows.count[u], part, offset, size, width, int(rows.vector_exponents[u])),
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
