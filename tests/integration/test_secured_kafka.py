"""The security settings against a broker that enforces them (issue 31): Apache Kafka with a
listener that requires SASL and one that requires mutual TLS. The CLI's clients connect with the
right credentials by PLAIN and both SCRAMs and are refused with a wrong password, which no
output shows; over TLS they connect with the right CA and client certificate and are refused
with another CA; a worker authenticates its consumer, producers (transactional ones too), admin
and recovery clients both ways and serves every event; the lifelong trainer reads and announces
over SASL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest
from pydantic import SecretStr

from core.generator import GeneratorConfig, generate
from streams.kafka_edge.topics import BrokerError, ensure_topics
from streams.settings import Settings
from streams.tools.broker import (
    LocalBroker, free_port, kafka_unavailable, start_broker, stop_process, wait_ready,
)
from streams.tools.cluster import child_env, wait_for, wait_until_ready
from streams.tools.kafka_broker import SaslListener, TlsListener
from streams.tools.producer import produce_events
from streams.trainer.lifelong import Trainer, TrainerConfig
from tests.helpers import consume, event_messages

pytestmark = pytest.mark.integration

USER, PASSWORD, WRONG = "streamrec", "right-Pa55word", "wrong-Pa55word"


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def certificates(folder: Path) -> dict[str, Path]:
    """A CA, the broker's key and chain (for 127.0.0.1) and a client's, signed by it; and
    another CA that signed neither."""
    files = {name: folder / f"{name}.pem" for name in
             ("ca", "ca-key", "other-ca", "other-ca-key", "broker", "broker-key", "broker-csr",
              "client", "client-key", "client-csr", "broker-keystore")}
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", f"/CN=streamrec test {ca}", "-keyout", str(files[f"{ca}-key"]),
                "-out", str(files[ca]))
    extensions = folder / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for party in ("broker", "client"):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={party}",
                "-keyout", str(files[f"{party}-key"]), "-out", str(files[f"{party}-csr"]))
        openssl("x509", "-req", "-in", str(files[f"{party}-csr"]), "-CA", str(files["ca"]),
                "-CAkey", str(files["ca-key"]), "-CAcreateserial", "-days", "2",
                "-extfile", str(extensions), "-out", str(files[party]))
    files["broker-keystore"].write_text(files["broker-key"].read_text()
                                        + files["broker"].read_text() + files["ca"].read_text())
    return files


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalBroker, int, int,
                                                                       dict[str, Path]]]:
    """A Kafka broker with a PLAINTEXT listener (for the test's own reads), one that requires
    SASL from USER and one that requires mutual TLS; yields the broker, the SASL port, the TLS
    port and the certificate files."""
    if kafka_unavailable():
        pytest.skip(kafka_unavailable())
    folder = tmp_path_factory.mktemp("secured")
    files = certificates(folder)
    sasl = SaslListener(free_port(), {USER: PASSWORD})
    tls = TlsListener(free_port(), files["broker-keystore"], client_ca=files["ca"])
    broker = start_broker(free_port(), "kafka", folder / "data", folder / "broker.log",
                          [sasl, tls])
    try:
        wait_ready(broker, log_path=folder / "broker.log")
        yield broker, sasl.port, tls.port, files
    finally:
        stop_process(broker.process, timeout=30)


def tls_settings(settings: Settings, port: int, files: dict[str, Path], ca: str = "ca"
                 ) -> Settings:  # fmt: skip
    return settings.model_copy(update={
        "bootstrap": f"127.0.0.1:{port}", "security_protocol": "SSL",
        "ssl_cafile": files[ca], "ssl_certfile": files["client"],
        "ssl_keyfile": files["client-key"],
    })


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
    _, port, _, _ = secured
    done = run_cli(sasl_settings(settings, port, mechanism, PASSWORD), "topics")
    assert done.returncode == 0, done.stdout + done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_a_wrong_password_is_refused_said_so_and_never_shown(secured, settings, caplog):
    """The broker hangs up on a wrong password and kafka-python retries until its timeout, so
    the error cannot tell it from a broker that never answered: it says to check the password.
    (The CLI's topic admin, called here with a short timeout: `streamrec topics` waits 30 s.)"""
    _, port, _, _ = secured
    with pytest.raises(BrokerError) as refused:
        ensure_topics(sasl_settings(settings, port, "SCRAM-SHA-512", WRONG), timeout=5)
    assert "check the username and password" in str(refused.value)
    shown = str(refused.value) + caplog.text
    assert WRONG not in shown and PASSWORD not in shown


def test_the_cli_connects_over_mutual_tls_and_refuses_a_broker_another_ca_signed(
    secured, settings
):
    _, _, port, files = secured
    done = run_cli(tls_settings(settings, port, files), "topics")
    assert done.returncode == 0, done.stdout + done.stderr
    with pytest.raises(BrokerError):  # the same admin client, with a short timeout
        ensure_topics(tls_settings(settings, port, files, ca="other-ca"), timeout=5)


@pytest.mark.parametrize("over", ["SASL SCRAM-SHA-256", "mutual TLS"])
def test_a_worker_authenticates_every_client_and_serves_every_event(
    secured, settings, workers, tmp_path, over
):
    broker, sasl_port, tls_port, files = secured
    plain = settings.model_copy(update={"bootstrap": broker.bootstrap})  # the test's own reads
    safe = sasl_settings(settings, sasl_port, "SCRAM-SHA-256", PASSWORD) \
        if over.startswith("SASL") else tls_settings(settings, tls_port, files)  # fmt: skip
    worker = workers(safe)
    wait_until_ready(safe.web_port, timeout=120, process=worker)
    events = generate(GeneratorConfig(n_users=10, n_items=200, events_per_user=5, seed=7))
    produce_events(safe, event_messages(events), 0.0)
    records = consume(plain.bootstrap, plain.recs_topic, len(events), timeout=90)
    assert len(records) == len(events)
    assert PASSWORD not in (tmp_path / "worker-0.log").read_text()  # the workers fixture's log


def test_the_trainer_reads_and_announces_over_sasl(secured, settings, tmp_path, caplog):
    """The lifelong trainer's clients (its events consumer, the announcement producer)
    authenticate too: a version it trained from events read over SASL is announced over SASL."""
    broker, sasl_port, _, _ = secured
    safe = sasl_settings(settings, sasl_port, "SCRAM-SHA-512", PASSWORD)
    ensure_topics(safe)
    root = tmp_path / "models"
    shutil.copytree(settings.model_path, root / "start")
    trainer = Trainer(safe, TrainerConfig(root, every_events=200, every_s=3_600.0, window=1_000,
                                          reservoir=100, replay=50), root / "start")  # fmt: skip
    stop = threading.Event()
    training = threading.Thread(target=trainer.run, args=(stop,), daemon=True)
    training.start()
    try:
        events = generate(GeneratorConfig(n_users=20, n_items=200, events_per_user=15, seed=9))
        produce_events(safe, event_messages(events), 0.0)
        wait_for(lambda: trainer.announced, 120, "a version announced over SASL")
    finally:
        stop.set()
        training.join(60)
    [announced] = consume(broker.bootstrap, settings.model_updates_topic, 1, timeout=30)
    assert trainer.announced[0].version.encode() in announced.value
    assert PASSWORD not in caplog.text
