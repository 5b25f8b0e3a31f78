"""Who may talk to what: the broker's security, the query API's token and the cluster key of
the internal topics.

Apart from streams/settings.py because they are one idea (secrets and credentials, checked by
streams/kafka_edge/security.py before any connection): :class:`streams.settings.Settings` mixes
them in, so ``settings.sasl_password`` and the ``STREAMREC_*`` variables read as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr

from core.seal import Seal


class SecuritySettings(BaseModel):
    """The security fields of :class:`streams.settings.Settings`, which mixes this in."""

    api_token: SecretStr | None = Field(
        None, description="If set, the query API asks for 'Authorization: Bearer <token>'"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every client of the pipeline talks to the broker"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="The SASL mechanism (SASL_PLAINTEXT, SASL_SSL)"
    )
    sasl_username: str | None = Field(None, description="The SASL user")
    sasl_password: SecretStr | None = Field(
        None, description="The SASL user's password (never logged or printed)"
    )
    internal_key: SecretStr | None = Field(
        None, min_length=16, description="A key shared by the cluster's processes (16+ "
        "bytes): every record on the internal topics (by-item events, item and content "
        "vectors, model announcements) carries its MAC, and one without a valid MAC is "
        "refused (core/seal.py)",
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the broker (SSL)")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS)")
    ssl_keyfile: Path | None = Field(None, description="Client key (mutual TLS)")

    @property
    def seal(self) -> Seal | None:
        """What signs and checks internal records; None without an ``internal_key``."""
        key = self.internal_key
        return Seal(key.get_secret_value().encode()) if key else None
