"""Model artifacts: a directory of weights, item map, config and metrics, named by content hash.

``weights.pt`` is a plain state_dict, loaded with ``weights_only=True`` so an artifact cannot run
code. The version is the first 12 hex digits of sha256(weights.pt + items.json).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.mf import MatrixFactorization
from models.scoring import InterestScorer, Recommender

MODEL_KINDS: dict[str, type[nn.Module]] = {"mf": MatrixFactorization}


class ArtifactError(ValueError):
    """An artifact directory that is missing, incomplete or of an unknown kind."""


def save_artifact(
    path: Path,
    model: nn.Module,
    item_ids: list[str],
    config: dict[str, Any],
    metrics: dict[str, Any],
) -> str:
    """Write the artifact and return its version id."""
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / "weights.pt")
    (path / "items.json").write_text(json.dumps(item_ids))
    digest = hashlib.sha256((path / "weights.pt").read_bytes())
    digest.update((path / "items.json").read_bytes())
    version = digest.hexdigest()[:12]
    full_config = {"kind": model.kind, "version": version, **config}
    (path / "config.json").write_text(json.dumps(full_config, indent=2))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return version


def load_recommender(path: Path) -> Recommender:
    """Load an artifact for serving."""
    missing = [
        name for name in ("weights.pt", "items.json", "config.json") if not (path / name).is_file()
    ]
    if missing:
        raise ArtifactError(f"{path} is not a model artifact (missing {', '.join(missing)})")
    config = json.loads((path / "config.json").read_text())
    kind = config.get("kind")
    if kind not in MODEL_KINDS:
        raise ArtifactError(f"{path}: unknown model kind {kind!r}; known: {sorted(MODEL_KINDS)}")
    item_ids = json.loads((path / "items.json").read_text())
    state = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
    model = MODEL_KINDS[kind](**config["init"])
    model.load_state_dict(state)
    scorer = InterestScorer(model.item_embeddings(), model.item_biases())
    return Recommender(item_ids, scorer, version=config["version"])
