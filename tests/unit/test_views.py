"""The query views' pure parts (the views themselves run against a worker in the integration
lane): the ``?at=`` check, the bearer-token check, and the token's travel to the processes and
requests that need it, without showing up anywhere else."""

import hmac

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from streams.cli import app
from streams.tools.cluster import auth_headers, settings_env
from streams.settings import Settings
from streams.worker.views import bearer_ok

TOKEN = "tok-3f9c2a7e0b41d6"


def test_the_interest_views_time_is_an_event_time_or_refused():
    from streams.worker.views import query_time

    assert query_time(None, 123) == 123
    assert query_time("1700000000000", 123) == 1_700_000_000_000
    for bad in ("1" + "0" * 30, "1" + "0" * 400, "-5", "soon", "1e3", "1.5"):
        with pytest.raises(ValueError):
            query_time(bad, 123)


def test_only_the_exact_bearer_token_is_accepted():
    token = SecretStr(TOKEN)
    assert bearer_ok(f"Bearer {TOKEN}", token)
    assert bearer_ok(f"bearer {TOKEN}", token)  # the scheme is case-insensitive (RFC 7235)
    refused = [
        None, "", "Bearer", "Bearer ", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN.upper()}", f"Bearer  x{TOKEN}",
        "Bearer tök", "Bearer \udcff",  # not ASCII, not even UTF-8: refused, never a TypeError
    ]
    for header in refused:
        assert not bearer_ok(header, token), header


def test_an_empty_token_setting_accepts_nothing():
    # STREAMREC_API_TOKEN= (a compose ${VAR:-} left empty) must not mean "Bearer " gets in.
    assert not bearer_ok("Bearer ", SecretStr(""))
    assert not bearer_ok("Bearer", SecretStr(""))


def test_the_token_is_compared_in_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert not bearer_ok("Bearer wrong-and-shorter", SecretStr(TOKEN))
    assert calls == [(bytes, bytes)]  # a length mismatch is no shortcut either


def test_a_child_process_gets_the_secret_itself_not_its_mask():
    env = settings_env(Settings(api_token=SecretStr(TOKEN), sasl_password=SecretStr("pw")))
    assert env["STREAMREC_API_TOKEN"] == TOKEN
    assert env["STREAMREC_SASL_PASSWORD"] == "pw"
    assert "STREAMREC_API_TOKEN" not in settings_env(Settings())


def test_our_clients_send_the_token_only_when_there_is_one():
    assert auth_headers(None) == {}
    assert auth_headers(SecretStr(TOKEN)) == {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("command", ["worker", "health", "up", "demo", "evaluate"])
def test_the_token_is_not_in_help_or_repr(command, monkeypatch):
    monkeypatch.setenv("STREAMREC_API_TOKEN", TOKEN)
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    settings = Settings(api_token=SecretStr(TOKEN))
    assert TOKEN not in repr(settings) and TOKEN not in str(settings)
