"""Hot swap through the broker (issue 17): two workers follow the model-updates topic while events
flow. An announced version serves on both within 5 s and every record after the cut-over
carries it; every event is applied exactly once across the swaps; a corrupt artifact is refused
while the old version keeps serving; `streamrec models promote` rolls back."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import orjson
import pytest

from core.generator import GeneratorConfig, generate
from models.artifact import read_config
from models.train import TrainConfig, train
from streams.tools.cluster import child_env, wait_for, wait_until_ready, worker_stats
from streams.announcements import announce, announcement_of
from streams.tools.producer import produce_events
from streams.settings import Settings
from tests.helpers import another_worker, assert_each_event_applied_once, consume, event_messages

pytestmark = pytest.mark.integration


def serving(ports: list[int], version: str) -> bool:
    return all((s := worker_stats(port)) and s["model_version"] == version for port in ports)


def test_an_announced_version_serves_on_both_workers_and_a_corrupt_one_is_refused(
    settings, workers, tmp_path
):
    root = tmp_path / "served" / "models"  # the workers serve from under tmp_path / "served"
    shutil.copytree(settings.model_path, root / "v1")
    catalog = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=30, seed=5))
    train(catalog, Settings().interest, Settings().blend, TrainConfig(model="mf", dim=16, epochs=2),
          root / "v2", show_progress=False)  # fmt: skip
    v1, v2 = (read_config(root / name)["version"] for name in ("v1", "v2"))
    first = settings.model_copy(update={"model_path": root / "v1", "model_root": root.parent})
    second = another_worker(first, tmp_path)
    ports = [first.web_port, second.web_port]
    for one in (first, second):
        wait_until_ready(one.web_port, timeout=90, process=workers(one))
    events = generate(GeneratorConfig(n_users=30, n_items=200, events_per_user=150, seed=8))
    messages, release = event_messages(events), threading.Event()

    def produce() -> None:
        """Most of the stream (the swaps below land while it flows), then the rest once the
        rollback is served: so records after it exist however fast the workers drain."""
        produce_events(first, messages[: len(messages) * 3 // 4], 200.0)
        if release.wait(180):
            produce_events(first, messages[len(messages) * 3 // 4 :], 200.0)

    producer = threading.Thread(target=produce, daemon=True)
    producer.start()

    def applied() -> int:
        return sum((worker_stats(port) or {}).get("applied", 0) for port in ports)  # None: busy

    wait_for(lambda: applied() >= len(events) // 5, 60, "a fifth of the events applied")
    announce(first, announcement_of(root / "v2"))
    wait_for(lambda: serving(ports, v2), 5, "v2 serving on both workers within 5 s")
    cut_over_ms = time.time() * 1000
    at_cut = applied()
    assert at_cut < len(events), "the swap must land mid-stream"
    wait_for(lambda: applied() >= at_cut + 400, 30, "400 events scored by v2")

    # a corrupt copy of v1: refused on both, v2 keeps serving
    shutil.copytree(root / "v1", root.parent / "corrupt")  # not where promote looks for v1
    weights = root.parent / "corrupt" / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    weights.write_bytes(bytes(data))
    corrupt = announcement_of(root / "v1").model_copy(
        update={"path": str(root.parent / "corrupt")})
    announce(first, corrupt)
    wait_for(lambda: all(worker_stats(p)["models_refused"] == 1 for p in ports), 10,
             "the corrupt artifact refused on both")
    assert serving(ports, v2)
    assert "weights.pt" in worker_stats(ports[0])["last_model_refusal"]
    # v1 as it is, but announced with another manifest hash, then from outside the model root
    # (issue 32: both were served)
    forged = announcement_of(root / "v1").model_copy(update={"sha256": "0" * 64})
    shutil.copytree(root / "v1", tmp_path / "outside")
    for n, said in enumerate([forged, announcement_of(tmp_path / "outside")], start=2):
        announce(first, said)
        wait_for(lambda: all(worker_stats(p)["models_refused"] == n for p in ports), 10,
                 f"refusal {n} on both")  # fmt: skip
        assert serving(ports, v2)
    assert "outside the model root" in worker_stats(ports[0])["last_model_refusal"]

    # a rollback by hand, through the CLI
    promote_ms = time.time() * 1000
    promoted = subprocess.run(
        [sys.executable, "-m", "streams", "models", "promote", v1, "--root", str(root)],
        env=child_env(first, os.environ), capture_output=True, text=True,
        timeout=60)  # fmt: skip
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    wait_for(lambda: serving(ports, v1), 5, "v1 serving again on both workers within 5 s")
    rolled_back_ms = time.time() * 1000
    release.set()
    producer.join(120)

    assert_each_event_applied_once(first.web_port, events)
    assert sum(worker_stats(p)["model_swaps"] for p in ports) == 4
    assert sum(worker_stats(p)["rebased"] for p in ports) > 0

    records = [orjson.loads(r.value) for r in consume(
        first.bootstrap, first.recs_topic, len(events), timeout=90,
        done=lambda rs: {orjson.loads(r.value)["trigger"]["event_id"] for r in rs}
        >= {e.event_id for e in events})]  # fmt: skip
    versions = {r["model_version"] for r in records}
    assert versions == {v1, v2}
    # a batch that took its model just before a swap may still emit for 0.5 s at most
    between = [r for r in records if cut_over_ms + 500 < r["emitted_at"] < promote_ms]
    after = [r for r in records if r["emitted_at"] > rolled_back_ms + 500]
    assert between and all(r["model_version"] == v2 for r in between)
    assert after and all(r["model_version"] == v1 for r in after)
