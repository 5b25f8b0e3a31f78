"""Send events to the events topic with kafka-python: keyed by user_id, rate-limited, counted."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from kafka import KafkaProducer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core.events import Event, InvalidEvent, encode_event, parse_event
from core.generator import GeneratorConfig
from core.sources import detect_format, iter_jsonl, load_events
from streams.kafka_edge.security import kafka_python_kwargs
from streams.settings import Settings

Message = tuple[bytes | None, bytes]  # (key, value)


def to_message(event: Event) -> Message:
    return event.user_id.encode(), encode_event(event)


def load_source(
    path: Path | None, fmt: str | None, generator: GeneratorConfig | None
) -> list[Message]:
    """Messages to send: :func:`~core.sources.load_events`, except that a JSONL log is sent
    line for line, invalid lines included, so the worker's dead-letter topic (not this client)
    judges them; other formats are normalised."""
    if path is not None and generator is None and (fmt or detect_format(path)) == "jsonl":
        messages = []
        for line in iter_jsonl(path):
            try:
                key: bytes | None = parse_event(line).user_id.encode()
            except InvalidEvent:
                key = None
            messages.append((key, line))
        return messages
    return [to_message(e) for e in load_events(path, fmt, generator)]


def progress_bar(console: Console) -> Progress:
    """Sent / total, rate and time left, for `produce` and the demo."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    )


def produce_events(
    settings: Settings,
    messages: list[Message],
    rate: float,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Send ``messages`` at up to ``rate``/s (0 = unlimited) until done or ``stop`` is set;
    return how many were sent."""
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, linger_ms=5, acks=1, **kafka_python_kwargs(settings)
    )
    task = progress.add_task("producing", total=len(messages), rate="") if progress else None
    started = time.perf_counter()
    try:
        sent = 0
        for key, value in messages:
            if stop is not None and stop.is_set():
                break
            producer.send(settings.events_topic, key=key, value=value)
            sent += 1
            if rate > 0:
                ahead = started + sent / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)  # rate limiting, not synchronisation
            if progress and (sent % 200 == 0 or sent == len(messages)):
                elapsed = time.perf_counter() - started
                progress.update(task, completed=sent, rate=f"{sent / max(elapsed, 1e-9):,.0f} ev/s")
        producer.flush()
    finally:
        producer.close()
    return sent
