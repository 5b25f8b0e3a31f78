"""Model artifacts: a directory of weights, item map, config and metrics, named by content hash.

``weights.pt`` is a plain state_dict, loaded with ``weights_only=True`` so an artifact cannot run
code. ``manifest.json`` holds the SHA-256 of every file that is served (weights, catalog, config,
ranker, ANN index) and the version, the first 12 hex digits of a SHA-256 over those hashes; the
version is also in ``config.json``, so config.json is hashed as its canonical JSON without that
field (a file cannot hold its own hash). Loading checks all of it first and refuses with
:class:`ArtifactTampered` naming the file, before Torch or faiss parse a byte: a corrupt faiss
index can crash the process instead of raising. ``metrics.json`` is a report on the artifact
(training seconds vary run to run), not served, so it is left out and a seeded retrain gets the
same version.

``config.json`` also holds the forgetting function recommended with the model (``forgetting``,
a :meth:`core.forgetting.Forgetting.to_dict`): the exponential decay of the interest settings it
was trained with, unless a fit chose another (the model itself is still trained on the settings'
exponential). :func:`forgetting_of` reads it; an artifact
written before the entry existed reads as the exponential of the settings it is served with.
A worker applies exponential decay only, lazily in its one-vector state, with its own
``STREAMREC_HALF_LIFE_*`` settings: it does not serve a non-exponential entry (it keeps its
exponential decay and logs that it does), since that needs each user's recent event times,
which the user table does not keep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import torch

from core.forgetting import Forgetting
from core.interest import InterestConfig
from models.base import SequenceModel
from models.content import CONTENT_FILE, ContentVectors
from models.content_neighbours import served_ids
from models.artifact_hashes import config_sha256, file_sha256, manifest_version
from models.neighbours import FUSION_WEIGHTS, NEIGHBOURS_FILE, Neighbours
from models.ranker import RANKER_FILE, Ranker
from models.registry import model_kind
from models.retrieval import ANN_FILE, AnnIndex
from models.blend import Blend
from models.scoring import Recommender

REQUIRED_FILES = ("weights.pt", "items.json", "config.json")
FORGETTING_KEY = "forgetting"
# Loaded whenever present, so whether they are present is part of what the manifest vouches for.
OPTIONAL_FILES = (RANKER_FILE, ANN_FILE, CONTENT_FILE, NEIGHBOURS_FILE)
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1


class ArtifactError(ValueError):
    """An artifact directory that is missing, incomplete or of an unknown kind."""


class ArtifactTampered(ArtifactError):
    """A file of an artifact that differs from its manifest (a byte flipped, a file edited,
    replaced, added or removed since it was written), or a manifest that no longer gives the
    version the artifact claims. Raised before anything of the artifact is loaded.

    ``expected`` and ``got`` are SHA-256 hex digests, or versions when ``detail`` says so; None
    is a file the manifest does not list (``expected``) or that is missing (``got``).
    """

    def __init__(
        self,
        path: Path,
        file: str,
        expected: str | None,
        got: str | None,
        detail: str | None = None,
    ) -> None:
        self.path, self.file, self.expected, self.got = path, file, expected, got
        if detail is None:
            if expected is None:
                detail = f"{file} is not in its manifest"
            elif got is None:
                detail = f"{file} is in its manifest but missing"
            else:
                detail = f"{file} has sha256 {got[:12]}..., its manifest {expected[:12]}..."
        super().__init__(
            f"{path}: {detail}; refusing to serve a tampered or corrupt artifact: restore it "
            "or retrain"
        )


def save_artifact(
    path: Path,
    model: SequenceModel,
    item_ids: list[str],
    config: dict[str, Any],
    metrics: dict[str, Any],
    ranker: Ranker | None = None,
    ann_min_items: int = 100_000,
    content: ContentVectors | None = None,
    neighbours: Neighbours | None = None,
) -> str:
    """Write the artifact and return its version id. Catalogs of ``ann_min_items`` or more
    get an HNSW index; ``content``, the item catalog's content vectors in this model's space;
    ``neighbours``, co-visits and rules over ``item_ids`` (and content neighbours over those and
    ``content``'s other items: models/neighbours.py). The manifest is removed first and written
    last: an artifact rewritten in place is refused until it is whole again, never served as a
    mix of two versions."""
    path.mkdir(parents=True, exist_ok=True)
    (path / MANIFEST_FILE).unlink(missing_ok=True)
    torch.save(model.state_dict(), path / "weights.pt")
    (path / "items.json").write_text(json.dumps(item_ids))
    served = ["weights.pt", "items.json"]
    for name in OPTIONAL_FILES:
        (path / name).unlink(missing_ok=True)
    if ranker is not None:
        torch.save(ranker.state_dict(), path / RANKER_FILE)
        served.append(RANKER_FILE)
        config = {**config, "ranker": {"init": ranker.init_args()}}
    if content is not None:
        content.save(path / CONTENT_FILE)
        served.append(CONTENT_FILE)
        config = {**config, "content": {"encoder": content.encoder, "items": len(content.item_ids),
                                        "dim": int(content.content.shape[1])}}  # fmt: skip
    if neighbours is not None:
        whole = len(served_ids(item_ids, content))
        if neighbours.n_items not in (len(item_ids), whole):
            raise ValueError(f"neighbours over {neighbours.n_items} items, not {len(item_ids)}"
                             + (f" or {whole}" if whole != len(item_ids) else ""))
        neighbours.save(path / NEIGHBOURS_FILE)
        served.append(NEIGHBOURS_FILE)
    if len(item_ids) >= ann_min_items:
        with torch.inference_mode():
            AnnIndex.build(model.item_embeddings(), model.item_biases()).save(path / ANN_FILE)
        served.append(ANN_FILE)
    files = {name: file_sha256(path / name) for name in served}
    full_config = {"kind": model.kind, "version": "", "init": model.init_args(), **config}
    files["config.json"] = config_sha256(full_config)
    version = full_config["version"] = manifest_version(files)
    (path / "config.json").write_text(json.dumps(full_config, indent=2))
    (path / "metrics.json").write_text(json.dumps(metrics, indent=2))
    manifest = {"format": MANIFEST_FORMAT, "version": version, "files": dict(sorted(files.items()))}
    (path / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return version


def read_config(path: Path) -> dict[str, Any]:
    """The artifact's config.json, after checking the directory is a complete artifact. Not
    verified (``models list`` reads every artifact's): :func:`verify_artifact` is."""
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise ArtifactError(f"{path} is not a model artifact (missing {', '.join(missing)})")
    try:
        config = json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise ArtifactError(f"{path}: config.json is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ArtifactError(f"{path}: config.json is not a JSON object")
    try:
        model_kind(config.get("kind"))
    except ValueError as exc:
        raise ArtifactError(f"{path}: {exc}") from None
    return config


def verify_artifact(path: Path) -> dict[str, Any]:
    """The artifact's config, once every file it serves matches its manifest and the manifest
    gives the version the config claims. Raises :class:`ArtifactTampered` naming the first file
    that does not, :class:`ArtifactError` for an artifact without a manifest: one written before
    manifests existed is refused, not served unchecked, since its version vouches for nothing."""
    config = read_config(path)
    if not (path / MANIFEST_FILE).is_file():
        raise ArtifactError(
            f"{path} has no {MANIFEST_FILE} (written before artifacts were verified, or not "
            "completely written); retrain it with streamrec train"
        )
    files, claimed = _read_manifest(path)
    recomputed = manifest_version(files)
    if recomputed != claimed:
        detail = f"{MANIFEST_FILE} hashes to version {recomputed}, not the {claimed} it records"
        raise ArtifactTampered(path, MANIFEST_FILE, claimed, recomputed, detail)
    if config.get("version") != claimed:
        got = str(config.get("version"))
        detail = f"config.json claims version {got}, its manifest {claimed}"
        raise ArtifactTampered(path, "config.json", claimed, got, detail)
    for name in REQUIRED_FILES + OPTIONAL_FILES:
        if name not in files and (path / name).is_file():
            raise ArtifactTampered(path, name, None, file_sha256(path / name))
    for name, expected in files.items():
        if name == "config.json":
            got: str | None = config_sha256(config)
        else:
            got = file_sha256(path / name) if (path / name).is_file() else None
        if got != expected:
            raise ArtifactTampered(path, name, expected, got)
    return config


def _read_manifest(path: Path) -> tuple[dict[str, str], str]:
    """(file name -> sha256, version) from manifest.json, or ArtifactTampered if it is not one."""
    try:
        manifest = json.loads((path / MANIFEST_FILE).read_text())
        files, version = manifest["files"], manifest["version"]
        well_formed = (
            manifest.get("format") == MANIFEST_FORMAT
            and isinstance(version, str)
            and isinstance(files, dict)
            # names are plain file names in the artifact, never a path out of it
            and all(isinstance(h, str) and Path(n).name == n != "" for n, h in files.items())
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        well_formed = False
    if not well_formed:
        detail = f"{MANIFEST_FILE} is not a manifest of format {MANIFEST_FORMAT}"
        raise ArtifactTampered(path, MANIFEST_FILE, str(MANIFEST_FORMAT), None, detail)
    return files, version


def forgetting_entry(forgetting: Forgetting) -> dict[str, Any]:
    """The config entry :func:`save_artifact` is given to store a forgetting function."""
    return {FORGETTING_KEY: forgetting.to_dict()}


def forgetting_of(config: Mapping[str, Any], interest: InterestConfig) -> Forgetting:
    """The forgetting function an artifact's config names; without one (an artifact older
    than the entry), the exponential decay of ``interest``."""
    stored = config.get(FORGETTING_KEY)
    if stored is None:
        return Forgetting.exponential(interest.half_life_ms, interest.half_life_events)
    try:
        return Forgetting.from_dict(stored)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # not a dict, or a bad one
        raise ArtifactError(f"config.json: bad forgetting entry {stored!r}: {exc}") from None


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
    """(model in eval mode, item ids, config) of a verified artifact (see verify_artifact)."""
    config = verify_artifact(path)
    return _load_model(path, config)


def _load_model(
    path: Path, config: dict[str, Any]
) -> tuple[SequenceModel, list[str], dict[str, Any]]:
    item_ids = json.loads((path / "items.json").read_text())
    state = torch.load(path / "weights.pt", weights_only=True, map_location="cpu")
    model = model_kind(config["kind"])(**config["init"])
    model.load_state_dict(state)
    return model.eval(), item_ids, config


def load_recommender(path: Path, blend: Blend = Blend()) -> Recommender:
    """Load a verified artifact for serving (see verify_artifact), with its ANN index and
    ranker when it has them; with content vectors, every catalog item the model was not
    trained on joins the catalog with its projected vector, a candidate before its first
    event."""
    config = verify_artifact(path)
    model, item_ids, config = _load_model(path, config)
    index = AnnIndex.load(path / ANN_FILE) if (path / ANN_FILE).is_file() else None
    ranker = None
    if (path / RANKER_FILE).is_file():
        ranker = Ranker(**config["ranker"]["init"])
        ranker.load_state_dict(torch.load(path / RANKER_FILE, weights_only=True))
    recommender = Recommender(model, item_ids, config["version"], blend, index, ranker)
    if (path / CONTENT_FILE).is_file():
        content = ContentVectors.load(path / CONTENT_FILE)
        known = recommender.index
        new = {i: v for i, v in content.projected().items() if i not in known}
        recommender = recommender.with_item_vectors(new) if new else recommender
        recommender.content = content  # what projects a catalog item heard of later
    if (path / NEIGHBOURS_FILE).is_file():
        try:  # over the model's items, or those and its catalog's (models/neighbours.py)
            neighbours = Neighbours.load(path / NEIGHBOURS_FILE,
                                         (len(item_ids), len(recommender.item_ids)))
        except (ValueError, KeyError) as exc:
            raise ArtifactError(str(exc)) from None
        recommender.neighbours = neighbours
        fitted = config.get("neighbours", {})
        recommender.fusion = tuple(float(fitted.get(name, 0.0)) for name in FUSION_WEIGHTS)
    return recommender
