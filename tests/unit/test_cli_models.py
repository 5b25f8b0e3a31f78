"""``streamrec train`` writes an artifact that ``models list`` and ``models show`` describe."""

import json

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
