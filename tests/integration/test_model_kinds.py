"""A worker serves every model kind through the broker: records carry the artifact's version,
K unseen items each, and explanations that name the user's own recent items."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from models.registry import MODEL_KINDS
from models.train import TrainConfig, train
from streams.tools.cluster import wait_until_ready, worker_stats
from core.generator import GeneratorConfig, generate
from streams.settings import Settings
from tests.helpers import consume, event_messages, produce

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small artifact per registered kind (with a ranker), on the 200-item catalog."""
    events = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=30, seed=1))
    out = {}
    for kind in MODEL_KINDS:
        path = tmp_path_factory.mktemp("models") / kind
        config = TrainConfig(model=kind, dim=16, max_len=10, epochs=3)
        train(events, Settings().interest, Settings().blend, config, path, show_progress=False)
        out[kind] = path
    return out


@pytest.mark.parametrize("kind", sorted(MODEL_KINDS))
def test_worker_serves_each_model_kind(kind, artifacts, settings, workers):
    settings = settings.model_copy(update={"model_path": artifacts[kind]})
    config = json.loads((artifacts[kind] / "config.json").read_text())
    assert (artifacts[kind] / "ranker.pt").is_file()
    events = generate(GeneratorConfig(n_users=6, n_items=200, events_per_user=8, seed=5))
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker)
    produce(settings, event_messages(events))

    records = [
        orjson.loads(m.value)
        for m in consume(settings.bootstrap, settings.recs_topic, len(events), timeout=90)
    ]
    assert len(records) == len(events)
    recent: dict[str, list[str]] = {}
    by_id = {e.event_id: e for e in events}
    explained = 0
    for record in records:
        event = by_id[record["trigger"]["event_id"]]
        recent.setdefault(event.user_id, []).append(event.item_id)
        window = set(recent[event.user_id][-settings.history_len :])
        items = [i["item_id"] for i in record["items"]]
        assert record["model_version"] == config["version"]
        assert len(items) == settings.top_k == len(set(items))
        assert not set(items) & window
        for item in record["items"]:
            assert len(item["because"]) <= settings.explain
            assert {b["item_id"] for b in item["because"]} <= window
            assert all(b["weight"] > 0 for b in item["because"])
            explained += bool(item["because"])
    assert explained > 0
    stats = worker_stats(settings.web_port)
    assert stats["model_kind"] == kind and stats["model_version"] == config["version"]
