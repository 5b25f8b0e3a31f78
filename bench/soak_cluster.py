"""The soak's workers: each with its own state dir and web port, kept across restarts as a pod
on its volume would; a SIGKILL and restart, a zombie, scaling, and waiting (with a deadline)
until the live workers own every partition again. A worker that exits without being killed is
noted and restarted (a fenced zombie's exit apart): a soak reports it rather than stopping at it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from streams.kafka_edge.topics import USER_TABLE
from streams.settings import Settings
from streams.tools.broker import free_port, stop_process
from streams.tools.cluster import (
    WorkerError,
    exited,
    start_worker,
    wait_for,
    wait_until_all_assigned,
    worker_stats,
)
from streams.tools.transaction_watch import TransactionWatch, stop_inside_a_transaction
from streams.worker.failure import EXIT_FENCED

RESTARTS_PER_SETTLE = 3  # a worker that dies again and again is a finding, not a fault to ride


@dataclass
class Worker:
    name: str
    settings: Settings
    log: Path
    process: subprocess.Popen

    @property
    def port(self) -> int:
        return self.settings.web_port


@dataclass
class Cluster:
    """The soak's consumer group. ``stop`` ends every process it started, by PID."""

    base: Settings
    workdir: Path
    ready_timeout: float = 120.0
    live: list[Worker] = field(default_factory=list)
    started: list[subprocess.Popen] = field(default_factory=list)
    unexpected_exits: list[str] = field(default_factory=list)
    fenced_exits: list[str] = field(default_factory=list)  # exactly-once's zombies, exit 75
    assignment: dict[str, list[int]] = field(default_factory=dict)  # worker -> partitions
    added: int = 0

    def _spawn(self, settings: Settings, log: Path) -> subprocess.Popen:
        process = start_worker(settings, log)
        self.started.append(process)
        return process

    def add(self) -> Worker:
        """Start one more worker with a new state dir and web port (it is not waited on)."""
        name = f"worker-{self.added}"
        self.added += 1
        own = self.base.model_copy(
            update={"state_dir": self.workdir / name / "state", "web_port": free_port()}
        )
        log = self.workdir / name / "worker.log"
        worker = Worker(name, own, log, self._spawn(own, log))
        self.live.append(worker)
        return worker

    def settle(self) -> float:
        """Wait until the live workers own every partition, none rebalancing; return seconds
        and keep the assignment. A worker found exited (not by the soak) is noted and started
        again on its state dir."""
        started = time.monotonic()
        for _ in range(RESTARTS_PER_SETTLE + 1):
            self.revive()
            processes = [w.process for w in self.live]
            try:
                owned = wait_until_all_assigned([w.port for w in self.live], self.base.partitions,
                                                self.ready_timeout, processes)
            except WorkerError:
                if exited(processes) is None:
                    raise  # the deadline, not an exit
                continue
            self.assignment = {w.name: owned[w.port] for w in self.live}
            return time.monotonic() - started
        raise WorkerError(f"workers keep exiting: {'; '.join(self.unexpected_exits[-3:])}")

    def revive(self) -> list[str]:
        """Start again, on its state dir, any worker found exited (not by the soak), and note
        its exit: what a supervisor (compose's restart policy) does. Returns their names."""
        revived = []
        for worker in self.live:
            if worker.process.poll() is not None:
                gone = f"{worker.name} exited with {worker.process.returncode} ({worker.log})"
                if worker.process.returncode == EXIT_FENCED:  # a zombie that was fenced
                    self.fenced_exits.append(gone)
                else:
                    self.unexpected_exits.append(gone)
                worker.process = self._spawn(worker.settings, worker.log)
                revived.append(worker.name)
        return revived

    def owners(self) -> list[Worker]:
        """The live workers that own a partition (Faust may leave one with none: it keeps an
        assignment that is within ceil(partitions / workers) per worker)."""
        return [w for w in self.live if self.assignment.get(w.name)] or self.live

    def kill_and_restart(self, victim: Worker, streaming: Callable[[], bool],
                         inside_transaction: bool = False) -> dict[str, Any]:  # fmt: skip
        """SIGKILL ``victim`` and start it again on its state dir and port. Times kill -> the
        group owns every partition again (ready), and kill -> the victim has consumed since its
        restart (consuming; not timed when it owns no partition, or once the stream is over and
        there may be nothing left to read). ``inside_transaction``: first SIGSTOP it while a
        transaction of its own is open (seen on its partitions of the users' changelog; the row
        says whether one was caught within 20 s)."""
        owned_before = self.assignment.get(victim.name, [])
        caught = None
        if inside_transaction and owned_before:
            watch = TransactionWatch(self.base.bootstrap,
                                     f"{self.base.app_id}-{USER_TABLE}-changelog", owned_before)
            try:
                caught = stop_inside_a_transaction(victim.process.pid, watch, 20.0)
            finally:
                watch.close()
        killed = time.monotonic()
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(30)
        victim.process = self._spawn(victim.settings, victim.log)
        self.settle()
        ready_s = time.monotonic() - killed
        consuming_s = None
        if self.assignment.get(victim.name):

            def consuming() -> bool:
                stats = worker_stats(victim.port)
                return bool(stats and stats["events_in"] > 0) or not streaming()

            wait_for(consuming, self.ready_timeout, f"{victim.name} to consume after restart",
                     process=victim.process)
            if (worker_stats(victim.port) or {}).get("events_in", 0) > 0:
                consuming_s = round(time.monotonic() - killed, 2)
        return {
            "worker": victim.name,
            "owned": owned_before,
            "owns": self.assignment.get(victim.name, []),
            "ready_s": round(ready_s, 2),
            "consuming_s": consuming_s,
            "inside_transaction": caught,
        }

    def events_in(self) -> dict[str, int]:
        """Events each live worker has read since it started (0 while it does not answer)."""
        return {w.name: (worker_stats(w.port) or {}).get("events_in", 0) for w in self.live}

    def wait_consuming(self, before: dict[str, int], streaming: Callable[[], bool]) -> None:
        """Wait until every worker that owns a partition has read more than ``before`` (or the
        stream is over): after a broker freeze the group can look settled before the broker
        has expired anyone's session, so settling alone says little."""
        owners = [w for w in self.live if self.assignment.get(w.name)]
        before = dict(before)

        def consuming() -> bool:
            before.update(dict.fromkeys(self.revive(), 0))  # a restarted one counts from 0
            now = self.events_in()
            return not streaming() or all(now[w.name] > before.get(w.name, 0) for w in owners)

        wait_for(consuming, self.ready_timeout, "every owner to consume again")

    def zombie(self, victim: Worker, session_timeout_s: float) -> dict[str, Any]:
        """SIGSTOP ``victim`` until the other workers own every partition (the broker expires its
        session), then SIGCONT it while they do: it wakes with batches in flight for partitions
        it no longer owns. Then wait until the whole group has settled again."""
        others = [w for w in self.live if w is not victim]
        if not others:
            raise WorkerError("a zombie needs another worker to take its partitions")
        owned_before = self.assignment.get(victim.name, [])
        stopped = time.monotonic()
        os.kill(victim.process.pid, signal.SIGSTOP)
        try:
            wait_until_all_assigned([w.port for w in others], self.base.partitions,
                                    self.ready_timeout + session_timeout_s,
                                    [w.process for w in others])
            taken_s = time.monotonic() - stopped
        finally:
            os.kill(victim.process.pid, signal.SIGCONT)
        return {"worker": victim.name, "owned": owned_before, "taken_over_s": round(taken_s, 2),
                "stopped_s": round(time.monotonic() - stopped, 2),
                "settle_s": round(self.settle(), 2)}

    def retire_oldest(self) -> Worker:
        """Stop the longest-running worker cleanly (SIGTERM): its partitions move to workers
        that must recover them from the changelog."""
        worker = self.live.pop(0)
        stop_process(worker.process, timeout=30)
        return worker

    def stop(self) -> None:
        for process in self.started:
            stop_process(process)
