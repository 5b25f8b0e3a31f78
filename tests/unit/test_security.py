"""streams.kafka_edge.security: the settings become what Faust, aiokafka and kafka-python each take, a
misconfiguration fails before any connection, and the password shows nowhere.

No broker here speaks SASL or TLS (the embedded Tansu broker is PLAINTEXT), so each library is
checked where it takes the settings: its clients constructed but not started (aiokafka checks SASL
and SSL in its constructor, kafka-python refuses unknown configs), kafka-python's own SASL
mechanisms and SSL context builder fed our kwargs, the consumer Faust builds for the worker, and a
local mutual-TLS handshake with the context we build.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.auth import SASLCredentials, SSLCredentials
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP
from faust.types.auth import AuthProtocol, SASLMechanism
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.net.sasl import get_sasl_mechanism
from kafka.net.transport import KafkaSSLTransport
from typer.testing import CliRunner

from streams.kafka_edge import compat, security
from streams.cli import app as cli
from streams.cli.options import SettingsFromEnv
from streams.tools.cluster import child_env
from streams.kafka_edge.security import KafkaSecurityError
from streams.settings import Settings

SECRET = "s3cr3t-hunter2"
USER = "svc-streamrec"
CASES = [  # (protocol, mechanism): every protocol, every mechanism once
    ("PLAINTEXT", "PLAIN"),
    ("SSL", "PLAIN"),
    ("SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256"),
    ("SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "PLAIN"),
]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key: CA, broker and client at once."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def secured(protocol: str, mechanism: str, tls: tuple[Path, Path]) -> Settings:
    fields: dict[str, Any] = {"security_protocol": protocol, "sasl_mechanism": mechanism}
    if protocol.startswith("SASL"):
        fields |= {"sasl_username": USER, "sasl_password": SECRET}
    if protocol.endswith("SSL"):
        fields |= {"ssl_cafile": tls[0], "ssl_certfile": tls[0], "ssl_keyfile": tls[1]}
    return Settings(**fields)


@pytest.mark.parametrize("protocol, mechanism", CASES)
def test_faust_credentials_are_the_kind_faust_expects(protocol, mechanism, tls):
    credentials = security.faust_credentials(secured(protocol, mechanism, tls))
    if protocol == "PLAINTEXT":
        assert credentials is None
        return
    assert credentials.protocol is AuthProtocol(protocol)  # SASL_SSL: a SASL one with a context
    if protocol == "SSL":
        assert isinstance(credentials, SSLCredentials)
        context = credentials.context
    else:
        assert isinstance(credentials, SASLCredentials)
        assert credentials.mechanism is SASLMechanism(mechanism)
        assert (credentials.username, credentials.password) == (USER, SECRET)
        context = credentials.ssl_context
    if protocol.endswith("SSL"):
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    else:
        assert context is None


@pytest.mark.parametrize("protocol, mechanism", CASES)
def test_the_worker_app_gives_its_consumer_and_recovery_the_credentials(protocol, mechanism, tls):
    from streams.worker.app import new_faust_app

    settings = secured(protocol, mechanism, tls)

    async def worker_client() -> Any:
        app = new_faust_app(settings, store="memory://")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)  # not started
        try:
            return consumer._client, compat.broker_auth(app.conf)
        finally:
            await consumer.stop()

    client, recovery = asyncio.run(worker_client())
    assert client._security_protocol == recovery["security_protocol"] == protocol
    assert (client._ssl_context is not None) == protocol.endswith("SSL")
    if protocol.startswith("SASL"):
        assert (client._sasl_mechanism, client._sasl_plain_username) == (mechanism, USER)
        assert client._sasl_plain_password == recovery["sasl_plain_password"] == SECRET


@pytest.mark.parametrize("protocol, mechanism", CASES)
def test_aiokafka_kwargs_are_what_aiokafka_takes_and_what_faust_would_pass(
    protocol, mechanism, tls
):
    settings = secured(protocol, mechanism, tls)
    kwargs = security.aiokafka_kwargs(settings)
    for client in (AIOKafkaConsumer, AIOKafkaProducer):
        assert set(kwargs) <= set(inspect.signature(client).parameters)

    faust_way = credentials_to_aiokafka_auth(security.faust_credentials(settings))
    shape = {k: isinstance(v, ssl.SSLContext) or v for k, v in faust_way.items() if v is not None}
    assert {k: isinstance(v, ssl.SSLContext) or v for k, v in kwargs.items()} == shape

    async def built() -> list[Any]:  # aiokafka refuses a bad SASL/SSL combination right here
        clients = [AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **kwargs),
                   AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **kwargs)]  # fmt: skip
        for client in clients:
            await client.stop()
        return [clients[0]._client, clients[1].client]

    for client in asyncio.run(built()):
        assert client._security_protocol == protocol


@pytest.mark.parametrize("protocol, mechanism", CASES)
def test_kafka_python_kwargs_are_what_kafka_python_takes(protocol, mechanism, tls):
    kwargs = security.kafka_python_kwargs(secured(protocol, mechanism, tls))
    assert set(kwargs) <= set(KafkaAdminClient.DEFAULT_CONFIG)  # its constructor connects
    # api_version given: constructed without a broker; an unknown config would raise here
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 8), **kwargs)
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:1", api_version=(2, 8), **kwargs)
    try:
        for client in (consumer, producer):
            assert {k: client.config[k] for k in kwargs} == kwargs
    finally:
        consumer.close()
        producer.close(timeout=1)
    assert kwargs["security_protocol"] == protocol
    if protocol.startswith("SASL"):
        sasl = get_sasl_mechanism(mechanism)(host="localhost", **kwargs)
        first = sasl.auth_bytes()
        if mechanism == "PLAIN":
            assert first == f"{USER}\0{USER}\0{SECRET}".encode()
        else:
            assert f"n={USER},".encode() in first
    if protocol.endswith("SSL"):
        config = {**KafkaSSLTransport.DEFAULT_CONFIG, **kwargs}
        context = KafkaSSLTransport._build_ssl_context(config)  # loads our files
        assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_plaintext_passes_only_plaintext_and_ssl_without_files_checks_the_system_cas():
    assert security.faust_credentials(Settings()) is None
    assert security.kafka_python_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert security.aiokafka_kwargs(Settings()) == {"security_protocol": "PLAINTEXT"}
    tls_only = Settings(security_protocol="SSL")
    assert security.kafka_python_kwargs(tls_only) == {"security_protocol": "SSL"}
    assert security.aiokafka_kwargs(tls_only)["ssl_context"].verify_mode is ssl.CERT_REQUIRED


def test_the_context_completes_a_mutual_tls_handshake(tls):
    """A TLS server that trusts only our certificate and asks for a client one: the context built
    from the settings verifies the server (CA and hostname) and presents the client certificate."""
    cert, key = tls
    context = security.ssl_context(secured("SSL", "PLAIN", tls))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(cert))
    server.load_cert_chain(cert, key)
    server.verify_mode = ssl.CERT_REQUIRED
    peer: dict[str, Any] = {}
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls_conn:
                peer.update(tls_conn.getpeercert())
                tls_conn.recv(1)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="localhost") as client:
                client.sendall(b"x")
        thread.join(10)
    assert dict(x[0] for x in peer["subject"])["commonName"] == "localhost"


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_password": SECRET}, "sasl_username"),
        ({"security_protocol": "SASL_SSL", "sasl_username": USER}, "sasl_password"),
        ({"security_protocol": "SASL_SSL", "sasl_username": " ", "sasl_password": SECRET},
         "sasl_username"),
        ({"security_protocol": "SASL_SSL", "sasl_username": USER, "sasl_password": ""},
         "sasl_password"),
        ({"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"}, "ssl_cafile"),
        ({"security_protocol": "SASL_SSL", "sasl_username": USER, "sasl_password": SECRET,
          "ssl_certfile": "/nonexistent/client.pem"}, "ssl_certfile"),
        ({"security_protocol": "PLAINTEXT", "sasl_username": USER, "sasl_password": SECRET},
         "SASL_PLAINTEXT or SASL_SSL"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_username": USER, "sasl_password": SECRET,
          "ssl_cafile": "ca.pem"}, "SSL or SASL_SSL"),
    ],
)  # fmt: skip
def test_settings_that_cannot_work_fail_with_a_clear_reason(fields, named):
    settings = Settings(**fields)
    for build in (security.faust_credentials, security.kafka_python_kwargs,
                  security.aiokafka_kwargs):  # fmt: skip
        with pytest.raises(KafkaSecurityError, match=named) as raised:
            build(settings)
        assert SECRET not in str(raised.value)
    assert isinstance(raised.value, ValueError)  # the CLI's user_errors: one line, exit 2


def test_a_key_without_its_certificate_and_a_bad_pem_are_refused(tls, tmp_path):
    cert, key = tls
    with pytest.raises(KafkaSecurityError, match="ssl_keyfile needs ssl_certfile"):
        security.ssl_context(Settings(security_protocol="SSL", ssl_keyfile=key))
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    for fields in ({"ssl_cafile": junk}, {"ssl_certfile": junk}):
        with pytest.raises(KafkaSecurityError, match=str(junk)):
            security.kafka_python_kwargs(Settings(security_protocol="SSL", **fields))


def test_a_command_refuses_sasl_without_a_username_before_connecting(monkeypatch):
    monkeypatch.setenv("STREAMREC_BOOTSTRAP", "127.0.0.1:1")  # a connection would time out
    monkeypatch.setenv("STREAMREC_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMREC_SASL_PASSWORD", SECRET)
    result = CliRunner().invoke(cli, ["topics"])
    assert result.exit_code == 2, result.output
    assert "STREAMREC_SASL_USERNAME" in result.output and SECRET not in result.output


def test_the_password_shows_in_no_repr_help_or_log(monkeypatch, caplog, tls):
    settings = secured("SASL_SSL", "SCRAM-SHA-512", tls)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert SECRET not in repr(security.faust_credentials(settings))
    monkeypatch.setenv("STREAMREC_SASL_PASSWORD", SECRET)
    for command in ([], ["worker"], ["topics"], ["produce"], ["tail"], ["up"]):
        shown = CliRunner().invoke(cli, [*command, "--help"])
        assert shown.exit_code == 0 and SECRET not in shown.output
    caplog.set_level(logging.DEBUG)
    from streams.worker.app import new_faust_app

    async def clients() -> None:
        app = new_faust_app(settings, store="memory://")
        consumer = app.consumer._thread._create_worker_consumer(app.transport)
        await consumer.stop()
        logging.getLogger("test").info("conf %r %r", app.conf.broker_credentials, settings)

    asyncio.run(clients())
    KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(2, 8),
                  **security.kafka_python_kwargs(settings)).close()  # fmt: skip
    assert "svc-streamrec" in caplog.text and SECRET not in caplog.text


def test_recovery_hands_its_auth_to_the_throwaway_consumer():
    tp = TP("events", 0)
    # aiokafka refuses SSL without a context in the constructor: the kwargs reached it
    with pytest.raises(ValueError, match="ssl_context"):
        asyncio.run(compat.fetch_highwaters(["127.0.0.1:1"], {tp: 2}, {"security_protocol": "SSL"}))


def test_a_child_worker_gets_the_real_password_and_the_same_security(monkeypatch, tls):
    """str() of a SecretStr is its mask: a child given that would log in with asterisks."""
    parent = secured("SASL_SSL", "SCRAM-SHA-256", tls)
    for key, value in child_env(parent, {}).items():
        monkeypatch.setenv(key, value)
    child = SettingsFromEnv()
    assert child.sasl_password.get_secret_value() == SECRET
    assert security.kafka_python_kwargs(child) == security.kafka_python_kwargs(parent)


def test_the_compose_file_and_readme_document_every_security_setting():
    root = Path(__file__).resolve().parents[2]
    names = {f"STREAMREC_{name.upper()}" for name in Settings.model_fields
             if name.startswith(("security_", "sasl_", "ssl_"))}  # fmt: skip
    compose = (root / "deploy" / "compose.yaml").read_text()
    commented = {line.split("#", 1)[1].split(":")[0].strip() for line in compose.splitlines()
                 if line.strip().startswith("# STREAMREC_")}  # fmt: skip
    assert commented == names
    section = (root / "README.md").read_text().split("## Secured Kafka", 1)[1].split("\n## ")[0]
    assert all(f"`{name}`" in section for name in names)
