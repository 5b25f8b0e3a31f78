"""The content hashes an artifact's manifest holds (models/artifact.py): each served file's
SHA-256, the config's over its canonical JSON, and the version made of them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping


def file_sha256(path: Path) -> str:
    """Streamed in chunks: the ANN index of a large catalog can be hundreds of MB."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def config_sha256(config: Mapping[str, Any]) -> str:
    """The config without its ``version``, as canonical JSON: key order and whitespace of
    config.json are not content."""
    body = {k: v for k, v in config.items() if k != "version"}
    return hashlib.sha256(_canonical(body)).hexdigest()


def manifest_version(files: Mapping[str, str]) -> str:
    """The version an artifact of these file hashes has."""
    return hashlib.sha256(_canonical(files)).hexdigest()[:12]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
