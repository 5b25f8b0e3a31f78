"""Start worker processes and wait on their state: used by the demo, the tests and operators."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

from streams.settings import Settings


class WorkerError(RuntimeError):
    """A worker exited or did not become ready in time."""


def settings_env(settings: Settings) -> dict[str, str]:
    """The env that makes a child process read the same settings."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:  # unset optional: the child's default is the same
            continue
        key = f"STREAMREC_{name.upper()}"
        env[key] = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return env


def start_worker(settings: Settings, log_path: Path, loglevel: str = "info") -> subprocess.Popen:
    """Run ``streamrec worker`` as a child process with ``settings``; stop it with stop_process."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--loglevel", loglevel],
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def fetch_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def worker_stats(web_port: int) -> dict[str, Any] | None:
    """The worker's /stats/ or None while its web server is not up."""
    try:
        return fetch_json(f"http://127.0.0.1:{web_port}/stats/")
    except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError):
        return None


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.1,
    process: subprocess.Popen | None = None,
) -> Any:
    """Poll ``condition`` until it returns something truthy; raise with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if process is not None and process.poll() is not None:
            raise WorkerError(f"process exited with {process.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise WorkerError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)  # poll interval; the condition is what we wait on


def is_ready(stats: dict[str, Any] | None) -> bool:
    return bool(stats and stats["assigned"] and not stats["rebalancing"] and stats["recovered"])


def wait_until_ready(
    web_port: int, timeout: float = 60.0, process: subprocess.Popen | None = None
) -> float:
    """Block until the worker owns partitions and has recovered its tables; return seconds."""
    started = time.monotonic()
    wait_for(
        lambda: is_ready(worker_stats(web_port)),
        timeout,
        f"worker on web port {web_port} to become ready",
        process=process,
    )
    return time.monotonic() - started
