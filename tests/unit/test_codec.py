import numpy as np
import pytest
from hypothesis import given, strategies as st

from streams.codec import CorruptState, decode_state, encode_state
from streams.interest import UserState

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
    vector = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    state = UserState(vector, last_ts, count, tuple(recent), (partition, offset))
    back = decode_state(encode_state(state))
    np.testing.assert_array_equal(back.vector, state.vector)
    assert (back.last_ts, back.count, back.recent, back.position) == (
        last_ts, count, tuple(recent), (partition, offset))


def test_size_per_user_is_compact():
    state = UserState(np.zeros(32, np.float32), 1, 1, tuple(f"i{n}" for n in range(20)), (0, 1))
    assert len(encode_state(state)) < 300


@pytest.mark.parametrize("data", [b"", b"\x02" + b"\x00" * 40, encode_state(UserState.empty(8))[:20]])
def test_corrupt_values_raise(data):
    with pytest.raises(CorruptState):
        decode_state(data)
