"""A model retrained from scratch on an event-time clock: one version per period that has a tested
event, each trained only on what came before that period's first test, frozen in between."""

import numpy as np
import pytest

from core.events import Event
from core.interest import InterestConfig
from models.periodic import Retrained
from models.stream import Stream
from models.train import TrainConfig

HOUR = 3_600_000
TINY = TrainConfig(model="sasrec", dim=8, max_len=5, epochs=2, patience=1)


class Recorded(Retrained):
    """Remembers how many events each version was trained on."""

    def fit(self, events):
        self.trained_on = [*getattr(self, "trained_on", []), len(events)]
        return super().fit(events)


def cyclic_stream(hours: int, per_hour: int = 16) -> Stream:
    """Four users walking the same cycle of 6 items, ``per_hour`` events an hour."""
    events = [
        Event(f"u{n % 4}", f"i{(n // 4) % 6}", "click", h * HOUR + n * 1000)
        for h in range(hours)
        for n in range(per_hour)
    ]
    return Stream.of(events, warmup=0.25)


@pytest.mark.parametrize("model", ["sasrec", "gru"])
def test_one_version_per_period_each_from_the_past_only(model):
    stream = cyclic_stream(hours=4)
    config = TrainConfig(**{**vars(TINY), "model": model})
    policy = Recorded("every hour", 3600, InterestConfig(), config)
    lists = policy.run(stream, k=3)
    hour = stream.ts // HOUR
    first_tests = [int(np.flatnonzero(stream.tested & (hour == h))[0]) for h in (1, 2, 3)]
    assert policy.trained_on == first_tests and policy.versions == 3
    users, tested = stream.users[stream.tested], np.flatnonzero(stream.tested)
    for row, (user, n) in enumerate(zip(users, tested)):  # never a consumed item
        own = set(stream.items[:n][stream.users[:n] == user].tolist())
        assert not own & set(lists[row].tolist())


def test_a_longer_period_trains_fewer_versions_and_too_little_data_shows_nothing():
    stream = cyclic_stream(hours=4)
    daily = Recorded("daily", 86_400, InterestConfig(), TINY)
    daily.run(stream, k=3)
    assert daily.trained_on == [int(np.argmax(stream.tested))]
    tiny = Stream.of([Event("a", "x", "click", 0), Event("a", "y", "click", 1)], warmup=0.0)
    assert (Retrained("r", 60, InterestConfig(), TINY).run(tiny, k=2) == -1).all()


def test_period_must_be_positive():
    with pytest.raises(ValueError):
        Retrained("r", 0, InterestConfig(), TINY)


def test_each_version_is_reported_as_it_is_made():
    stream = cyclic_stream(hours=4)
    heard = []
    policy = Recorded("every hour", 3600, InterestConfig(), TINY,
                      on_version=lambda *report: heard.append(report))  # fmt: skip
    policy.run(stream, k=3)
    assert [(done, total, at) for done, total, at, _ in heard] == [
        (1, 3, policy.trained_on[0]), (2, 3, policy.trained_on[1]), (3, 3, policy.trained_on[2])]
    assert all(seconds >= 0 for *_, seconds in heard)
