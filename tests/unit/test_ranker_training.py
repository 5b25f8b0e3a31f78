"""The re-ranker learns on the interest vectors the worker serves: the same decay, in event time
or counted in the user's own events."""

import math

import pytest
import torch

from core.events import Event
from core.interest import InterestConfig, UserState
from core.state_step import apply_user_events
from models.evaluation import leave_one_out
from models.ranker_training import decayed_interest
from models.train import positive_interactions
from tests.unit.grid import assert_close_on_grid

HOUR = 3_600_000


@pytest.mark.parametrize(
    "interest",
    [
        InterestConfig(half_life_ms=HOUR),
        InterestConfig(half_life_events=2.0),
        InterestConfig(half_life_ms=math.inf),
    ],
    ids=["1h", "2ev", "inf"],
)
def test_training_interest_is_the_workers_state_before_the_target(interest):
    gaps = [0, 10, 5 * HOUR, HOUR // 2, 7, 3 * HOUR, 1, HOUR]  # irregular, so the clocks differ
    kinds = ["click", "purchase", "view", "cart", "click", "view", "purchase", "click"]
    events = [
        Event("u", f"i{n % 5}", kind, sum(gaps[: n + 1])) for n, kind in enumerate(kinds)
    ]
    data = positive_interactions(events, interest)
    _, val, _ = leave_one_out(data)  # history: all but the last two
    items = torch.randn(data.n_items, 4, generator=torch.Generator().manual_seed(0))
    vector = dict(zip(data.item_ids, items.numpy()))

    state = UserState.empty(4)
    for n, event in enumerate(events[:-2]):
        state = apply_user_events(state, [(event, (0, n))], vector.get, interest).state

    trained_on = decayed_interest(items, val, interest)
    # the worker's state is snapped to the stored grid after every event; training's is exact
    assert_close_on_grid(state.vector, trained_on[0].numpy(), len(events) - 2)
