"""The evaluator measures the product, not a twin: the same events through the broker and a worker
give, record for record, the lists the evaluator's product policy tests; exploring with
epsilon-greedy, the lists the library explores from the evaluator's candidates with each
record's seed."""

from __future__ import annotations

import pytest

from models.train import TrainConfig, train
from core.generator import GeneratorConfig, generate
from streams.tools.replay_check import check_through_kafka

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("explore", ["greedy", "epsilon"])
def test_worker_records_equal_the_evaluators_lists(settings, tmp_path, explore):
    # a GRU with a ranker: the full product path (interest + sequence model + re-ranking),
    # fused with the artifact's item neighbours whatever weights its fit chose
    catalog = GeneratorConfig(n_users=150, n_items=200, events_per_user=20, seed=3)
    model = tmp_path / "gru"
    train(
        generate(catalog),
        settings.interest,
        settings.blend,
        TrainConfig(model="gru", dim=16, epochs=2),
        model,
        show_progress=False,
    )
    events = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=30, seed=4))
    settings = settings.model_copy(update={"covisit_weight": 1.0, "rules_weight": 1.0})

    if explore == "epsilon":  # 2 of 5 slots, each explored half the time: most lists differ
        settings = settings.model_copy(update={"explore": "epsilon", "explore_epsilon": 0.5,
                                               "explore_budget": 2, "explore_pool": 30})

    result = check_through_kafka(events, settings, model, tmp_path / "check", settings.bootstrap)

    assert result.records == result.events == 3000
    assert result.compared == 2900 and result.differing == []
    assert result.passed
    if explore == "epsilon":
        assert result.explored >= 1000  # lists with an explored item, equal all the same
