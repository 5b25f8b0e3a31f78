"""Send events to the events topic with kafka-python: keyed by user_id, rate-limited, counted;
and a catalog's items to the items topic, keyed by item id."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sized

from kafka import KafkaProducer
from rich.console import Console
from rich.progress import (
    BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn)

from core.catalog import CatalogReader, catalog_mapping
from core.events import Event, InvalidEvent, encode_event, parse_event
from core.items import encode_item
from core.generator import GeneratorConfig, generate
from core.sources import EventLog, ReadOptions, iter_jsonl
from streams.kafka_edge.security import kafka_python_kwargs
from streams.settings import Settings

Message = tuple[bytes | None, bytes]  # (key, value)


def to_message(event: Event) -> Message:
    return event.user_id.encode(), encode_event(event)


def load_source(
    path: Path | None,
    read: ReadOptions | None,
    generator: GeneratorConfig | None,
    report: Callable[[str], object] | None = None,
) -> Iterable[Message]:
    """Messages to send, streamed: a log's events in time order (:class:`~core.sources.EventLog`,
    bounded memory), or the generator's; except that a JSONL log (without --sorted or
    --skip-bad-rows) is sent line for line as it stands, invalid lines included, so the worker's
    dead-letter topic (not this client) judges them. ``report`` hears about skipped bad rows
    once the log is read."""
    read = read or ReadOptions()
    if generator is not None:
        return [to_message(e) for e in generate(generator)]
    if path is None:
        raise ValueError("load_source takes a log path or a generator config")
    if read.mapping(path) is None and not (read.assume_sorted or read.skip_bad_rows):
        return ((_key_of(line), line) for line in iter_jsonl(path))
    return _messages(EventLog(path, read), report)


def catalog_messages(path: Path, read: ReadOptions | None,
                     report: Callable[[str], object] | None = None) -> Iterator[Message]:  # fmt: skip
    """A catalog file's items as messages for the items topic, in file order, streamed: each
    row held to the v1 item rules (core/items.py) by the catalog reader (core/catalog.py).
    ``report`` hears about skipped bad rows once the file is read."""
    read = read or ReadOptions()
    reader = CatalogReader(path, catalog_mapping(path, read), read.skip_bad_rows)
    for item in reader:
        yield item.item_id.encode(), encode_item(item)
    if report is not None and reader.bad_rows:
        report(f"skipped {reader.bad_rows:,} bad rows of {path}; the first: {reader.first_bad}")


def _messages(log: EventLog, report: Callable[[str], object] | None) -> Iterator[Message]:
    yield from (to_message(e) for e in log)
    if report is not None and log.summary():
        report(log.summary())


def _key_of(line: bytes) -> bytes | None:
    try:
        return parse_event(line).user_id.encode()
    except InvalidEvent:
        return None


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
    messages: Iterable[Message],
    rate: float,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    topic: str | None = None,
) -> int:
    """Send ``messages`` to ``topic`` (the events topic unless given) at up to ``rate``/s
    (0 = unlimited) until done or ``stop`` is set; return how many were sent. ``progress``
    shows the count and the rate as it goes (of a total when ``messages`` has a length; a
    streamed log has none)."""
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap, linger_ms=5, acks=1, **kafka_python_kwargs(settings)
    )
    total = len(messages) if isinstance(messages, Sized) else None
    task = progress.add_task("producing", total=total, rate="") if progress else None
    started = time.perf_counter()
    try:
        sent = 0
        for key, value in messages:
            if stop is not None and stop.is_set():
                break
            producer.send(topic or settings.events_topic, key=key, value=value)
            sent += 1
            if rate > 0:
                ahead = started + sent / rate - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)  # rate limiting, not synchronisation
            if progress and (sent % 200 == 0 or sent == total):
                _show(progress, task, sent, started)
        producer.flush()
        if progress:
            _show(progress, task, sent, started)
    finally:
        producer.close()
    return sent


def _show(progress: Progress, task: TaskID | None, sent: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    progress.update(task, completed=sent, rate=f"{sent / max(elapsed, 1e-9):,.0f} ev/s")
