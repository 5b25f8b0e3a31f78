import struct

import numpy as np
import pytest
from hypothesis import given, strategies as st

from core.codebook import ItemCodebook
from core.codec import CorruptState, UnknownCodebook, decode_state, encode_state, stored_last_ts
from core.events import Event
from core.interest import InterestConfig, UserState
from core.state_step import apply_user_events
from core.precision import MAX_EXPONENT, snap

ids = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=60)
CATALOG = ItemCodebook(str(n) for n in range(1, 1683))  # MovieLens 100k's 1,682 item ids


@given(
    dim=st.integers(1, 128),
    last_ts=st.integers(0, 2**62),
    count=st.integers(0, 2**32 - 1),
    recent=st.lists(st.one_of(ids, st.sampled_from(CATALOG.ids)), max_size=50),
    partition=st.integers(-1, 10_000),
    offset=st.integers(-1, 2**62),
    scale=st.integers(-30, 30),
    seed=st.integers(0, 1000),
)
def test_a_state_on_the_stored_grid_round_trips_exactly(
    dim, last_ts, count, recent, partition, offset, scale, seed
):
    rng = np.random.default_rng(seed)
    vector = snap((rng.normal(size=dim) * 10.0**scale).astype(np.float32))
    weights = tuple(snap(rng.normal(size=len(recent)).astype(np.float32)).tolist())
    seen = tuple(int(x) for x in rng.integers(0, 2**63, size=seed % 33))
    state = UserState(vector, last_ts, count, tuple(recent), (partition, offset), weights, seen,
                      model=seed * 7919 % 2**32)  # fmt: skip
    data = encode_state(state, CATALOG)
    back = decode_state(data, [CATALOG])
    np.testing.assert_array_equal(back.vector, state.vector)
    assert back.vector.dtype == np.float32
    assert (back.last_ts, back.count, back.recent, back.position, back.recent_weights,
            back.seen) == (last_ts, count, tuple(recent), (partition, offset), weights, seen)
    assert back.model == state.model
    assert stored_last_ts(data) == last_ts
    assert encode_state(back, CATALOG) == data


def test_states_the_interest_math_makes_round_trip_exactly_and_encode_idempotently():
    rng = np.random.default_rng(3)
    vectors = {str(n): rng.normal(size=64).astype(np.float32) for n in range(1, 1683)}
    config = InterestConfig(half_life_ms=3_600_000.0, history_len=50)
    state = UserState.empty(64)
    for n in range(300):
        item = str(int(rng.integers(1, 1700)))  # some ids outside the catalog
        event = Event("u", item, ["view", "click", "rating"][n % 3], n * 60_000, 4.0)
        state = apply_user_events(state, [(event, (0, n))], vectors.get, config).state
        back = decode_state(encode_state(state, CATALOG), [CATALOG])
        np.testing.assert_array_equal(back.vector, state.vector)
        assert back.recent == state.recent and back.recent_weights == state.recent_weights
    arbitrary = UserState(rng.normal(size=8).astype(np.float32), 1, 1, ("1",), (0, 0), (0.3,))
    once = encode_state(arbitrary, CATALOG)
    assert encode_state(decode_state(once, [CATALOG]), CATALOG) == once


def test_a_user_at_d64_with_50_recent_items_takes_at_most_400_bytes():
    rng = np.random.default_rng(0)
    state = UserState(
        snap(rng.normal(size=64).astype(np.float32)), 1_700_000_000_000, 437,
        tuple(CATALOG.ids[i] for i in rng.integers(0, len(CATALOG), size=50)),
        (3, 12_345_678), tuple(snap(rng.random(50).astype(np.float32)).tolist()),
    )  # fmt: skip
    assert len(encode_state(state, CATALOG)) <= 400
    # each remembered event id (the dedupe window) adds its 8-byte hash
    with_seen = UserState(**{**_fields(state), "seen": tuple(range(32))})
    assert len(encode_state(with_seen, CATALOG)) == len(encode_state(state, CATALOG)) + 8 * 32


def _fields(state: UserState) -> dict:
    return {name: getattr(state, name) for name in UserState.__slots__}


def test_without_its_codebook_a_state_keeps_all_but_its_recent_items():
    state = UserState(np.ones(2, np.float32), 5, 2, ("7", "new"), (1, 9), (1.0, 0.5), (42,))
    data = encode_state(state, CATALOG)
    with pytest.raises(UnknownCodebook):
        decode_state(data)
    with pytest.raises(UnknownCodebook):
        decode_state(data, [ItemCodebook(["7", "8"])])
    kept = decode_state(data, drop_unknown_items=True)
    assert (kept.position, kept.seen, kept.count, kept.recent, kept.recent_weights) == (
        (1, 9), (42,), 2, (), ())
    np.testing.assert_array_equal(kept.vector, state.vector)
    no_codebook = encode_state(state)  # every id as its string: readable by anyone
    assert decode_state(no_codebook).recent == ("7", "new")


def test_versions_1_to_3_are_still_read():
    v1 = struct.pack("<BHqIiqH", 1, 2, 5, 1, 0, 9, 1) + np.ones(2, "<f4").tobytes() + b"\x02i7"
    state = decode_state(v1)
    assert (state.recent, state.recent_weights, state.position) == (("i7",), (0.0,), (0, 9))
    v2 = struct.pack("<BHqIiqH", 2, 2, 5, 1, 0, 9, 1) + np.ones(2, "<f4").tobytes()
    v2 += np.full(1, 0.5, "<f4").tobytes() + b"\x02i7"
    assert decode_state(v2).recent_weights == (0.5,) and decode_state(v2).seen == ()
    v3 = b"\x03" + v2[1:] + struct.pack("<H", 2) + np.array([2**64 - 1, 7], "<u8").tobytes()
    assert decode_state(v3).seen == (2**64 - 1, 7) and stored_last_ts(v3) == 5


def _valid() -> bytes:
    state = UserState(np.ones(8, np.float32), 5, 2, ("7", "x"), (0, 3), (1.0, 0.5), (1, 2))
    return encode_state(state, CATALOG)


@pytest.mark.parametrize("data", [
    b"", b"\x07" + b"\x00" * 40, _valid()[:20], _valid()[:-1], _valid() + b"\x00",
    _valid()[:37] + b"\x03" + _valid()[38:],  # a code width of 3 bytes
])  # fmt: skip
def test_corrupt_values_raise(data):
    with pytest.raises(CorruptState):
        decode_state(data, [CATALOG])


def test_no_stored_bytes_read_as_inf_or_nan():
    data = bytearray(_valid())
    data[38:40] = struct.pack("<h", 32_000)  # the vector's exponent, after the 38-byte header
    with pytest.raises(CorruptState, match="exponent"):
        decode_state(bytes(data), [CATALOG])
    data[38:40] = struct.pack("<h", MAX_EXPONENT)
    data[40:56] = np.full(8, -(2**15), "<i2").tobytes()  # the most negative int16s
    assert np.isfinite(decode_state(bytes(data), [CATALOG]).vector).all()


@given(st.binary(max_size=300), st.integers(0, 200))
def test_any_bytes_decode_to_a_state_or_raise_corrupt_state(noise, cut):
    for data in (noise, _valid()[:cut] + noise, b"\x04" + noise):
        try:
            state = decode_state(data, [CATALOG])
        except CorruptState:
            continue
        assert np.isfinite(state.vector).all()
