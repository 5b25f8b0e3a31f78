"""``streamrec train`` writes an artifact that ``models list`` and ``models show`` describe."""

import json

import numpy as np

from typer.testing import CliRunner

from streams.cli import app

runner = CliRunner()


def test_train_then_list_and_show(tmp_path):
    out = tmp_path / "artifacts" / "gru"
    result = runner.invoke(app, [
        "train", "--model", "gru", "--generate", "--users", "30", "--items", "60",
        "--events-per-user", "12", "--dim", "8", "--epochs", "2", "--no-ranker", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "gru" and not (out / "ranker.pt").exists()

    listed = runner.invoke(app, ["models", "list", str(tmp_path / "artifacts")])
    assert listed.exit_code == 0
    assert f"{out}\tgru\t{config['version']}" in listed.stdout

    shown = json.loads(runner.invoke(app, ["models", "show", str(out)]).stdout)
    assert shown["version"] == config["version"] and "test_ndcg@10" in shown["metrics"]
    assert "history" not in shown["metrics"]


def test_unknown_model_and_missing_artifact_are_one_line_errors(tmp_path):
    bad = runner.invoke(app, ["train", "--model", "bert", "--generate"])
    assert bad.exit_code == 2 and "unknown model 'bert'" in bad.output
    missing = runner.invoke(app, ["models", "show", str(tmp_path)])
    assert missing.exit_code == 2 and "is not a model artifact" in missing.output


def test_large_catalog_artifact_serves_through_its_ann_index(tmp_path):
    from models.artifact import load_recommender
    from models.retrieval import AnnIndex

    out = tmp_path / "mf"
    result = runner.invoke(app, [
        "train", "--model", "mf", "--generate", "--users", "30", "--items", "60",
        "--events-per-user", "12", "--dim", "8", "--epochs", "1", "--ann-min-items", "10",
        "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert (out / "ann.faiss").is_file() and (out / "ranker.pt").is_file()
    recommender = load_recommender(out)
    assert isinstance(recommender.search, AnnIndex)
    [served] = recommender.top_k(np.full((1, 8), 0.1, np.float32), [["i1", "i2"]], 5)
    assert len(served.item_ids) == 5 and not {"i1", "i2"} & set(served.item_ids)
