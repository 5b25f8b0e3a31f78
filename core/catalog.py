"""Item catalogs as users have them: which columns of a file say what an item is, and a reader
that turns each row into a v1 :class:`~core.items.Item`, one at a time.

As for event logs (core/log_formats.py), each named format is a preset of one mapping, not a
parser of its own: MovieLens 100K's ``u.item`` (``|``-separated, a 0/1 column per genre),
MovieLens 1M's ``movies.dat`` (``::``-separated, genres joined by ``|``), the MovieLens
``movies.csv`` of the later releases, and JSONL of v1 item records; any other delimited file is
a ``--columns item=…,title=…,text=…,categories=…,tags=…,ts=…`` away. Rows are held to the
catalog topic's own rules (:func:`core.items.item_from_fields`) and bad ones name file and line,
or are counted and skipped, as the event reader does (core/log_reader.py, whose row handling
this reader shares).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from core.events import InvalidEvent
from core.items import Item, item_from_fields, parse_item
from core.log_formats import TS_UNITS, Column, ReadOptions, parse_columns
from core.log_reader import MISSING, LogReader, column_indices, open_text, ts_parser

FIELDS = ("item", "title", "text", "categories", "tags", "ts")
# MovieLens 100K's u.genre, in its column order: u.item has a 0/1 column for each, from column 5
ML_100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
    "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
NO_LABEL = ("(no genres listed)",)  # what the later MovieLens releases write for none


@dataclass(frozen=True)
class CatalogMapping:
    """How one delimited file becomes items. ``categories`` and ``tags`` cells hold labels
    joined by ``list_separator``; ``flags`` names the 0/1 columns from ``flags_from`` on whose
    1 makes the column's name a category (u.item's genres). ``ts`` is read as an event log's
    (a number in ``ts_unit``, ISO-8601, or ``ts_format`` for strptime)."""

    columns: dict[str, Column]
    delimiter: str = ","
    header: bool = True
    list_separator: str = "|"
    encoding: str = "utf-8"
    ts_unit: str = "ms"
    ts_format: str | None = None
    flags: tuple[str, ...] = ()
    flags_from: int = 0
    optional: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown} in --columns; catalog fields are "
                             f"{FIELDS}")  # fmt: skip
        if "item" not in self.columns:
            raise ValueError("--columns must map item (the item id) for a catalog")
        if self.ts_unit not in TS_UNITS:
            raise ValueError(f"--ts-unit {self.ts_unit!r} is not one of {', '.join(TS_UNITS)}")
        if not self.header and any(isinstance(c, str) for c in self.columns.values()):
            raise ValueError("a file without a header row needs column indices in --columns")


PRESETS: dict[str, CatalogMapping] = {
    "movielens-100k": CatalogMapping(
        {"item": 0, "title": 1, "ts": 2}, delimiter="|", header=False, encoding="latin-1",
        ts_format="%d-%b-%Y", flags=ML_100K_GENRES, flags_from=5,
    ),
    "movielens-1m": CatalogMapping(
        {"item": 0, "title": 1, "categories": 2}, delimiter="::", header=False,
        encoding="latin-1",
    ),
    "movielens": CatalogMapping({"item": "movieId", "title": "title", "categories": "genres"}),
    "csv": CatalogMapping(
        {"item": "item_id", "title": "title", "text": "text", "categories": "categories",
         "tags": "tags", "ts": "ts"},
        optional=("title", "text", "categories", "tags", "ts"),
    ),
}
FORMATS = ("jsonl", *PRESETS)
_BY_NAME = {"u.item": "movielens-100k", "movies.dat": "movielens-1m", "movies.csv": "movielens"}


def detect_format(path: Path) -> str:
    """The catalog format a file's name says, where it is unambiguous."""
    name = path.name.removesuffix(".gz")
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    raise ValueError(f"cannot tell the catalog format of {path}; pass --format, one of {FORMATS}")


def catalog_mapping(path: Path, read: ReadOptions) -> CatalogMapping | None:
    """The mapping to read the catalog at ``path`` with, from the options every reading command
    takes (``--format``, ``--columns``, ``--delimiter``, ``--header``, ``--ts-unit``,
    ``--ts-format``); None for JSONL."""
    fmt = read.fmt or (None if read.columns else detect_format(path))
    if fmt == "jsonl":
        return None
    if fmt is not None and fmt not in PRESETS:
        raise ValueError(f"unknown catalog format {fmt!r}; one of {FORMATS}")
    base = PRESETS[fmt] if fmt else CatalogMapping({"item": 0, "title": 1})
    changes: dict[str, object] = {}
    if read.columns:
        changes |= {"columns": parse_columns(read.columns), "optional": (), "flags": ()}
    changes |= read.layout_changes()
    return replace(base, **changes) if changes else base


class CatalogReader(LogReader):
    """The items of one catalog file in file order; bad rows as :class:`LogReader`'s."""

    def __init__(self, path: Path, mapping: CatalogMapping | None, skip_bad_rows: bool = False):
        super().__init__(path, None, skip_bad_rows)
        self.catalog = mapping

    def __iter__(self) -> Iterator[Item]:  # type: ignore[override]
        self.mapping = self.catalog  # what LogReader's decoding error names the encoding by
        return super().__iter__()

    def _jsonl(self) -> Iterator[Item]:  # type: ignore[override]
        with open_text(self.path, "utf-8") as lines:
            for self.line, text in enumerate(lines, 1):
                if text.strip():
                    try:
                        yield parse_item(text.encode())
                    except InvalidEvent as exc:
                        self._bad(str(exc))

    def _delimited(self, mapping: CatalogMapping) -> Iterator[Item]:  # type: ignore[override]
        with open_text(self.path, mapping.encoding) as handle:
            rows = self._rows(handle, mapping.delimiter)
            header = next(rows, None) if mapping.header else None
            indices = column_indices(mapping, header, f"{self.path}:1")  # type: ignore[arg-type]
            to_ms = ts_parser(mapping) if "ts" in indices else None  # type: ignore[arg-type]
            width = max([*indices.values(), mapping.flags_from + len(mapping.flags) - 1]) + 1
            for row in rows:
                if not row or not any(cell.strip() for cell in row):
                    continue
                try:
                    if len(row) < width:
                        raise InvalidEvent("short_row", f"{len(row)} fields, the mapping reads "
                                                        f"{width}")  # fmt: skip
                    yield item_from_fields(_fields(row, indices, mapping, to_ms))
                except (InvalidEvent, ValueError) as exc:
                    self._bad(str(exc))


def _fields(row: list[str], indices: dict[str, int], mapping: CatalogMapping, to_ms) -> dict:
    """One row's cells as the fields of a v1 item record."""
    cell = {name: row[i].strip() for name, i in indices.items()}
    fields: dict[str, object] = {"item_id": cell["item"]}
    for name in ("title", "text"):
        if cell.get(name, "") not in MISSING:
            fields[name] = cell[name]
    for name in ("categories", "tags"):
        labels = [x for x in cell.get(name, "").split(mapping.list_separator)
                  if x.strip() and x.strip() not in NO_LABEL]  # fmt: skip
        if labels:
            fields[name] = labels
    if mapping.flags:
        flagged = [name for n, name in enumerate(mapping.flags)
                   if row[mapping.flags_from + n].strip() == "1"]  # fmt: skip
        fields["categories"] = [*fields.get("categories", []), *flagged]  # type: ignore[misc]
    if to_ms is not None and cell["ts"] not in MISSING:
        fields["ts"] = to_ms(cell["ts"])
    return fields
