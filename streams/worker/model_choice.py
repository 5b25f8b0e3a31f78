"""Which model version a worker serves: the newest announced one that loads and checks, only from
under the model root and only if its manifest is the one announced (the model follower,
streams/worker/followers.py, and a starting worker both ask)."""

from __future__ import annotations

import hashlib
import hmac
import logging
from pathlib import Path

from models.artifact import MANIFEST_FILE
from models.scoring import Recommender
from streams.announcements import Announcement, announcements
from streams.settings import Settings
from streams.worker.serving import ModelRefused, load_checked

log = logging.getLogger(__name__)


def starting_model(settings: Settings, configured: Recommender) -> Recommender:
    """What a starting worker serves: the newest announced version that loads and checks, as
    its peers serve it (they refused the newer ones too), else the configured artifact; so a
    restart neither serves an older model for a moment, rebasing its users twice, nor another
    version than its peers."""
    return first_that_loads(announcements(settings), settings, configured)


def first_that_loads(announced: list[Announcement], settings: Settings,
                     configured: Recommender) -> Recommender:  # fmt: skip
    """Of ``announced`` (log order), the newest that :func:`load_announced` serves, else
    ``configured``."""
    for said in reversed(announced):
        if said.version == configured.version:
            return configured
        try:
            return load_announced(said, settings)
        except ModelRefused as exc:
            log.error("announced model %s refused, trying the one announced before it: %s",
                      said.version, exc)  # fmt: skip
    return configured


def load_announced(announced: Announcement, settings: Settings) -> Recommender:
    """The announced artifact for serving, or :class:`ModelRefused`: only from under the model
    root, only if its manifest is the one announced (the manifest hashes every file, checked
    on load), then as :func:`load_checked` checks it."""
    path, root = Path(announced.path), settings.models_root
    if not path.resolve().is_relative_to(root):
        raise ModelRefused(f"{path} is outside the model root {root} (STREAMREC_MODEL_ROOT)")
    try:
        digest = hashlib.sha256((path / MANIFEST_FILE).read_bytes()).hexdigest()
    except OSError as exc:
        raise ModelRefused(f"{path}: {exc}") from None
    if not hmac.compare_digest(digest, announced.sha256):
        raise ModelRefused(f"{path}: its manifest's sha256 is not the announced one")
    return load_checked(path, announced.version, settings.blend, settings.interest)
