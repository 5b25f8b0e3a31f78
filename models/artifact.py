"""Model artifacts: a directory of weights, item map, config and metrics, named by content hash.

``weights.pt`` is a plain state_dict, loaded with ``weights_only=True`` so an artifact cannot run
code. The version is the first 12 hex digits of sha256(weights.pt + items.json [+ ranker.pt]).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from models.base import SequenceModel
from models.ranker import RANKER_FILE, Ranker
from models.registry import model_kind
from models.retrieval import ANN_FILE, AnnIndex
from models.blend import Blend
from models.scoring import Recommender

REQUIRED_FILES = ("weights.pt", "items.json", "config.json")


class ArtifactError(ValueError):
    """An artifact directory that is missing, incomplete or of an unknown kind."""


def save_artifact(
    path: Path,
    model: SequenceModel,
    item_ids: list[str],
    config: dict[str, Any],
    metrics: dict[str, Any],
    ranker: Ranker | None = None,
    ann_min_items: int = 100_000,
) -> str:
    """Write the artifact and return its version id. Catalogs of ``ann_min_items`` or more
    get an HNSW index (derived from the weights, so not part of the version)."""
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / "weights.pt")
    (path / "items.json").write_text(json.dumps(item_ids))
    hashed = ["weights.pt", "items.json"]
    (path / RANKER_FILE).unlink(missing_ok=True)
    (path / ANN_FILE).unlink(missing_ok=True)
    if ranker is not None:
        torch.save(ranker.state_dict(), path / RANKER_FILE)
        hashed.append(RANKER_FILE)
        config = {**config, "ranker": {"init": ranker.init_args()}}
    if len(item_ids) >= ann_min_items:
        with torch.inference_mode():
            AnnIndex.build(model.item_embeddings(), model.item_biases()).save(path / ANN_FILE)
    digest = hashlib.sha256()
    for name in hashed:
        digest.update((path / name).read_bytes())
    version = digest.hexdigest()[:12]
    full_config = {"kind": model.kind, "version": version, "init": model.init_args(), **config}
    (path / "config.json").write_text(json.dumps(full_config, indent=2))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return version


def read_config(path: Path) -> dict[str, Any]:
    """The artifact's config.json, after checking the directory is a complete artifact."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ArtifactError(f"{path} is not a model artifact (missing {', '.join(missing)})")
    config = json.loads((path / "config.json").read_text())
    try:
        model_kind(config.get("kind"))
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    return config


def read_metrics(path: Path) -> dict[str, Any]:
    metrics = path / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else {}


def list_artifacts(root: Path) -> list[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """(path, config, metrics) of every artifact directory at or under ``root``."""
    if not root.is_dir():
        raise ArtifactError(f"no such directory: {root}")
    found = []
    for config_file in sorted(root.rglob("config.json")):
        try:
            found.append((config_file.parent, read_config(config_file.parent)))
        except (ArtifactError, ValueError):
            continue  # a config.json of something else
    return [(path, config, read_metrics(path)) for path, config in found]


def load_model(path: Path) -> tuple[SequenceModel, list[str], dict[str, Any]]:
    """(model in eval mode, item ids, config)."""
    config = read_config(path)
    item_ids = json.loads((path / "items.json").read_text())
    state = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
    model = model_kind(config["kind"])(**config["init"])
    model.load_state_dict(state)
    return model.eval(), item_ids, config


def load_recommender(path: Path, blend: Blend = Blend()) -> Recommender:
    """Load an artifact for serving, with its ANN index and ranker when it has them."""
    model, item_ids, config = load_model(path)
    index = AnnIndex.load(path / ANN_FILE) if (path / ANN_FILE).is_file() else None
    ranker = None
    if (path / RANKER_FILE).is_file():
        ranker = Ranker(**config["ranker"]["init"])
        ranker.load_state_dict(torch.load(path / RANKER_FILE, weights_only=True))
    return Recommender(model, item_ids, config["version"], blend, index, ranker)
