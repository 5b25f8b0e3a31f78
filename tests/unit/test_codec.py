import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

from core.codec import CorruptState, decode_state, encode_state
from core.interest import UserState

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=60)


@given(
    dim=st.integers(1, 128),
    last_ts=st.integers(0, 2**62),
    count=st.integers(0, 2**32 - 1),
    recent=st.lists(ids, max_size=50),
    partition=st.integers(-1, 10_000),
    offset=st.integers(-1, 2**62),
    seed=st.integers(0, 1000),
)
def test_round_trip(dim, last_ts, count, recent, partition, offset, seed):
    recent = [r for r in recent if len(r.encode()) <= 255]
    rng = np.random.default_rng(seed)
    vector = rng.normal(size=dim).astype(np.float32)
    weights = tuple(rng.normal(size=len(recent)).astype(np.float32).tolist())
    state = UserState(vector, last_ts, count, tuple(recent), (partition, offset), weights)
    back = decode_state(encode_state(state))
    np.testing.assert_array_equal(back.vector, state.vector)
    assert (back.last_ts, back.count, back.recent, back.position, back.recent_weights) == (
        last_ts, count, tuple(recent), (partition, offset), weights)


def test_version_1_values_read_with_zero_weights():
    v1 = struct.pack("<BHqIiqH", 1, 2, 5, 1, 0, 9, 1) + np.ones(2, "<f4").tobytes() + b"\x02i7"
    state = decode_state(v1)
    assert (state.recent, state.recent_weights, state.position) == (("i7",), (0.0,), (0, 9))


def test_size_per_user_is_compact():
    state = UserState(
        np.zeros(32, np.float32), 1, 1, tuple(f"i{n}" for n in range(20)), (0, 1), (1.0,) * 20
    )
    assert len(encode_state(state)) < 400


@pytest.mark.parametrize("data", [b"", b"\x07" + b"\x00" * 40, encode_state(UserState.empty(8))[:20]])
def test_corrupt_values_raise(data):
    with pytest.raises(CorruptState):
        decode_state(data)


def test_seen_event_ids_round_trip_and_version_2_reads_with_none():
    state = UserState(np.ones(2, np.float32), 5, 2, ("a",), (0, 3), (1.0,), (2**64 - 1, 7))
    assert decode_state(encode_state(state)).seen == (2**64 - 1, 7)
    v2 = struct.pack("<BHqIiqH", 2, 2, 5, 1, 0, 9, 1) + np.ones(2, "<f4").tobytes()
    v2 += np.ones(1, "<f4").tobytes() + b"\x02i7"
    assert decode_state(v2).seen == () and decode_state(v2).recent == ("i7",)
