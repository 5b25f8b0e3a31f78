"""See from outside whether a worker is inside a Kafka transaction: what the tests and the soak
use to time a kill inside one (exactly-once's hardest moment)."""

from __future__ import annotations

import os
import signal
import time
from typing import Iterable

from kafka import KafkaConsumer, TopicPartition


class TransactionWatch:
    """Whether a transaction holds records on some of ``topic``'s ``partitions`` that it has not
    committed or aborted yet: a partition's high watermark is past its last stable offset."""

    def __init__(self, bootstrap: str, topic: str, partitions: Iterable[int]) -> None:
        self.tps = [TopicPartition(topic, p) for p in partitions]
        self.consumers = [KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
                          for isolation in ("read_uncommitted", "read_committed")]  # fmt: skip

    def open(self) -> bool:
        high, stable = (consumer.end_offsets(self.tps) for consumer in self.consumers)
        return any(high[tp] > stable[tp] for tp in self.tps)

    def close(self) -> None:
        for consumer in self.consumers:
            consumer.close()


def stop_inside_a_transaction(pid: int, watch: TransactionWatch, timeout: float,
                              settle: float = 1.0) -> bool:  # fmt: skip
    """SIGSTOP ``pid`` at a moment ``watch`` sees a transaction open, and seen open throughout
    ``settle`` seconds once it is stopped (so it was stopped inside it: a commit the broker
    already had, stopped or not, ends as its markers are written); False if that never happened
    within ``timeout`` seconds (the process then runs on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if watch.open():
            os.kill(pid, signal.SIGSTOP)
            if _stays_open(watch, settle):
                return True
            os.kill(pid, signal.SIGCONT)  # it committed meanwhile: try again
    return False


def _stays_open(watch: TransactionWatch, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if not watch.open():
            return False
    return True
