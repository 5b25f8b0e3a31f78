"""What the security tests share: every protocol and mechanism, a throwaway certificate, settings
that use them, and aiokafka's keywords built independently of Faust's translation.

No broker here speaks SASL or TLS (the embedded Tansu broker is PLAINTEXT), so the tests check
each client library where it takes the settings (tests/unit/test_security_clients.py) and the
refusals and secrecy around them (tests/unit/test_security.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streams.kafka_edge import security
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


def make_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and its key: CA, broker and client at once (each
    test module's ``tls`` fixture makes one)."""
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


def aiokafka_kwargs(settings: Settings) -> dict[str, Any]:
    """Keywords for ``AIOKafkaConsumer``/``AIOKafkaProducer`` straight from the settings: the
    expectation Faust's translation of :func:`security.faust_credentials` is held to (the
    worker's own aiokafka clients get theirs from Faust, streams/kafka_edge/compat.py)."""
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    context = security.ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol in security.SASL_PROTOCOLS:
        password = settings.sasl_password
        kwargs |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": password.get_secret_value() if password else "",
        }
    return kwargs
