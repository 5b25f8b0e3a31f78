"""The security settings against a broker that enforces them (issue 31): Apache Kafka with a
listener that requires SASL. The CLI's clients connect with the right credentials by PLAIN and
both SCRAMs and are refused with a wrong password, which no output shows; a worker authenticates
its consumer, producer, admin and recovery clients and serves every event."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterator

import pytest
from pydantic import SecretStr

from core.generator import GeneratorConfig, generate
from streams.settings import Settings
from streams.tools.broker import (
    LocalBroker, free_port, kafka_unavailable, start_broker, stop_process, wait_ready,
)
from streams.tools.cluster import child_env, wait_until_ready
from streams.tools.kafka_broker import SaslListener
from streams.tools.producer import produce_events
from tests.helpers import consume, event_messages

pytestmark = pytest.mark.integration

USER, PASSWORD, WRONG = "streamrec", "right-Pa55word", "wrong-Pa55word"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, int]]:
    """A Kafka broker with a PLAINTEXT listener (for the test's own reads) and one that requires
    SASL from USER; yields the broker and the SASL port."""
    if kafka_unavailable():
        pytest.skip(kafka_unavailable())
    folder = tmp_path_factory.mktemp("secured")
    sasl = SaslListener(free_port(), {USER: PASSWORD})
    broker = start_broker(free_port(), "kafka", folder / "data", folder / "broker.log", sasl)
    try:
        wait_ready(broker, log_path=folder / "broker.log")
        yield broker, sasl.port
    finally:
        stop_process(broker.process, timeout=30)


def sasl_settings(settings: Settings, port: int, mechanism: str, password: str) -> Settings:
    return settings.model_copy(update={
        "bootstrap": f"127.0.0.1:{port}", "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism, "sasl_username": USER, "sasl_password": SecretStr(password),
    })


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams", *args], capture_output=True,
                          text=True, timeout=180, env=child_env(settings, os.environ))


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_the_cli_connects_with_the_right_password(secured, settings, mechanism):
    _, port = secured
    done = run_cli(sasl_settings(settings, port, mechanism, PASSWORD), "topics")
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_a_wrong_password_is_refused_said_so_and_never_shown(secured, settings):
    """The broker hangs up on a wrong password and kafka-python retries until its timeout, so
    the error cannot tell it from a broker that never answered: it says to check the password."""
    _, port = secured
    done = run_cli(sasl_settings(settings, port, "SCRAM-SHA-512", WRONG), "topics")
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "check the username and password" in out, out
    assert WRONG not in out and PASSWORD not in out


def test_a_worker_authenticates_every_client_and_serves_every_event(
    secured, settings, workers, tmp_path
):
    broker, port = secured
    plain = settings.model_copy(update={"bootstrap": broker.bootstrap})  # the test's own reads
    safe = sasl_settings(settings, port, "SCRAM-SHA-256", PASSWORD)
    worker = workers(safe)
    wait_until_ready(safe.web_port, timeout=120, process=worker)
    events = generate(GeneratorConfig(n_users=10, n_items=200, events_per_user=5, seed=7))
    produce_events(safe, event_messages(events), 0.0)
    records = consume(plain.bootstrap, plain.recs_topic, len(events), timeout=90)
    assert len(records) == len(events)
    assert PASSWORD not in (tmp_path / "worker-0.log").read_text()  # the workers fixture's log
