"""Shared fixtures: one broker per session (embedded Tansu, or STREAMREC_TEST_BOOTSTRAP for a real
Kafka), one small trained model, unique topics per test, and workers stopped by PID at teardown."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

from streams.kafka_edge.topics import admin
from streams.tools.broker import free_port, start_embedded_broker, stop_process
from streams.settings import Settings


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("STREAMREC_TEST_BOOTSTRAP")
    if given:
        yield given
        return
    port = free_port()
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    process = start_embedded_broker(port, log)
    address = f"127.0.0.1:{port}"
    try:
        admin(address, timeout=30).close()
        yield address
    finally:
        stop_process(process)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small MF artifact trained on generated events (catalog i0..i199)."""
    from models.train import TrainConfig, train
    from core.generator import GeneratorConfig, generate

    out = tmp_path_factory.mktemp("model") / "mf"
    events = generate(GeneratorConfig(n_users=100, n_items=200, events_per_user=30, seed=1))
    config = TrainConfig(model="mf", dim=16, epochs=5)
    train(events, Settings().interest, Settings().blend, config, out, show_progress=False)
    return out


@pytest.fixture
def settings(bootstrap: str, model_path: Path, tmp_path: Path) -> Settings:
    """Settings with topics and a consumer group no other test shares."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        bootstrap=bootstrap,
        app_id=f"streamrec-test-{tag}",
        events_topic=f"events-{tag}",
        recs_topic=f"recs-{tag}",
        model_updates_topic=f"model-updates-{tag}",  # a worker follows every announcement on it
        partitions=2,
        model_path=model_path,
        state_dir=tmp_path / "state",
        web_port=free_port(),
        top_k=5,
        history_len=10,
        half_life_s=3600.0,
    )


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[[Settings], subprocess.Popen]]:
    """Start workers with ``workers(settings)``; every one is stopped at teardown."""
    from streams.tools.cluster import start_worker

    started: list[subprocess.Popen] = []

    def start(settings: Settings) -> subprocess.Popen:
        process = start_worker(settings, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        stop_process(process)
