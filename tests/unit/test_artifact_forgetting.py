"""An artifact names the forgetting function it was fit for; older ones read as exponential,
and a worker logs that it does not serve a non-exponential one."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import pytest

from core.forgetting import Forgetting
from core.generator import GeneratorConfig, generate
from core.interest import InterestConfig
from models.artifact import ArtifactError, forgetting_of, read_config
from models.blend import Blend
from models.train import TrainConfig, train
from models.update import update
from streams.worker.serving import note_unserved_forgetting

INTEREST = InterestConfig(half_life_events=2.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("forgetting") / "mf"
    events = generate(GeneratorConfig(n_users=40, n_items=60, events_per_user=12, seed=1))
    train(events, INTEREST, Blend(), TrainConfig(model="mf", dim=8, epochs=1, ranker=False), out,
          show_progress=False)  # fmt: skip
    return out


def test_a_trained_artifact_stores_the_exponential_it_was_trained_with(trained):
    assert read_config(trained)["forgetting"]["label"] == "exp:2ev"
    assert forgetting_of(read_config(trained), InterestConfig()) == Forgetting.parse("exp:2ev")


def test_a_warm_started_version_keeps_its_parents_forgetting(trained, tmp_path):
    events = generate(GeneratorConfig(n_users=40, n_items=60, events_per_user=12, seed=2))
    update(trained, events, InterestConfig(), TrainConfig(model="mf", dim=8, epochs=1),
           tmp_path / "next")  # fmt: skip
    assert read_config(tmp_path / "next")["forgetting"]["label"] == "exp:2ev"


def test_an_artifact_without_the_entry_reads_as_the_served_exponential():
    served = InterestConfig(half_life_ms=6 * 3600e3)
    assert forgetting_of({"kind": "mf"}, served) == Forgetting.parse("exp:6h")
    never = forgetting_of({}, InterestConfig(half_life_ms=math.inf))
    assert never.weights([1e12]).tolist() == [1.0]


def test_a_bad_entry_is_an_artifact_error():
    with pytest.raises(ArtifactError, match="bad forgetting entry"):
        forgetting_of({"forgetting": {"family": "cubic", "clock": "events", "scale": 1}},
                      INTEREST)  # fmt: skip


def test_the_worker_says_when_it_serves_another_function_than_recommended(trained, tmp_path,
                                                                          caplog):  # fmt: skip
    fitted = Path(shutil.copytree(trained, tmp_path / "mf"))
    config = json.loads((fitted / "config.json").read_text())
    config["forgetting"] = Forgetting.parse("power:tau=3ev,alpha=1").to_dict()
    (fitted / "config.json").write_text(json.dumps(config))
    broken = Path(shutil.copytree(trained, tmp_path / "broken"))
    config["forgetting"] = "power"
    (broken / "config.json").write_text(json.dumps(config))
    with caplog.at_level(logging.WARNING):
        note_unserved_forgetting(trained, "v1", INTEREST)
        assert caplog.text == ""  # the exponential it was trained with: served as it is
        note_unserved_forgetting(trained, "v1", InterestConfig(half_life_ms=6 * 3600e3))
        assert "recommends forgetting exp:2ev; this worker serves exp:6h" in caplog.text
        caplog.clear()
        note_unserved_forgetting(fitted, "v1", INTEREST)
        assert "power:tau=3ev,alpha=1" in caplog.text and "serves exp:2ev" in caplog.text
        note_unserved_forgetting(broken, "v1", INTEREST)
    assert "bad forgetting entry" in caplog.text


def test_train_names_a_forgetting_fits_winner(tmp_path):
    from typer.testing import CliRunner

    from models.forgetting_fit import ForgettingFit
    from streams.cli import app

    fit = ForgettingFit(((Forgetting.parse("window:9.6ev"), 0.056),
                         (Forgetting.parse("exp:2.2ev"), 0.055)), 10, 100)  # fmt: skip
    (tmp_path / "fit.json").write_text(json.dumps(fit.to_dict()))
    (tmp_path / "bad.json").write_text("{}")
    runner = CliRunner()
    args = ["train", "--generate", "--users", "40", "--items", "60", "--events-per-user", "12",
            "--model", "mf", "--dim", "8", "--epochs", "1", "--no-ranker", "--threads", "1",
            "--out", str(tmp_path / "model")]  # fmt: skip
    result = runner.invoke(app, [*args, "--forgetting-fit", str(tmp_path / "fit.json")])
    assert result.exit_code == 0, result.output
    assert read_config(tmp_path / "model")["forgetting"]["label"] == "window:9.6ev"
    bad = runner.invoke(app, [*args, "--forgetting-fit", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "not a forgetting fit's result" in bad.output
