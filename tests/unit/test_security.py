"""streams.kafka_edge.security: a misconfiguration fails before any connection, with the setting
named, and the password shows nowhere (what each client library takes: test_security_clients.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from typer.testing import CliRunner

from streams.cli import app as cli
from streams.cli.options import SettingsFromEnv
from streams.kafka_edge import security
from streams.kafka_edge.security import KafkaSecurityError
from streams.settings import Settings
from streams.tools.cluster import child_env
from tests.unit.security_cases import SECRET, USER, make_certificate, secured


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory)


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
                  security.ssl_context):  # fmt: skip
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
    page = (root / "docs/operations.md").read_text()
    section = page.split("## Secured Kafka", 1)[1].split("\n## ")[0]
    assert all(f"`{name}`" in section for name in names)
