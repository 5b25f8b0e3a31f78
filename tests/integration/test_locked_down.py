"""A locked-down worker: Faust's own pages (raw table bytes, the router's topology) are gone, and
with STREAMREC_API_TOKEN every route we serve asks for the bearer token: on the worker asked, and
on the owner a query is forwarded to (Faust's router passes the request's headers on)."""

from __future__ import annotations

import json
import secrets
import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from core.generator import GeneratorConfig, generate
from streams.kafka_edge.topics import USER_TABLE
from streams.tools.broker import free_port
from streams.cli import app
from streams.tools.cluster import (
    WorkerError,
    fetch_json,
    wait_for,
    wait_until_all_assigned,
    wait_until_ready,
    worker_stats,
)
from streams.settings import Settings
from tests.helpers import event_messages, produce

pytestmark = pytest.mark.integration

# aiohttp's answer for a path no route matches; Faust's table view answers a JSON error instead.
NO_ROUTE = (404, "text/plain", b"404: Not Found")


def get(url: str, authorization: str | None = None) -> tuple[int, str, bytes]:
    """Status, content type and body, whatever the status."""
    headers = {} if authorization is None else {"Authorization": authorization}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get_content_type(), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


def raw_request(port: int, request: bytes) -> bytes:
    """The status line the server answers ``request`` with, sent as raw bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request)
        return conn.makefile("rb").readline()


def locked(settings: Settings) -> tuple[Settings, str]:
    token = secrets.token_urlsafe(24)
    return settings.model_copy(update={"api_token": SecretStr(token)}), token


def applied(ports: list[int], token: SecretStr, count: int) -> list[dict] | None:
    """Every worker's /stats/ once they have applied ``count`` events between them."""
    stats = [worker_stats(port, token) for port in ports]
    if any(s is None for s in stats) or sum(s["applied"] for s in stats) < count:
        return None
    return stats


def test_faust_pages_are_gone_and_every_route_asks_for_the_token(settings, workers, tmp_path):
    settings, token = locked(settings)
    worker = workers(settings)
    wait_until_ready(settings.web_port, timeout=90, process=worker, token=settings.api_token)
    events = generate(GeneratorConfig(n_users=3, n_items=200, events_per_user=2, seed=5))
    produce(settings, event_messages(events))
    wait_for(lambda: applied([settings.web_port], settings.api_token, len(events)), 60, "events")
    base = f"http://127.0.0.1:{settings.web_port}"
    user = events[0].user_id
    right, wrong = f"Bearer {token}", f"Bearer {secrets.token_urlsafe(24)}"

    # The key is in the table (our view serves it), yet Faust's pages for it are not routed at
    # all: aiohttp's bare 404, not Faust's JSON "key not found"; the token unlocks nothing more.
    assert get(f"{base}/users/{user}/interest", right)[0] == 200
    for path in (f"/table/{USER_TABLE}/{user}/", f"/table/{USER_TABLE}/", "/table/", "/router/",
                 "/graph/"):
        assert get(base + path) == NO_ROUTE, path
        assert get(base + path, right) == NO_ROUTE, path

    for path in (f"/users/{user}/recommendations", f"/users/{user}/interest", "/stats/",
                 "/metrics", "/users/nobody/interest"):  # 401 before any "unknown user" 404
        for header in (None, wrong, f"Basic {token}", token, "Bearer "):
            status, kind, body = get(base + path, header)
            assert (status, kind) == (401, "application/json"), (path, header)
            assert "error" in json.loads(body) and token.encode() not in body
    for path in (f"/users/{user}/recommendations", f"/users/{user}/interest", "/metrics"):
        assert get(base + path, right)[0] == 200, path
    assert get(base + "/users/nobody/interest", right)[0] == 404
    assert get(base + "/")[:2] == (200, "application/json")  # Faust's index: {"status": "OK"}

    status, _, stats_body = get(f"{base}/stats/", right)
    assert status == 200 and json.loads(stats_body)["applied"] == len(events)
    assert token.encode() not in stats_body
    assert token.encode() not in get(f"{base}/metrics", right)[2]
    assert token not in (tmp_path / "worker-0.log").read_text(errors="replace")

    # A request line of 100 KB is the client's error: answered 4xx, logged without a traceback
    # (aiohttp logs it before it answers, so the log already holds whatever it wrote).
    status_line = raw_request(settings.web_port, b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n")
    assert status_line.split()[1] in (b"400", b"414"), status_line
    log = (tmp_path / "worker-0.log").read_text(errors="replace")
    assert "Traceback" not in log and "Error handling request" not in log

    # Our clients: a refused token is a clear error at once, not a wait for a deadline.
    with pytest.raises(WorkerError, match="401"):
        worker_stats(settings.web_port, SecretStr("not-it"))
    runner = CliRunner()
    env = {"STREAMREC_WEB_PORT": str(settings.web_port)}
    assert runner.invoke(app, ["health"], env={**env, "STREAMREC_API_TOKEN": token}).exit_code == 0
    refused = runner.invoke(app, ["health"], env={**env, "STREAMREC_API_TOKEN": "not-it"})
    assert refused.exit_code == 1 and token not in refused.output


def test_a_query_forwarded_to_the_owner_carries_the_token(settings, workers, tmp_path: Path):
    settings, token = locked(settings)
    members = [
        settings.model_copy(update={"state_dir": tmp_path / f"w{n}", "web_port": free_port()})
        for n in range(2)
    ]
    processes = [workers(member) for member in members]
    ports = [member.web_port for member in members]
    wait_until_all_assigned(ports, settings.partitions, 120, processes, settings.api_token)
    events = generate(GeneratorConfig(n_users=10, n_items=200, events_per_user=2, seed=11))
    produce(settings, event_messages(events))
    stats = wait_for(lambda: applied(ports, settings.api_token, len(events)), 60, "events")
    # Both workers own users, so every user asked of both is forwarded by one of them.
    assert all(s["applied"] > 0 for s in stats), stats

    last_ts = {e.user_id: e.ts for e in events}
    for user, ts in last_ts.items():
        for path in (f"/users/{user}/recommendations", f"/users/{user}/interest?at={ts}"):
            answers = [
                fetch_json(f"http://127.0.0.1:{port}{path}", token=settings.api_token)
                for port in ports
            ]
            assert answers[0] == answers[1] and answers[0]["user_id"] == user
            for port in ports:
                assert get(f"http://127.0.0.1:{port}{path}")[0] == 401
                assert get(f"http://127.0.0.1:{port}{path}", "Bearer not-it")[0] == 401
