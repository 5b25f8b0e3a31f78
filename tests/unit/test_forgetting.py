"""Forgetting functions: exponential is today's decay exactly, each family's shape, specs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from core.forgetting import Forgetting
from core.interest import InterestConfig

times_ms = st.lists(st.integers(0, 10**10), min_size=1, max_size=60).map(
    lambda ts: np.array(sorted(ts), dtype=np.int64))


@settings(max_examples=200, deadline=None)
@given(times_ms, st.floats(1.0, 1e10), st.one_of(st.none(), st.floats(0.1, 1e3)))
def test_exponential_is_the_interest_configs_decay_exactly(times, half_life_ms, half_life_events):
    config = InterestConfig(half_life_ms=half_life_ms, half_life_events=half_life_events)
    forgetting = Forgetting.exponential(config.half_life_ms, config.half_life_events)
    assert np.array_equal(forgetting.decays(times), config.decays(times))


def test_infinite_half_life_never_forgets():
    times = np.array([0, 10**9, 2 * 10**9])
    assert Forgetting.exponential(math.inf, None).decays(times).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("spec", ["exp:2ev", "power:tau=1d,alpha=0.7", "power:tau=3ev,alpha=1",
                                  "window:30ev", "growth:tau=20ev", "exp:6h"])
def test_weights_start_at_one_and_never_rise(spec):
    forgetting = Forgetting.parse(spec)
    scale = forgetting.scale
    weights = forgetting.weights(np.linspace(0, 5 * scale, 200))
    assert weights[0] == 1.0
    assert np.all(np.diff(weights) <= 0) and np.all(weights >= 0)


def test_family_shapes():
    ages = np.array([0.0, 3.0, 30.0, 300.0])
    assert Forgetting.parse("power:tau=3ev,alpha=1").weights(ages) == pytest.approx(
        [1, 0.5, 1 / 11, 1 / 101])
    assert Forgetting.parse("window:30ev").weights(ages).tolist() == [1.0, 0.9, 0.0, 0.0]
    growth = Forgetting.parse("growth:tau=3ev").weights(ages)
    assert growth[1] == pytest.approx(math.exp(-(math.e - 1)))
    assert growth[3] == 0.0  # e^{100} - 1 overflows nothing: the weight is simply 0


def test_parse_reads_clocks_and_units():
    assert Forgetting.parse("exp:2ev") == Forgetting("exponential", 2.0, "events")
    assert Forgetting.parse("exp:h=6h") == Forgetting("exponential", 6 * 3600e3, "time")
    assert Forgetting.parse("power:tau=1d,alpha=0.7") == Forgetting("power", 86400e3, "time", 0.7)
    assert Forgetting.parse("window:30ev") == Forgetting("window", 30.0, "events")


@pytest.mark.parametrize("spec", ["exp:2ev", "exp:6h", "exp:inf", "power:tau=1d,alpha=0.7",
                                  "power:tau=3ev,alpha=1", "window:30ev", "growth:tau=20ev"])
def test_label_and_dict_round_trip(spec):
    forgetting = Forgetting.parse(spec)
    assert Forgetting.parse(forgetting.label) == forgetting
    assert Forgetting.from_dict(forgetting.to_dict()) == forgetting


@pytest.mark.parametrize("spec, message", [
    ("cubic:2ev", "unknown forgetting family"),
    ("exp", "has no parameters"),
    ("power:alpha=1", "needs tau"),
    ("window:w=3ev,alpha=2", "takes w, not alpha"),
    ("exp:-2ev", "positive"),
    ("exp:twoev", "not a count of events"),
    ("power:tau=1d,alpha=x", "alpha must be a number"),
    ("power:tau=1d,alpha=0", "alpha must be positive"),
    ("window:inf", "positive and finite"),
    ("design:alpha=1,beta=2", "never forgets"),
])
def test_parse_says_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        Forgetting.parse(spec)
