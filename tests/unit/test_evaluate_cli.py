"""`streamrec evaluate` end to end on generated users whose interests fade with a known half-life:
the sweep must find it, and decay must beat no decay; the outputs are written."""

import json

import pytest

from typer.testing import CliRunner

from streams.cli import app

UNIFORM_WEIGHTS = '{"view":1,"click":1,"cart":1,"purchase":1,"rating":1,"skip":-1}'


def test_half_life_sweep_finds_the_generators_half_life(tmp_path):
    # the generator draws each topic from the user's past with weights 2^(-age/6h); event
    # types carry no signal there, so they weigh the same
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--generate",
            "--users",
            "300",
            "--events-per-user",
            "100",
            "--true-half-life",
            "6h",
            "--drift",
            "0.25",
            "--warmup",
            "0.5",
            "--model",
            "mf",
            "--epochs",
            "15",
            "--policy",
            "interest",
            "--policy",
            "popularity",
            "--half-life",
            "1.5h",
            "--half-life",
            "6h",
            "--half-life",
            "24h",
            "--half-life",
            "inf",
            "--out",
            str(tmp_path),
        ],
        env={"STREAMREC_EVENT_WEIGHTS": UNIFORM_WEIGHTS},
    )
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads((tmp_path / "prequential.json").read_text())}
    sweep = {name: r["ndcg@10"] for name, r in rows.items() if name.startswith("interest h=")}
    assert max(sweep, key=sweep.get) == "interest h=6h", sweep
    assert sweep["interest h=6h"] > 1.1 * sweep["interest h=inf"]
    assert rows["interest h=6h"]["ndcg@10"] > 2 * rows["popularity"]["ndcg@10"]
    assert (tmp_path / "prequential.md").read_text().count("\n") == 2 + len(rows)
    assert (tmp_path / "prequential.png").stat().st_size > 10_000
    assert all(len(r["windows"]) == 10 for r in rows.values())


def test_bad_options_are_one_line_errors(tmp_path):
    runner = CliRunner()
    bad_policy = runner.invoke(app, ["evaluate", "--generate", "--policy", "magic"])
    assert bad_policy.exit_code == 2 and "unknown policy" in bad_policy.output
    bad_half_life = runner.invoke(app, ["evaluate", "--generate", "--half-life", "soon"])
    assert bad_half_life.exit_code == 2 and "is not a duration" in bad_half_life.output
    lone_warm_start = runner.invoke(app, ["evaluate", "--generate", "--warm-start"])
    assert lone_warm_start.exit_code == 2 and "give --retrain-every N" in lone_warm_start.output
    bad_forgetting = runner.invoke(app, ["evaluate", "--generate", "--forgetting", "cubic:2ev"])
    assert bad_forgetting.exit_code == 2 and "unknown forgetting family" in bad_forgetting.output
    no_data = runner.invoke(app, ["evaluate"])
    assert no_data.exit_code == 2 and "--data PATH or --generate" in no_data.output
    no_product = runner.invoke(
        app, ["evaluate", "--generate", "--policy", "popularity", "--through-kafka", "10",
              "--out", str(tmp_path)],
    )
    assert no_product.exit_code == 2 and "needs the interest, neighbours or product" in no_product.output
    no_catalog = runner.invoke(app, ["evaluate", "--generate", "--policy", "content-knn"])
    assert no_catalog.exit_code == 2 and "needs --catalog FILE" in no_catalog.output
    assert not (tmp_path / "prequential.json").exists()  # refused before anything ran


def test_warm_started_versions_through_the_cli(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--generate", "--users", "60", "--items", "80", "--events-per-user", "20",
            "--model", "interest-mf", "--dim", "8", "--epochs", "2", "--retrain-every", "300",
            "--warm-start", "--recent-events", "500", "--policy", "interest", "--half-life", "2ev",
            "--out", str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "model versions: 4" in result.output  # at events 240 (end of warm-up), 540, 840, 1140
    assert "model: version 1 of 4 made at event 240" in result.output  # progress as it goes
    assert "model: version 4 of 4 made at event 1,140" in result.output
    rows = json.loads((tmp_path / "prequential.json").read_text())
    assert rows[0]["policy"] == "interest h=2ev" and rows[0]["ndcg@10"] > 0


def test_session_baselines_and_retrained_models_through_the_cli(tmp_path):
    from streams.cli.evaluate_policies import POLICIES

    shown = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"}).output
    assert all(f"{name}: {what}" in shown for name, what in POLICIES.items())
    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--generate", "--users", "40", "--items", "60", "--events-per-user", "15",
            "--dim", "8", "--epochs", "1", "--policy", "v-sknn", "--policy", "stan", "--policy",
            "sr", "--policy", "gru4rec-1d", "--out", str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads((tmp_path / "prequential.json").read_text())}
    assert set(rows) == {"V-SKNN", "STAN", "SR", "gru4rec-1d"}
    assert rows["gru4rec-1d"]["train_seconds"] > 0 and rows["SR"]["ndcg@10"] > 0
    assert "gru4rec-1d: version 1 of " in result.output  # progress while it trains


def test_forgetting_functions_and_their_fit_through_the_cli(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--generate", "--users", "60", "--items", "80", "--events-per-user", "30",
            "--true-forgetting", "window:8ev", "--model", "mf", "--dim", "8", "--epochs", "1",
            "--policy", "interest", "--half-life", "2ev", "--forgetting", "exp:2ev",
            "--forgetting", "power:tau=3ev,alpha=1", "--fit-forgetting", "--threads", "1",
            "--out", str(tmp_path),
        ],
        env={"STREAMREC_EVENT_WEIGHTS": UNIFORM_WEIGHTS},
    )
    assert result.exit_code == 0, result.output
    # what the fit picks is tested on enough events in tests/unit/test_forgetting_fit.py; here
    # that the CLI writes the fit and runs the winner on the tested stream
    fit = json.loads((tmp_path / "forgetting_fit.json").read_text())
    rows = {r["policy"]: r for r in json.loads((tmp_path / "prequential.json").read_text())}
    assert f"interest g={fit['winner']['label']}" in rows
    # the exact recomputation of the worker's decay scores as the worker's own path does (but
    # for a near tie the worker's 16-bit state may flip)
    assert rows["interest g=exp:2ev"]["ndcg@10"] == pytest.approx(
        rows["interest h=2ev"]["ndcg@10"], abs=2e-3)
    assert "interest g=power:tau=3ev,alpha=1" in rows
    assert sum(name.startswith("interest g=") for name in rows) >= 4  # the fit's families too


def test_the_source_ranker_and_its_ablation_through_the_cli(tmp_path):
    from models.source_ranker import SOURCES

    result = CliRunner().invoke(
        app,
        [
            "evaluate", "--generate", "--users", "40", "--items", "60", "--events-per-user", "15",
            "--model", "interest-mf", "--dim", "8", "--epochs", "1", "--policy", "popularity",
            "--policy", "sources", "--ablate-sources", "--out", str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = {r["policy"]: r for r in json.loads((tmp_path / "prequential.json").read_text())}
    full = rows[f"sources: {' + '.join(SOURCES)} + interest"]
    assert not full["baseline"] and rows["popularity"]["baseline"]
    assert full["vs_best_baseline"] == full["ndcg@10"] / rows["popularity"]["ndcg@10"]
    assert {f"sources - {s}" for s in [*SOURCES, "interest"]} < set(rows)
    assert "÷ best baseline" in (tmp_path / "prequential.md").read_text()
