"""The query views' pure parts (the views themselves run against a worker in the integration
lane): the recommendations answered as the worker's records serve them, a stored value read as
the steps read it, the ``?at=`` check, the bearer-token check, and the token's travel to the
processes and requests that need it, without showing up anywhere else."""

import hmac
import logging

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from streams.cli import app
from streams.tools.cluster import auth_headers, settings_env
from streams.settings import Settings
from streams.steps import records
from streams.steps.parse import parse_batch
from streams.steps.users import apply_users
from streams.worker.serving import Active
from streams.worker.views import bearer_ok, recommendations, stored_state
from tests.unit.step_helpers import FaustTable, event, messages, plain_top_k
from tests.unit.test_slates import board_with
from tests.unit.test_slates import recommender as catalog

TOKEN = "tok-3f9c2a7e0b41d6"
RULES = dict(explore="epsilon", explore_epsilon=0.5, explore_budget=3, cold_start_events=1,
             mmr_lambda=0.3)  # fmt: skip


def the_workers_record(settings: Settings, board, *events) -> tuple[dict, object, list[str]]:
    """The table after the worker applied ``events`` (partition 2), and the lists it served."""
    rec, table = catalog(), {}
    batch = messages(*events, partition=2, first_offset=40)
    done = apply_users(parse_batch(batch, rec.index), FaustTable(table), rec.item_vector,
                       rec.dim, settings.steps, codebook=rec.codebook, model_tag=rec.tag)  # fmt: skip
    ids = records.record_ids(done.snapshots)
    served = records.serve(rec, done.snapshots, settings.top_k, settings.list_rules, board, ids)
    return table, served, ids


@pytest.mark.parametrize("seen", [["i3", "i17", "i41"], ["i3"]], ids=["mmr+epsilon", "trending"])
def test_the_recommendations_view_answers_the_users_last_record(seen):
    settings, board = Settings(**RULES), board_with({"i5": 9.0, "i8": 4.0, "i30": 2.0}, 1000)
    table, served, ids = the_workers_record(
        settings, board, *[event("u", item, 1000 + n) for n, item in enumerate(seen)])
    rec = catalog()
    answer = recommendations("u", table[b"u"], Active(rec, ()), settings, board)
    assert answer["rec_id"] == ids[-1] and answer["position"] == [2, 40 + len(seen) - 1]
    assert answer["items"] == records.record_items(served, len(seen) - 1)  # the record's list
    plain = plain_top_k(rec, [stored_state(table[b"u"], "u", Active(rec, ()))], settings.top_k)
    assert [i["item_id"] for i in answer["items"]] != plain[0].item_ids  # the rules changed it
    again = recommendations("u", table[b"u"], Active(rec, ()), settings, board)
    assert again == answer  # seeded by the record's id: the same draws every time


def test_a_stored_value_the_codec_cannot_read_answers_a_fresh_users_list(caplog):
    settings, board = Settings(**RULES), board_with({"i5": 9.0, "i8": 4.0}, 1000)
    with caplog.at_level(logging.ERROR, logger="streams.steps.users"):
        answer = recommendations("u", b"\xff not a state", Active(catalog(), ()), settings,
                                 board)  # fmt: skip
    assert "unreadable state" in caplog.text
    assert answer["position"] == [-1, -1] and answer["last_event_ts"] == 0
    assert [i["item_id"] for i in answer["items"][:2]] == ["i5", "i8"]  # a new user's: trending


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
