"""One reader for every log format: rows of a delimited file (a :class:`ColumnMapping` says which
column is which field) or JSONL lines become :class:`Event`, one at a time, in file order.

A row is held to the worker's own rules (:func:`core.events.event_from_fields`), so a log the
reader accepts is a log the worker accepts. A bad row stops the read with ``file:line: what``,
or, when the user asks, is counted and skipped (:attr:`LogReader.bad_rows`).
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from core.events import Event, InvalidEvent, event_from_fields, parse_event, parse_ts
from core.log_formats import TS_UNITS, ColumnMapping

MISSING = ("", "NA")  # an empty cell; Diginetica writes NA for "no user"
_ID_FIELDS = {"user": "user_id", "item": "item_id", "event_id": "event_id", "rec_id": "rec_id"}


class BadRow(ValueError):
    """A row that is not an event; the message names the file, the line and why."""


def open_text(path: Path, encoding: str) -> io.TextIOBase:
    """A text handle on ``path``, gunzipped when it ends in .gz; newline="" as csv wants."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return open(path, encoding=encoding, newline="")


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "").replace(" ", "")


def column_indices(mapping: ColumnMapping, header: list[str] | None, where: str) -> dict[str, int]:
    """Field -> 0-based index. Header names match exactly, else ignoring case and underscores
    (Diginetica's ``sessionId`` is its sample's ``session_id``)."""
    exact = {name.strip(): i for i, name in enumerate(header or [])}
    loose = {_normal(name): i for i, name in enumerate(header or [])}
    indices = {}
    for name, column in mapping.columns.items():
        if isinstance(column, int):
            indices[name] = column
        elif column in exact or _normal(column) in loose:
            indices[name] = exact.get(column, loose.get(_normal(column)))
        elif name not in mapping.optional:
            raise BadRow(f"{where}: no column {column!r} (for {name}) in the header {header}; "
                         "is it another format (--format) or your own (--columns)?")
    return indices


def ts_parser(mapping: ColumnMapping) -> Callable[[str], int]:
    """Text -> epoch ms: strptime with ``ts_format`` (``iso``: ISO-8601 only), else a number in
    ``ts_unit`` or ISO-8601."""
    if mapping.ts_format and mapping.ts_format.lower() == "iso":
        return parse_ts
    if mapping.ts_format:
        fmt = mapping.ts_format

        def parse(text: str) -> int:
            moment = datetime.strptime(text, fmt)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
            return round(moment.timestamp() * 1000)

        return parse
    scale = TS_UNITS[mapping.ts_unit]
    whole = int(scale) if scale >= 1 else None

    def parse_number(text: str) -> int:
        if whole is not None and text.isdigit():
            return int(text) * whole
        try:
            number = float(text)
        except ValueError:
            return parse_ts(text)  # ISO-8601, or InvalidEvent saying it is neither
        if not math.isfinite(number):
            raise InvalidEvent("bad_ts", f"ts {text[:32]!r} is not a number of {mapping.ts_unit}")
        return round(number * scale)

    return parse_number


def row_converter(mapping: ColumnMapping, indices: dict[str, int]) -> Callable[[list[str]], Event]:
    """The function that turns one row (its cells) into an :class:`Event`, or raises saying why."""
    ids = [(_ID_FIELDS[f], i) for f, i in indices.items() if f in _ID_FIELDS]
    if "user" not in indices:
        ids.append(("user_id", indices["session"]))
    at_ts, at_offset = indices["ts"], indices.get("ts_offset")
    at_type, at_value = indices.get("type"), indices.get("value")
    to_ms = ts_parser(mapping)
    width = max(indices.values()) + 1

    def convert(row: list[str]) -> Event:
        if len(row) < width:
            raise InvalidEvent("short_row", f"{len(row)} fields, the mapping reads {width}")
        fields: dict[str, object] = {
            name: text for name, i in ids if (text := row[i].strip()) not in MISSING
        }
        ts = to_ms(row[at_ts].strip())
        if at_offset is not None and row[at_offset].strip() not in MISSING:
            ts += round(_number(row[at_offset], "bad_ts", "ts_offset"))
        fields["ts"] = ts
        fields["type"] = mapping.event_type(None if at_type is None else row[at_type].strip())
        if at_value is not None and row[at_value].strip() not in MISSING:
            fields["value"] = _number(row[at_value], "bad_value", "value")
        return event_from_fields(fields)

    return convert


def _number(text: str, reason: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidEvent(reason, f"{name} {text.strip()[:32]!r} is not a number") from None


class LogReader:
    """The events of one log file in file order. With ``skip_bad_rows`` a bad row is counted
    (:attr:`bad_rows`, the first one's message in :attr:`first_bad`) instead of raised;
    :attr:`line` is the line last read, for messages about the events."""

    def __init__(self, path: Path, mapping: ColumnMapping | None, skip_bad_rows: bool = False):
        self.path, self.mapping, self.skip_bad_rows = path, mapping, skip_bad_rows
        self.bad_rows, self.first_bad, self.line = 0, "", 0

    def _bad(self, reason: str) -> None:
        message = f"{self.path}:{self.line}: {reason}"
        if not self.skip_bad_rows:
            raise BadRow(message)
        self.bad_rows += 1
        self.first_bad = self.first_bad or message

    def __iter__(self) -> Iterator[Event]:
        self.bad_rows, self.first_bad, self.line = 0, "", 0  # each pass counts afresh
        try:
            if self.mapping is None:
                yield from self._jsonl()
            else:
                yield from self._delimited(self.mapping)
        except UnicodeDecodeError as exc:  # the text stream cannot go on past it: not skippable
            encoding = self.mapping.encoding if self.mapping else "utf-8"
            raise BadRow(f"{self.path}: after line {self.line}: not {encoding} text "
                         f"({exc.reason})") from None

    def _jsonl(self) -> Iterator[Event]:
        with open_text(self.path, "utf-8") as lines:
            for self.line, text in enumerate(lines, 1):
                if text.strip():
                    try:
                        yield parse_event(text.encode())
                    except InvalidEvent as exc:
                        self._bad(str(exc))

    def _rows(self, handle: io.TextIOBase, delimiter: str) -> Iterator[list[str]]:
        if len(delimiter) != 1:  # csv takes one character; MovieLens 1M separates with "::"
            for self.line, text in enumerate(handle, 1):
                yield text.rstrip("\r\n").split(delimiter)
            return
        reader = csv.reader(handle, delimiter=delimiter)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over csv's size limit: one bad row
                self.line = reader.line_num
                self._bad(f"unreadable row: {exc}")
                continue
            self.line = reader.line_num
            yield row

    def _delimited(self, mapping: ColumnMapping) -> Iterator[Event]:
        with open_text(self.path, mapping.encoding) as handle:
            rows = self._rows(handle, mapping.delimiter)
            header = next(rows, None) if mapping.header else None
            convert = row_converter(mapping, column_indices(mapping, header, f"{self.path}:1"))
            for row in rows:
                if not row or not any(cell.strip() for cell in row):
                    continue
                try:
                    yield convert(row)
                except (InvalidEvent, ValueError) as exc:
                    self._bad(str(exc))
