"""An artifact is verified against its manifest before anything of it is served.

Each tampering below is one a copy, a bad disk or a hand edit could make; each must be refused
with the file named, before Torch or faiss parse a byte of it (a corrupt faiss index can crash
the process rather than raise).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from core.generator import GeneratorConfig, generate
from models.artifact import (
    MANIFEST_FILE,
    ArtifactError,
    ArtifactTampered,
    load_model,
    load_recommender,
    save_artifact,
)
from models.mf import MatrixFactorization
from models.train import TrainConfig, train
from streams.tools.broker import free_port
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MF artifact with every optional file: ranker.pt and (catalog >= 10) ann.faiss."""
    out = tmp_path_factory.mktemp("integrity") / "mf"
    events = generate(GeneratorConfig(n_users=40, n_items=60, events_per_user=12, seed=1))
    config = TrainConfig(model="mf", dim=16, epochs=1, ann_min_items=10)
    train(events, Settings().interest, Settings().blend, config, out, show_progress=False)
    return out


@pytest.fixture
def artifact(trained: Path, tmp_path: Path) -> Path:
    """A copy of the trained artifact this test may tamper with."""
    return Path(shutil.copytree(trained, tmp_path / "mf"))


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def edit_json(path: Path, change: Callable[[dict], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document, indent=2))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_trained_artifact_loads_and_its_manifest_hashes_every_served_file(artifact):
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    config = json.loads((artifact / "config.json").read_text())
    served = {"weights.pt", "items.json", "config.json", "ranker.pt", "ann.faiss", "neighbours.npz"}
    assert set(manifest["files"]) == served
    for name in served - {"config.json"}:  # config.json holds the version: hashed without it
        assert manifest["files"][name] == sha256(artifact / name)
    recommender = load_recommender(artifact)
    assert recommender.version == config["version"] == manifest["version"]
    assert recommender.ranker is not None and recommender.search is not None
    assert recommender.neighbours is not None


def test_whitespace_and_key_order_of_the_config_are_not_tampering(artifact):
    config = json.loads((artifact / "config.json").read_text())
    (artifact / "config.json").write_text(json.dumps(dict(reversed(config.items()))))
    assert load_recommender(artifact).version == config["version"]


@pytest.mark.parametrize(
    ("name", "tamper"),
    [
        ("weights.pt", lambda a: flip_byte(a / "weights.pt")),
        ("config.json", lambda a: edit_json(a / "config.json", lambda c: c["init"].update(dim=8))),
        ("config.json", lambda a: edit_json(a / "config.json", lambda c: c.update(version="0"))),
        ("items.json", lambda a: (a / "items.json").write_text(
            json.dumps(list(reversed(json.loads((a / "items.json").read_text()))))
        )),
        ("ann.faiss", lambda a: flip_byte(a / "ann.faiss")),
        ("ranker.pt", lambda a: flip_byte(a / "ranker.pt")),
        ("ranker.pt", lambda a: (a / "ranker.pt").unlink()),
        ("neighbours.npz", lambda a: flip_byte(a / "neighbours.npz")),
    ],
    ids=["weights-byte", "config-edit", "config-version", "catalog-replaced", "ann-byte",
         "ranker-byte", "ranker-deleted", "neighbours-byte"],
)
@pytest.mark.parametrize("load", [load_recommender, load_model], ids=["recommender", "model"])
def test_a_tampered_file_is_refused_by_name(artifact, name, tamper, load):
    tamper(artifact)
    with pytest.raises(ArtifactTampered) as caught:
        load(artifact)
    assert caught.value.file == name and caught.value.path == artifact
    assert name in str(caught.value) and caught.value.expected != caught.value.got


def test_a_file_and_its_manifest_entry_rewritten_together_breaks_the_version(artifact):
    flip_byte(artifact / "weights.pt")
    forged = sha256(artifact / "weights.pt")
    edit_json(artifact / MANIFEST_FILE, lambda m: m["files"].update({"weights.pt": forged}))
    with pytest.raises(ArtifactTampered, match="version") as caught:
        load_recommender(artifact)
    assert caught.value.file == MANIFEST_FILE


def test_a_manifest_with_its_version_recomputed_still_disagrees_with_the_config(artifact):
    from models.artifact import manifest_version

    flip_byte(artifact / "weights.pt")

    def forge(manifest: dict) -> None:
        manifest["files"]["weights.pt"] = sha256(artifact / "weights.pt")
        manifest["version"] = manifest_version(manifest["files"])

    edit_json(artifact / MANIFEST_FILE, forge)
    with pytest.raises(ArtifactTampered) as caught:
        load_recommender(artifact)
    assert caught.value.file == "config.json"


def test_a_served_file_the_manifest_does_not_list_is_refused(tmp_path):
    """load_recommender serves ann.faiss whenever it exists, so one dropped in is tampering."""
    model = MatrixFactorization(n_items=20, dim=4, max_len=5)
    version = save_artifact(tmp_path, model, [f"i{n}" for n in range(20)], {}, {})
    assert load_recommender(tmp_path).version == version
    (tmp_path / "ann.faiss").write_bytes(b"not an index")
    with pytest.raises(ArtifactTampered) as caught:
        load_recommender(tmp_path)
    assert caught.value.file == "ann.faiss" and caught.value.expected is None


def test_an_artifact_from_before_manifests_is_refused_with_retrain(artifact):
    (artifact / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="retrain"):
        load_recommender(artifact)


@pytest.mark.parametrize(
    ("command", "started"),
    [
        (["worker", "--state-dir", "{tmp}/state"], "state"),
        (["up", "--workers", "1", "--workdir", "{tmp}/cluster"], "cluster/worker-0"),
    ],
    ids=["worker", "up"],
)
def test_the_cli_exits_with_one_line_before_connecting(artifact, tmp_path, command, started):
    """Nothing listens at the bootstrap address, so a command that connected first would fail
    differently; a worker makes its state dir, and up its workers' dirs, only after the check."""
    flip_byte(artifact / "weights.pt")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    args = [arg.format(tmp=tmp_path) for arg in command]
    result = subprocess.run(
        [sys.executable, "-m", "streams", *args, "--bootstrap", f"127.0.0.1:{free_port()}",
         "--model-path", str(artifact)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "weights.pt" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / started).exists()
