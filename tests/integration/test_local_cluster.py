"""`streamrec up --workers 2`: both workers own partitions, recommendations flow, each worker's
/metrics counts what it did, and the query endpoints answer from either worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import orjson
import pytest

from streams.kafka_edge.transactions import isolation_level
from streams.tools.broker import stop_process
from streams.tools.cluster import settings_env, wait_for
from core.generator import GeneratorConfig, generate
from streams.settings import Settings
from tests.helpers import consume, event_messages, produce

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(settings: Settings, tmp_path: Path) -> Iterator[dict]:
    """``streamrec up --workers 2`` on the session broker; everything it started is stopped."""
    workdir = tmp_path / "cluster"
    env = {**os.environ, **settings_env(settings)}
    up = subprocess.Popen(
        [sys.executable, "-m", "streams", "up", "--workers", "2", "--workdir", str(workdir)],
        env=env,
        stdout=open(tmp_path / "up.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    manifest = workdir / "cluster.json"
    started: dict = {}
    try:
        wait_for(manifest.is_file, 150, "cluster.json (both workers ready)", process=up)
        started = json.loads(manifest.read_text())
        yield started
    finally:
        stop_process(up, timeout=30)
        for member in started.get("workers", []):  # in case `up` died without stopping them
            try:
                os.kill(member["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


def metric(text: str, name: str) -> float:
    """Sum of every sample of ``name`` (all label sets) in a Prometheus exposition."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_up_two_workers_share_partitions_serve_metrics_and_route_queries(settings, cluster):
    workers = cluster["workers"]
    assert cluster["bootstrap"] == settings.bootstrap
    assert len(workers) == 2 and all(w["partitions"] for w in workers), workers
    assert sorted(p for w in workers for p in w["partitions"]) == list(range(settings.partitions))

    events = generate(GeneratorConfig(n_users=30, n_items=200, events_per_user=8, seed=3))
    bad = [(b"u0", b"{not json")]
    produce(settings, event_messages(events) + bad)
    records = [
        orjson.loads(r.value)
        for r in consume(settings.bootstrap, settings.recs_topic, len(events), timeout=90,
                         isolation=isolation_level(settings.processing_guarantee))
    ]
    assert {r["trigger"]["event_id"] for r in records} == {e.event_id for e in events}

    texts = {}
    total = lambda name: sum(metric(t, name) for t in texts.values())  # noqa: E731

    def counted() -> bool:
        """A batch's records are readable once it commits; its counts follow a moment later."""
        for w in workers:
            with urllib.request.urlopen(f"{w['url']}/metrics", timeout=5) as response:
                texts[w["url"]] = response.read().decode()
        return total("streamrec_events_applied_total") == len(events)

    wait_for(counted, 30, "every applied event in the workers' metrics")
    for text in texts.values():  # both owned partitions with events, so both worked
        assert metric(text, "streamrec_events_in_total") > 0
        assert metric(text, "streamrec_end_to_end_latency_seconds_count") > 0
        assert metric(text, "streamrec_scoring_seconds_count") > 0
        assert 'streamrec_model_info{kind="mf"' in text
    assert total("streamrec_events_in_total") == len(events) + 1
    assert total("streamrec_events_applied_total") == len(events)
    assert total("streamrec_dead_lettered_total") == 1
    # an estimate: every user is in it; overwrites still in the memtable count again
    assert 30 <= total("streamrec_table_keys_estimate") <= 30 + len(events)
    assert total("streamrec_consumer_lag") == 0

    # Every user, asked of either worker, is answered by its owner: same answer both ways.
    last_record = {r["user_id"]: r for r in records}
    last_event = {e.user_id: e for e in events}
    for user in ("u0", "u1", "u2", "u3", "u4", "u5"):
        answers = [get(f"{w['url']}/users/{user}/recommendations") for w in workers]
        assert answers[0] == answers[1] and answers[0][0] == 200
        body = answers[0][1]
        emitted = last_record[user]["items"]  # same state, same model: the same list
        assert [i["item_id"] for i in body["items"]] == [i["item_id"] for i in emitted]
        assert [i["score"] for i in body["items"]] == pytest.approx(
            [i["score"] for i in emitted], abs=1e-5)
        assert body["last_event_ts"] == last_event[user].ts
        interest = [get(f"{w['url']}/users/{user}/interest?at={body['last_event_ts']}")
                    for w in workers]
        assert interest[0] == interest[1] and interest[0][1]["decay"] == 1.0
        assert interest[0][1]["interest"] == interest[0][1]["vector"]
        later = get(f"{workers[0]['url']}/users/{user}/interest"
                    f"?at={body['last_event_ts'] + int(settings.half_life_ms)}")[1]
        assert later["decay"] == pytest.approx(0.5)
        assert later["interest"] == pytest.approx([x / 2 for x in later["vector"]], rel=1e-5)
    for w in workers:
        assert get(f"{w['url']}/users/nobody/recommendations")[0] == 404
        assert get(f"{w['url']}/users/nobody/interest")[0] == 404
