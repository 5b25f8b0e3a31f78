"""The CLI is one app however it is started, and the only code that reads ``STREAMREC_*`` env."""

import subprocess
import sys

import pytest
import typer

from streams.cli import app
from streams.cli.options import chosen_generator, load_settings
from streams.settings import Settings

COMMANDS = (
    "broker", "topics", "worker", "health", "up", "produce", "tail", "train", "models", "demo",
    "evaluate", "trainer", "simulate", "ope",
)


@pytest.mark.parametrize("package", ["streams.cli", "streams"])
def test_every_command_is_listed_however_the_cli_starts(package):
    result = subprocess.run(
        [sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    listed = {line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ")}
    assert set(COMMANDS) <= listed, listed


def test_models_group_has_list_show_and_promote():
    models = typer.main.get_command(app).commands["models"]
    assert set(models.commands) == {"list", "show", "promote"}


def test_only_the_cli_reads_env(monkeypatch):
    monkeypatch.setenv("STREAMREC_TOP_K", "3")
    assert Settings().top_k == 10
    assert load_settings().top_k == 3
    assert load_settings(top_k=5).top_k == 5  # a flag given beats env
    assert load_settings(top_k=None).top_k == 3  # a flag not given does not


def test_bad_env_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("STREAMREC_TOP_K", "lots")
    with pytest.raises(typer.BadParameter, match="top_k"):
        load_settings()


def test_exactly_one_of_a_log_and_the_generator(tmp_path):
    assert chosen_generator(tmp_path, False, "--data PATH", n_users=3) is None
    assert chosen_generator(None, True, "--data PATH", n_users=3).n_users == 3
    for path, generate in ((None, False), (tmp_path, True)):
        with pytest.raises(typer.BadParameter, match="give --data PATH or --generate"):
            chosen_generator(path, generate, "--data PATH")
