"""Kafka security (TLS, SASL PLAIN and SCRAM) from the settings, in each client library's terms.

Three libraries make Kafka clients here and each spells security its own way: Faust takes a
credentials object, aiokafka an ``ssl.SSLContext`` and ``sasl_*`` keywords, kafka-python file
paths and the same ``sasl_*`` names. Faust turns its credentials into aiokafka's keywords for its
own clients, and streams/kafka_edge/compat.py does the same with Faust's function for the
recovery consumer, so this module builds for Faust and kafka-python. Translating in one place
means the worker, its changelog recovery, topic admin, ``produce`` and ``tail`` all connect the
same way, and settings that cannot work fail here, before any connection, with the setting
named, instead of as a broker timeout or an authentication error much later.

Faust is imported only inside :func:`faust_credentials`: topic admin and the kafka-python
commands must not pay for importing it (see streams/tools/broker.py). The password leaves its
``SecretStr`` only in the dicts and credentials handed straight to a client; no error names it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.settings import Settings

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
SSL_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
_SSL_FILES = ("ssl_cafile", "ssl_certfile", "ssl_keyfile")


class KafkaSecurityError(ValueError):
    """The security settings cannot work: a SASL protocol without credentials, a TLS file that is
    missing or unreadable, or settings the chosen protocol would silently ignore.

    A ``ValueError``, so the CLI reports it as one line and exit code 2 (streams/cli/options.py).
    """


def _env(field: str) -> str:
    return f"{field} (STREAMREC_{field.upper()})"


def check(settings: Settings) -> None:
    """Refuse security settings that cannot work, before any client is made.

    Credentials or TLS files the protocol would not use are refused too: an operator who set a
    password but left ``PLAINTEXT`` believes the connection authenticates, and it does not.
    """
    protocol = settings.security_protocol
    if protocol in SASL_PROTOCOLS:
        missing = []
        if not (settings.sasl_username or "").strip():
            missing.append(_env("sasl_username"))
        if settings.sasl_password is None or not settings.sasl_password.get_secret_value():
            missing.append(_env("sasl_password"))
        if missing:
            raise KafkaSecurityError(
                f"security_protocol {protocol} ({settings.sasl_mechanism}) needs "
                + " and ".join(missing)
            )
    elif settings.sasl_username is not None or settings.sasl_password is not None:
        raise KafkaSecurityError(
            f"sasl_username/sasl_password are set but security_protocol is {protocol}, which "
            "sends no credentials: set STREAMREC_SECURITY_PROTOCOL to SASL_PLAINTEXT or SASL_SSL"
        )
    files = {name: getattr(settings, name) for name in _SSL_FILES}
    given = [name for name, path in files.items() if path is not None]
    if given and protocol not in SSL_PROTOCOLS:
        raise KafkaSecurityError(
            f"{', '.join(given)} set but security_protocol is {protocol}, which does not use "
            "TLS: set STREAMREC_SECURITY_PROTOCOL to SSL or SASL_SSL"
        )
    for name in given:
        if not Path(files[name]).is_file():
            raise KafkaSecurityError(f"{_env(name)}: no such file {files[name]}")
    if files["ssl_keyfile"] is not None and files["ssl_certfile"] is None:
        raise KafkaSecurityError("ssl_keyfile needs ssl_certfile (the client certificate)")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for an SSL protocol (None otherwise): the broker verified against
    ``ssl_cafile`` (the system CAs when unset), hostname checked, and the client certificate
    (mutual TLS) when ``ssl_certfile`` is set."""
    check(settings)
    if settings.security_protocol not in SSL_PROTOCOLS:
        return None
    cafile = settings.ssl_cafile
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
    except (ssl.SSLError, OSError) as exc:
        raise KafkaSecurityError(f"{_env('ssl_cafile')} {cafile}: not a CA bundle: {exc}") from exc
    if settings.ssl_certfile is not None:
        keyfile = settings.ssl_keyfile
        try:
            context.load_cert_chain(settings.ssl_certfile, keyfile)
        except (ssl.SSLError, OSError) as exc:
            raise KafkaSecurityError(
                f"{_env('ssl_certfile')} {settings.ssl_certfile}"
                + (f" with ssl_keyfile {keyfile}" if keyfile else "")
                + f": not a certificate and its key: {exc}"
            ) from exc
    return context


def _sasl(settings: Settings) -> dict[str, Any]:
    """The ``sasl_*`` keywords of kafka-python (and aiokafka: both say ``plain`` for SCRAM)."""
    if settings.security_protocol not in SASL_PROTOCOLS:
        return {}
    password = settings.sasl_password  # check() has refused None and empty
    return {
        "sasl_mechanism": settings.sasl_mechanism,
        "sasl_plain_username": settings.sasl_username,
        "sasl_plain_password": password.get_secret_value() if password else "",
    }


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """``broker_credentials`` for ``faust.App``: None for PLAINTEXT.

    Faust has no SASL_SSL credentials class: ``SASLCredentials`` becomes SASL_SSL when given an
    ``ssl_context`` (faust/auth.py), and Faust turns it into aiokafka's keywords for its
    consumers and producer (``credentials_to_aiokafka_auth``).
    """
    import faust

    context = ssl_context(settings)  # checks the settings too
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    sasl = _sasl(settings)
    return faust.SASLCredentials(
        username=sasl["sasl_plain_username"],
        password=sasl["sasl_plain_password"],
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )


def kafka_python_kwargs(settings: Settings) -> dict[str, Any]:
    """Keywords for kafka-python's ``KafkaProducer``/``KafkaConsumer``/``KafkaAdminClient``.

    kafka-python takes the TLS files and builds its own context (hostname checked, system CAs
    without ``ssl_cafile``), but only at its first connection; the context is built here once
    and dropped, so a file that is not PEM fails now, with its setting named.
    """
    ssl_context(settings)
    kwargs: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if settings.security_protocol in SSL_PROTOCOLS:
        for name in _SSL_FILES:
            if getattr(settings, name) is not None:
                kwargs[name] = str(getattr(settings, name))
    return kwargs | _sasl(settings)
