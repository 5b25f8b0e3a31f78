"""Which columns of a delimited log are which event field: one mapping, and each named format a
preset of it (data, not a parser per format), so a new dataset is a line in :data:`PRESETS` or
a ``--columns`` option, never new parsing code.

Fields a mapping may name: ``user``, ``session`` (the user id when no ``user`` column is
mapped: sessions stand in for users), ``item``, ``ts``, ``ts_offset`` (milliseconds added to
``ts``: Diginetica's in-session offset on a date), ``type``, ``value``, ``event_id``,
``rec_id``. A column is a header name or a 0-based index.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from core.events import EVENT_TYPES

FIELDS = ("user", "session", "item", "ts", "ts_offset", "type", "value", "event_id", "rec_id")
TS_UNITS = {"s": 1000.0, "ms": 1.0, "us": 0.001}
# Raw behaviour names of the public logs onto the v1 types; the user's --type-map goes on top.
# A favourite (Taobao "fav") is a saved intent to buy, stronger than a view and short of a
# purchase, which is what "cart" weighs in the interest state; so fav/favourite count as cart.
DEFAULT_TYPE_MAP = {
    "pv": "view", "fav": "cart", "favorite": "cart", "favourite": "cart", "buy": "purchase",
    "addtocart": "cart", "transaction": "purchase",
}
ANY_TYPE = "*"  # --type-map key: the type of rows with no type column, or an unlisted one

Column = str | int


@dataclass(frozen=True)
class ColumnMapping:
    """How one delimited file becomes events. ``ts`` is a number in ``ts_unit`` or an
    ISO-8601 string unless ``ts_format`` (strptime; naive times are UTC) says otherwise."""

    columns: dict[str, Column]
    delimiter: str = ","
    header: bool = True
    ts_unit: str = "ms"
    ts_format: str | None = None
    type_map: dict[str, str] = field(default_factory=dict)
    optional: tuple[str, ...] = ()  # fields whose column may be absent from the header
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown} in --columns; fields are {FIELDS}")
        missing = [f for f in ("item", "ts") if f not in self.columns]
        if "user" not in self.columns and "session" not in self.columns:
            missing.insert(0, "user (or session)")
        if missing:
            raise ValueError(f"--columns must map {', '.join(missing)}")
        if self.ts_unit not in TS_UNITS:
            raise ValueError(f"--ts-unit {self.ts_unit!r} is not one of {', '.join(TS_UNITS)}")
        bad = {k: v for k, v in self.type_map.items() if v not in EVENT_TYPES}
        if bad:
            raise ValueError(f"--type-map targets {bad} are not v1 types {EVENT_TYPES}")
        if not self.header and any(isinstance(c, str) for c in self.columns.values()):
            raise ValueError("a file without a header row needs column indices in --columns")
        if not self.delimiter:
            raise ValueError("the delimiter is empty")

    def event_type(self, raw: str | None) -> str:
        """The v1 type of a row's raw type (None: no type column); unknown names pass through
        for the event check to reject. Without a type column: ``*`` in the type map, else
        rating when a value column is mapped, else view."""
        if raw is None:
            default = "rating" if "value" in self.columns else "view"
            return self.type_map.get(ANY_TYPE, default)
        mapped = self.type_map.get(raw) or DEFAULT_TYPE_MAP.get(raw.lower())
        return mapped or self.type_map.get(ANY_TYPE, raw)


def _preset(columns: dict[str, Column], **kw: object) -> ColumnMapping:
    return ColumnMapping(columns=columns, **kw)  # type: ignore[arg-type]


_ML = {"user": 0, "item": 1, "value": 2, "ts": 3}
PRESETS: dict[str, ColumnMapping] = {
    "csv": _preset(
        {"user": "user_id", "item": "item_id", "type": "type", "ts": "ts", "value": "value",
         "event_id": "event_id", "rec_id": "rec_id"},
        optional=("item", "value", "event_id", "rec_id"),
    ),
    "movielens-100k": _preset(_ML, delimiter="\t", header=False, ts_unit="s", encoding="latin-1"),
    "movielens-1m": _preset(_ML, delimiter="::", header=False, ts_unit="s", encoding="latin-1"),
    "movielens": _preset(
        {"user": "userId", "item": "movieId", "value": "rating", "ts": "timestamp"}, ts_unit="s"
    ),
    "taobao": _preset({"user": 0, "item": 1, "type": 3, "ts": 4}, header=False, ts_unit="s"),
    "yoochoose-clicks": _preset(
        {"session": 0, "ts": 1, "item": 2}, header=False, ts_format="iso",
        type_map={ANY_TYPE: "click"},
    ),
    # a buy's price and quantity are not read: no v1 field says how much was bought
    "yoochoose-buys": _preset(
        {"session": 0, "ts": 1, "item": 2}, header=False, ts_format="iso",
        type_map={ANY_TYPE: "purchase"},
    ),
    "yoochoose-sessions": _preset(
        {"session": "SessionId", "item": "ItemId", "ts": "Time"},
        delimiter="\t", ts_unit="s", type_map={ANY_TYPE: "click"},
    ),
    "diginetica": _preset(
        {"session": "sessionId", "item": "itemId", "ts": "eventdate", "ts_offset": "timeframe"},
        delimiter=";",
    ),
    "retailrocket": _preset(
        {"user": "visitorid", "item": "itemid", "type": "event", "ts": "timestamp"}
    ),
}
FORMATS = ("jsonl", *PRESETS)
# File names that say their format; the rest need --format (or --columns).
_BY_NAME = {
    "u.data": "movielens-100k", "ratings.dat": "movielens-1m", "ratings.csv": "movielens",
    "yoochoose-clicks.dat": "yoochoose-clicks", "yoochoose-buys.dat": "yoochoose-buys",
}


def detect_format(path: Path) -> str:
    """The format a file's name says, where it is unambiguous."""
    name = path.name.removesuffix(".gz")
    if name in _BY_NAME:
        return _BY_NAME[name]
    if name.startswith("UserBehavior") and name.endswith(".csv"):
        return "taobao"
    if name.startswith("yoochoose-clicks") and name.endswith(".txt"):
        return "yoochoose-sessions"
    if name.endswith("train-item-views.csv"):
        return "diginetica"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    raise ValueError(f"cannot tell the format of {path}; pass --format, one of {FORMATS}")


def _pairs(text: str, option: str) -> list[tuple[str, str]]:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ValueError(f"{option} wants name=value pairs separated by commas, got {part!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


def parse_columns(text: str) -> dict[str, Column]:
    """``user=visitorid,item=2,ts=timestamp`` -> field -> column name or 0-based index."""
    return {k: int(v) if v.isdigit() else v for k, v in _pairs(text, "--columns")}


def parse_type_map(text: str) -> dict[str, str]:
    """``pv=view,buy=purchase,*=click`` -> raw type -> v1 type."""
    return dict(_pairs(text, "--type-map"))


def parse_delimiter(text: str) -> str:
    """What a shell lets a user type for a delimiter: ``tab`` or ``\\t`` for a tab."""
    return {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ","}.get(text, text)


@dataclass(frozen=True)
class ReadOptions:
    """How to read a log, as the user gave it (None: the format's own choice); every command
    that reads a log takes these same options (streams/cli/options.py declares them)."""

    fmt: str | None = None
    columns: str | None = None
    type_map: str | None = None
    ts_unit: str | None = None
    ts_format: str | None = None
    delimiter: str | None = None
    header: bool | None = None
    skip_bad_rows: bool = False
    assume_sorted: bool = False
    sort_run: int = 200_000

    def __post_init__(self) -> None:
        if self.sort_run < 1:
            raise ValueError("--sort-run must be at least 1")

    def mapping(self, path: Path) -> ColumnMapping | None:
        """The column mapping to read ``path`` with; None for a JSONL log."""
        fmt = self.fmt or (None if self.columns else detect_format(path))
        if fmt == "jsonl":
            return None
        if fmt is not None and fmt not in PRESETS:
            raise ValueError(f"unknown format {fmt!r}; one of {FORMATS}")
        tsv = path.name.removesuffix(".gz").endswith((".tsv", ".tab"))
        base = PRESETS[fmt] if fmt else ColumnMapping({"user": 0, "item": 1, "ts": 2},
                                                       delimiter="\t" if tsv else ",")
        changes: dict[str, object] = {}
        if self.columns:
            changes |= {"columns": parse_columns(self.columns), "optional": ()}
        if self.type_map:
            changes["type_map"] = base.type_map | parse_type_map(self.type_map)
        changes |= self.layout_changes()
        return replace(base, **changes) if changes else base

    def layout_changes(self) -> dict[str, object]:
        """What the user said of any delimited file's layout (timestamps, header, delimiter),
        to lay over a format's preset: an event log's or an item catalog's (core/catalog.py)."""
        changes: dict[str, object] = {name: getattr(self, name)
                                      for name in ("ts_unit", "ts_format", "header")
                                      if getattr(self, name) is not None}  # fmt: skip
        if self.delimiter is not None:
            changes["delimiter"] = parse_delimiter(self.delimiter)
        return changes
