"""Event logs as the commands get them: in event-time order, streamed with bounded memory.

:class:`EventLog` reads a file through :class:`~core.log_reader.LogReader` and orders it with a
bounded external sort (:mod:`core.external_sort`); with ``assume_sorted`` it streams the file as
it is and stops at the first event that goes back in time. :func:`load_events` is the one way a
command gets its events as a list: a log, or the generator's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from core.events import Event
from core.external_sort import external_sorted
from core.generator import GeneratorConfig, generate
from core.log_formats import FORMATS, ReadOptions, detect_format
from core.log_reader import BadRow, LogReader, open_text

__all__ = ["FORMATS", "EventLog", "ReadOptions", "detect_format", "load_events", "read_events"]


def _event_time(event: Event) -> int:
    return event.ts


class EventLog:
    """The events of the log at ``path`` in event-time order (stable: ties keep file order),
    yielded one at a time; after a pass, :meth:`summary` says what bad rows were skipped."""

    def __init__(self, path: Path, options: ReadOptions | str | None = None) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"no such event log: {path}")
        if isinstance(options, str):  # a format's name stands for its options
            options = ReadOptions(fmt=options)
        self.path, self.options = path, options or ReadOptions()
        self.reader = LogReader(path, self.options.mapping(path), self.options.skip_bad_rows)

    def __iter__(self) -> Iterator[Event]:
        if self.options.assume_sorted:
            return self._checked_in_order()
        return external_sorted(self.reader, _event_time, self.options.sort_run, Event)

    def _checked_in_order(self) -> Iterator[Event]:
        last = None
        for event in self.reader:
            if last is not None and event.ts < last:
                raise BadRow(
                    f"{self.path}:{self.reader.line}: ts {event.ts} is before the previous "
                    f"event's {last}, but --sorted said the log is in time order; drop --sorted"
                )
            last = event.ts
            yield event

    def summary(self) -> str:
        """One line about the skipped rows, or "" when there were none."""
        if not self.reader.bad_rows:
            return ""
        return f"skipped {self.reader.bad_rows:,} bad rows; the first: {self.reader.first_bad}"


def read_events(path: Path, options: ReadOptions | str | None = None) -> list[Event]:
    """All events of a log file, sorted by event time."""
    return list(EventLog(path, options))


def load_events(
    path: Path | None,
    options: ReadOptions | str | None,
    generator: GeneratorConfig | None,
    report: Callable[[str], object] | None = None,
) -> list[Event]:
    """The events of the log at ``path``, or the generator's when ``path`` is None, so every
    command that takes "a log or --generate" reads and orders them the same way; ``report``
    hears about skipped bad rows."""
    if (path is None) == (generator is None):
        raise ValueError("load_events takes exactly one of a log path and a generator config")
    if path is None:
        return generate(generator)
    log = EventLog(path, options)
    events = list(log)
    if report is not None and log.summary():
        report(log.summary())
    return events


def iter_jsonl(path: Path) -> Iterator[bytes]:
    """Raw lines, for replaying a log byte-for-byte (bad lines included: the DLQ judges them)."""
    with open_text(path, "utf-8") as lines:
        for line in lines:
            if line.strip():
                yield line.strip().encode()
