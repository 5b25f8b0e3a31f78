"""``streamrec models promote``: announce a model version for every worker to serve."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from streams.cli.options import Bootstrap, console, load_settings, user_errors


def models_promote(
    version: Annotated[str, typer.Argument(help="Model version to serve (see `models list`).")],
    root: Annotated[Path, typer.Option(help="Directory searched for the artifact.")] = Path(
        "artifacts"
    ),
    bootstrap: Bootstrap = None,
) -> None:
    """Announce VERSION on the model-updates topic; every worker loads and checks it (checksums,
    version, a canary scoring) off its event loop and serves it from its next micro-batch, or
    refuses it and keeps serving what it has. Promoting an older version is a rollback. The
    artifact must be where the workers read it (a shared directory or volume)."""
    from models.artifact import ArtifactError, list_artifacts
    from streams.kafka_edge.topics import ensure_topics
    from streams.announcements import announce, announcement_of

    settings = load_settings(bootstrap=bootstrap)
    with user_errors():
        found = [path for path, config, _ in list_artifacts(root) if config["version"] == version]
        if not found:
            raise ArtifactError(f"no artifact of version {version} under {root}")
        announcement = announcement_of(found[0])
        ensure_topics(settings)
        announce(settings, announcement)
    console.print(f"announced {announcement.version} ({announcement.kind}) from "
                  f"{announcement.path} on {settings.model_updates_topic}")  # fmt: skip
