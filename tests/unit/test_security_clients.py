"""Each client library takes what streams.kafka_edge.security builds from the settings.

No broker here speaks SASL or TLS (the embedded Tansu broker is PLAINTEXT), so each library is
checked where it takes the settings: its clients constructed but not started (aiokafka checks SASL
and SSL in its constructor, kafka-python refuses unknown configs), kafka-python's own SASL
mechanisms and SSL context builder fed our kwargs, the consumer Faust builds for the worker, and a
local mutual-TLS handshake with the context we build.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import ssl
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

from streams.kafka_edge import compat, security
from streams.settings import Settings
from tests.unit.security_cases import (
    CASES, SECRET, USER, aiokafka_kwargs, make_certificate, secured,
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory)


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
def test_faust_hands_aiokafka_what_the_settings_say_and_aiokafka_takes_it(
    protocol, mechanism, tls
):
    settings = secured(protocol, mechanism, tls)
    faust_way = credentials_to_aiokafka_auth(security.faust_credentials(settings))
    for client in (AIOKafkaConsumer, AIOKafkaProducer):
        assert set(faust_way) <= set(inspect.signature(client).parameters)
    shape = {k: isinstance(v, ssl.SSLContext) or v for k, v in faust_way.items() if v is not None}
    expected = aiokafka_kwargs(settings)
    assert {k: isinstance(v, ssl.SSLContext) or v for k, v in expected.items()} == shape

    async def built() -> list[Any]:  # aiokafka refuses a bad SASL/SSL combination right here
        clients = [AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", **faust_way),
                   AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", **faust_way)]  # fmt: skip
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
    assert security.ssl_context(Settings()) is None
    tls_only = Settings(security_protocol="SSL")
    assert security.kafka_python_kwargs(tls_only) == {"security_protocol": "SSL"}
    assert security.ssl_context(tls_only).verify_mode is ssl.CERT_REQUIRED


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



def test_recovery_hands_its_auth_to_the_throwaway_consumer():
    tp = TP("events", 0)
    # aiokafka refuses SSL without a context in the constructor: the kwargs reached it
    with pytest.raises(ValueError, match="ssl_context"):
        asyncio.run(compat.fetch_highwaters(["127.0.0.1:1"], {tp: 2}, {"security_protocol": "SSL"}))

