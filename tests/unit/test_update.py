"""Warm-started updates: a new version carries the old weights over by item id and learns the
newest events, in stream order."""

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from models.artifact import load_model, load_recommender
from models.data import interactions, recent_examples
from models.gru import GRU4Rec
from models.product import ModelVersions
from models.version_trainer import trainer
from models.stream import Stream
from models.train import TrainConfig
from models.update import update, warm_started
from streams.cli import app
from core.events import Event
from core.generator import GeneratorConfig, generate
from core.interest import InterestConfig
from models.blend import Blend


def click(user, item, ts):
    return Event(user, item, "click", ts)


def test_warm_started_model_keeps_every_weight_by_item_id():
    torch.manual_seed(0)
    old = GRU4Rec(n_items=3, dim=4, max_len=5)
    new = warm_started(old, ["a", "b", "c"], ["a", "c", "d"])
    assert new.n_items == 3 and new.pad == 3
    torch.testing.assert_close(new.items.weight[[0, 1]], old.items.weight[[0, 2]])
    torch.testing.assert_close(new.item_bias[[0, 1]], old.item_bias[[0, 2]])
    assert not torch.equal(new.items.weight[2], old.items.weight[1])  # d is not b
    torch.testing.assert_close(new.gru.weight_hh_l0, old.gru.weight_hh_l0)
    torch.testing.assert_close(new.items.weight[3], torch.zeros(4))  # padding row


def test_recent_examples_are_the_newest_targets_in_their_users_full_context():
    events = [click("u", "a", 1), click("u", "b", 2), click("v", "c", 3), click("u", "d", 4),
              click("v", "e", 5)]
    data = interactions(events, keep=lambda e: True, weight=lambda e: 1.0)
    pad = data.n_items
    inputs, targets = recent_examples(data, n_recent=2, max_len=3, pad=pad)
    index = {item: n for n, item in enumerate(data.item_ids)}
    assert inputs.tolist() == [[pad, index["a"], index["b"]], [pad, pad, index["c"]]]
    assert targets[:, -1].tolist() == [index["d"], index["e"]]
    assert (targets[:, :-1] == pad).all()
    first_only = interactions(events[:1], keep=lambda e: True, weight=lambda e: 1.0)
    with pytest.raises(ValueError, match="no recent event"):  # a first event has no context
        recent_examples(first_only, n_recent=1, max_len=3, pad=1)


def test_update_learns_a_new_item_from_the_newest_events(model_path, tmp_path):
    _, old_ids, old_config = load_model(model_path)
    assert "fresh" not in old_ids
    history = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=30, seed=1))
    t0 = max(e.ts for e in history) + 1
    new = [e for u in range(40) for e in (click(f"n{u}", "i7", t0 + 2 * u),
                                          click(f"n{u}", "fresh", t0 + 2 * u + 1))]
    config = TrainConfig(model="mf", dim=16, recent_events=len(new), update_passes=30, lr=0.01)
    out = tmp_path / "updated"
    version, metrics = update(model_path, history + new, InterestConfig(), config, out)
    assert metrics["warm_start_from"] == old_config["version"] != version
    assert metrics["examples"] == 40  # one per user: i7 -> fresh
    assert metrics["losses"][-1] < metrics["losses"][0]
    rec = load_recommender(out)
    query = rec.item_vector("i7")[None, :]
    assert "fresh" in rec.top_k(query, [["i7"]], 5)[0].item_ids
    assert json.loads((out / "config.json").read_text())["warm_start_from"] == old_config["version"]


def test_warm_started_versions_follow_the_stream(tmp_path):
    events = generate(GeneratorConfig(n_users=40, n_items=100, events_per_user=15, seed=2))
    stream = Stream.of(events, 0.3)
    config = TrainConfig(model="interest-mf", dim=8, epochs=2, ranker=False, recent_events=50)
    fit = trainer(InterestConfig(), Blend(), config, tmp_path, warm_start=True)
    versions = ModelVersions(fit, stream, retrain_every=150)
    configs = []
    for start in versions.starts:
        versions.at(start)
        configs.append(json.loads((tmp_path / f"after-{start}-events" / "config.json").read_text()))
    assert "warm_start_from" not in configs[0]
    assert [c["warm_start_from"] for c in configs[1:]] == [c["version"] for c in configs[:-1]]
    with pytest.raises(ValueError, match="out of order"):
        fit(stream.events[: versions.starts[0]])


def test_train_warm_start_cli_errors_are_one_line(model_path, tmp_path):
    runner = CliRunner()
    base = ["train", "--generate", "--users", "20", "--items", "50", "--out", str(tmp_path / "o")]
    missing = runner.invoke(app, base + ["--model", "mf", "--warm-start", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "is not a model artifact" in missing.output
    other = runner.invoke(app, base + ["--model", "gru", "--warm-start", str(model_path)])
    assert other.exit_code == 2 and "cannot update a mf artifact as 'gru'" in other.output
    done = runner.invoke(app, base + ["--model", "mf", "--warm-start", str(model_path)])
    assert done.exit_code == 0, done.output
    assert np.isfinite(json.loads((tmp_path / "o" / "metrics.json").read_text())["losses"]).all()
