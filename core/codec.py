"""A :class:`UserState` as the user table's value, and back: one value at a time, with the
batch codec's reader and writer (:mod:`core.state_codec`, where version 4's layout is), so the
bytes are laid out in one place. Versions 1 to 3 are read by :mod:`core.codec_legacy`.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from core.codebook import ItemCodebook
from core.codec_legacy import LEGACY_VERSIONS, decode_legacy, legacy_last_ts
from core.interest import StoredForm, UserState
from core.precision import snapped
from core.state_codec import (
    CODEC_VERSION,
    CorruptState,
    StateRows,
    UnknownCodebook,
    last_ts_of,
    read_value,
    write_rows,
)

__all__ = ["CODEC_VERSION", "CorruptState", "UnknownCodebook", "decode_state", "encode_state",
           "put_states", "rows_of", "state_of", "stored_last_ts"]  # fmt: skip


def rows_of(states: Sequence[UserState], room: int) -> StateRows:
    """The states as rows, with ``room`` free weight columns each."""
    dim = states[0].vector.shape[0] if states else 0
    empty = StateRows(np.zeros((len(states), dim), np.float32), np.zeros(len(states), np.int64),
                      np.zeros((len(states), room), np.float32), np.zeros(len(states), np.int64),
                      [0] * len(states), [0] * len(states), [0] * len(states),
                      [0] * len(states), [()] * len(states), [(-1, -1)] * len(states),
                      [()] * len(states), [0] * len(states))  # fmt: skip
    return put_states(empty, dict(enumerate(states)))


def put_states(rows: StateRows, states: Mapping[int, UserState]) -> StateRows:
    """``rows`` with row u holding ``states[u]``, its weights first; the weight columns widen
    where a state has more weights than the rows have columns to spare past its row's end."""
    needed = max((len(s.recent_weights) for s in states.values()), default=0)
    room = rows.weights.shape[1] - max(rows.end, default=0)
    if needed + room > rows.weights.shape[1]:
        wider = np.zeros((rows.weights.shape[0], needed + room), np.float32)
        wider[:, : rows.weights.shape[1]] = rows.weights
        rows.weights = wider
    for u, state in states.items():
        form, size = state.stored, len(state.recent_weights)
        if form is not None and form.holds(state.vector, state.recent_weights):
            rows.vectors[u], rows.vector_exponents[u] = state.vector, form.vector_exponent
            rows.weights[u, :size] = state.recent_weights
            rows.weight_exponents[u] = form.weights_exponent
        else:  # a state the step did not make (a test's, an older version's): snapped here
            rows.vectors[u], rows.vector_exponents[u] = _on_grid(state.vector)
            rows.weights[u, :size], rows.weight_exponents[u] = _on_grid(state.recent_weights)
        rows.weights[u, size:] = 0.0
        rows.start[u], rows.end[u], rows.last_ts[u], rows.count[u] = 0, size, state.last_ts, \
            state.count  # fmt: skip
        rows.recent[u], rows.position[u], rows.seen[u], rows.model[u] = state.recent, \
            state.position, state.seen, state.model  # fmt: skip
    return rows


def _on_grid(values) -> tuple[np.ndarray, int]:
    grid, blocks = snapped(np.asarray(values, dtype=np.float32))
    if blocks is None:
        raise ValueError("a non-finite or too large array cannot be stored")
    return grid, blocks.exponent


def state_of(rows: StateRows, u: int) -> UserState:
    """Row u as a state (its vector a view of the row), with its stored form."""
    vector = rows.vectors[u]
    weights = tuple(rows.weights[u, rows.start[u] : rows.end[u]].tolist())
    stored = StoredForm(vector, int(rows.vector_exponents[u]), weights,
                        int(rows.weight_exponents[u]))  # fmt: skip
    return UserState(vector, rows.last_ts[u], rows.count[u], rows.recent[u], rows.position[u],
                     weights, rows.seen[u], rows.model[u], stored)  # fmt: skip


def encode_state(state: UserState, codebook: ItemCodebook | None = None) -> bytes:
    """The state as bytes; its recent items as indices into ``codebook`` where it has them."""
    if len(state.recent) != len(state.recent_weights):
        raise ValueError(
            f"{len(state.recent)} recent items but {len(state.recent_weights)} weights")
    return write_rows(rows_of([state], 0), [0], codebook)[0]


def stored_last_ts(data: bytes) -> int:
    """The newest event time of a stored state, read from the header alone (the TTL sweep
    reads every user's; decoding the vector and ids for that would be wasted)."""
    if not data or data[0] not in (*LEGACY_VERSIONS, CODEC_VERSION):
        raise CorruptState(f"not a user state ({len(data)} bytes)")
    return last_ts_of(data) if data[0] == CODEC_VERSION else legacy_last_ts(data)


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
    by_fingerprint = {codebook.fingerprint: codebook for codebook in codebooks}
    return state_of(read_value(data, by_fingerprint, drop_unknown_items), 0)
