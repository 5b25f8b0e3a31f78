"""Shared fixtures: one broker per session, one small trained model, unique topics per test, and
workers stopped by PID at teardown.

The broker is Apache Kafka where a JDK runs it (the jars fetched by make install), else the
embedded Tansu; STREAMREC_TEST_BROKER=kafka|tansu picks one (the Tansu lane sets tansu), and
STREAMREC_TEST_BOOTSTRAP uses a running Kafka instead. One broker serves the whole run, also when
pytest-xdist runs it in several processes (make test does)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Callable, Iterator

import hypothesis  # noqa: F401 - imported now, not by its plugin's summary (see below)
import hypothesis.strategies._internal.types  # noqa: F401 - imported lazily by st.builds
import pytest

from streams.tools.broker import LocalBroker, free_port, start_local_broker, stop_process
from streams.settings import Settings


# hypothesis's pytest plugin imports hypothesis at the run's summary, and pytest compiles it
# then. After aiokafka has fenced a transactional producer, CPython 3.11.7's compiler can fail
# with "AST constructor recursion depth mismatch" (its recursion counter is off by its 50-frame
# headroom), which fails a run of only the fencing tests; so it is imported at collection, and
# so is the module hypothesis imports on a test's first st.builds (a CI run failed there).

SESSION_BROKER = "_STREAMREC_SESSION_BROKER"  # engine@host:port of the run's broker, for workers


def broker_engine() -> str:
    return os.environ.get("STREAMREC_TEST_BROKER", "auto")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Under pytest-xdist, the controller starts the run's one broker before its workers,
    which find it in their environment; a run in one process starts it when first needed."""
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", None) \
            or os.environ.get("STREAMREC_TEST_BOOTSTRAP"):  # fmt: skip
        return
    folder = Path(tempfile.mkdtemp(prefix="streamrec-test-broker-"))
    broker = start_local_broker(broker_engine(), folder)
    config.stash[_STARTED] = (broker, folder)
    os.environ[SESSION_BROKER] = f"{broker.engine}@{broker.bootstrap}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    started = session.config.stash.get(_STARTED, None)
    if started is not None:
        broker, folder = started
        stop_process(broker.process, timeout=30)
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(SESSION_BROKER, None)


_STARTED = pytest.StashKey[tuple[LocalBroker, Path]]()


@pytest.fixture(scope="session")
def local_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker | None]:
    """The run's broker; None when STREAMREC_TEST_BOOTSTRAP names one to use instead."""
    if os.environ.get(SESSION_BROKER):  # xdist's controller started it and will stop it
        engine, bootstrap = os.environ[SESSION_BROKER].split("@", 1)
        yield LocalBroker(engine, None, bootstrap, None)
        return
    if os.environ.get("STREAMREC_TEST_BOOTSTRAP"):
        yield None
        return
    broker = start_local_broker(broker_engine(), tmp_path_factory.mktemp("broker"))
    try:
        yield broker
    finally:
        stop_process(broker.process, timeout=30)


@pytest.fixture(scope="session")
def bootstrap(local_broker: LocalBroker | None) -> str:
    return local_broker.bootstrap if local_broker else os.environ["STREAMREC_TEST_BOOTSTRAP"]


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
def settings(
    bootstrap: str, local_broker: LocalBroker | None, model_path: Path, tmp_path: Path
) -> Settings:
    """Settings with topics and a consumer group no other test shares, and the guarantee the
    session's broker supports (exactly-once on Apache Kafka)."""
    tag = uuid.uuid4().hex[:8]
    return Settings(
        bootstrap=bootstrap,
        processing_guarantee=local_broker.guarantee("exactly_once") if local_broker
        else "exactly_once",
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
