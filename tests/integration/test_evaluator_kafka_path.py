"""The evaluator measures the product, not a twin: the same events through the broker and a worker
give, record for record, the lists the evaluator's product policy tests."""

from __future__ import annotations

import pytest

from models.train import TrainConfig, train
from core.generator import GeneratorConfig, generate
from streams.replay_check import check_through_kafka

pytestmark = pytest.mark.integration


def test_worker_records_equal_the_evaluators_lists(settings, tmp_path):
    # a GRU with a ranker: the full product path (interest + sequence model + re-ranking)
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

    result = check_through_kafka(events, settings, model, tmp_path / "check", settings.bootstrap)

    assert result.records == result.events == 3000
    assert result.compared == 2900 and result.differing == []
    assert result.passed
