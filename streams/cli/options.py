"""What the commands share: the one place env is read, the option types several commands take,
and the two ways a command fails (a usage error, or an operational one), each declared once."""

from __future__ import annotations

import functools
import inspect
import signal
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional

import typer
from rich.console import Console

from core.generator import GeneratorConfig
from core.catalog import FORMATS as CATALOG_FORMATS
from core.log_formats import FORMATS, ReadOptions
from streams.settings import Settings

console = Console(stderr=True)

Bootstrap = Annotated[
    Optional[str],
    typer.Option(envvar="STREAMREC_BOOTSTRAP", help="Kafka bootstrap address host:port[,...]."),
]
Partitions = Annotated[
    Optional[int], typer.Option(envvar="STREAMREC_PARTITIONS", help="Partitions per topic.")
]
Engine = Annotated[
    str,
    typer.Option(
        envvar="STREAMREC_BROKER_ENGINE",
        help="Which local broker to start: kafka (Apache Kafka, one KRaft node; needs a JDK 17 "
        "and its jars, fetched by `streamrec broker --fetch`), tansu (memory-only, pip-only), "
        "or auto: Apache Kafka where it can run, else Tansu.",
    ),
]
ModelPath = Annotated[
    Optional[Path], typer.Option(envvar="STREAMREC_MODEL_PATH", help="Model artifact directory.")
]
EVENT_LOG_HELP = (
    "Event log (.gz too): .jsonl, a .csv of v1 fields, MovieLens u.data, ratings.dat or "
    "ratings.csv, Taobao UserBehavior*.csv, yoochoose-clicks.dat / -buys.dat, Diginetica "
    "*train-item-views.csv; any other CSV/TSV with --format or --columns."
)
EventLog = Annotated[Optional[Path], typer.Option(help=EVENT_LOG_HELP)]
CATALOG_HELP = (
    "SOURCE is an item catalog, sent to the items topic keyed by item id: MovieLens u.item, "
    "movies.dat or movies.csv, .jsonl of v1 item records (docs/schemas/item.v1.schema.json), "
    "or any CSV/TSV with --columns item=…,title=…,text=…,categories=…,tags=…,ts=… (labels "
    "joined by |). --format, --delimiter, --header, --ts-unit/--ts-format and --skip-bad-rows "
    "apply to it as to a log."
)
# The generator's options, shared by produce, train and evaluate.
GenUsers = Annotated[int, typer.Option(help="Generator: number of users.")]
GenItems = Annotated[int, typer.Option(help="Generator: number of items.")]
GenEventsPerUser = Annotated[int, typer.Option(help="Generator: events per user.")]
# Training options train and evaluate share.
Seed = Annotated[int, typer.Option(help="Seed for data generation and training.")]
Dim = Annotated[int, typer.Option(min=2, help="Embedding dimension.")]
TorchThreads = Annotated[int, typer.Option(min=1, help="Torch CPU threads.")]
CatalogFile = Annotated[Optional[Path], typer.Option(
    "--catalog", help="An item catalog whose format its name says (u.item, movies.dat, "
    "movies.csv, .jsonl of v1 item records, a .csv of v1 fields): its items' content vectors go "
    "into the model, and items no event names become candidates from them. Needs the content "
    "extra.")]
Encoder = Annotated[str, typer.Option(
    help="Content encoder: minilm (the packaged all-MiniLM-L6-v2) or a sentence-transformers "
    "model directory.")]


def catalog_items(path: Path) -> list:
    """A catalog file's items (core/catalog.py), read whole: a catalog is one row per item."""
    from core.catalog import CatalogReader, catalog_mapping
    from core.log_formats import ReadOptions

    return list(CatalogReader(path, catalog_mapping(path, ReadOptions())))
RecentEvents = Annotated[
    int, typer.Option(min=1, help="Newest positive events a warm-started version trains on.")
]


class SettingsFromEnv(Settings):
    """:class:`Settings` that also read ``STREAMREC_*`` env, under the arguments given.

    Only the CLI builds these, once per command at the entry point, so no layer below it reads
    the process's environment; a worker started as a child process gets its settings this way.
    """

    reads_env = True


def note(line: str) -> None:
    """One line for the user, unwrapped and without markup (it may quote a path or a row)."""
    console.print(line, soft_wrap=True, markup=False, highlight=False)


@contextmanager
def usage_errors() -> Iterator[None]:
    """A ValueError from reading what the user typed (a flag, an env value) is a usage error:
    exit 2 with its reason, before anything has run."""
    try:
        yield
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals() -> None:
    """The first SIGTERM or SIGINT from here on raises KeyboardInterrupt, so a command's
    ``finally`` stops the processes it started (the broker, workers) whichever way it is asked
    to end: Ctrl-C, ``kill``, or a job in the background, which ignores SIGINT unless told.
    Later ones are ignored: a second Ctrl-C must not cut that cleanup short and leave a broker
    running."""
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)
    raise KeyboardInterrupt


def load_settings(**flags: object) -> Settings:
    """Settings from env, overridden by the CLI flags actually given (None: not given)."""
    with usage_errors():
        return SettingsFromEnv(**{k: v for k, v in flags.items() if v is not None})


@contextmanager
def user_errors() -> Iterator[None]:
    """Known operational failures end with one clear line and exit code 2, not a traceback."""
    from kafka.errors import KafkaError

    from models.artifact import ArtifactError
    from streams.kafka_edge.topics import BrokerError
    from streams.tools.cluster import WorkerError

    try:
        yield
    except (ArtifactError, BrokerError, WorkerError, KafkaError, OSError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None


def _known_model(name: str) -> str:
    from models.registry import model_kind  # Torch: only once a command runs, not for --help

    with usage_errors():
        model_kind(name)
    return name


def model_option(help: str) -> Any:
    """A ``--model KIND`` option checked against the model registry as it is parsed, so every
    command that takes a kind rejects an unknown one the same way, before doing any work."""
    return typer.Option(help=help, callback=_known_model)


def chosen_generator(
    path: Path | None, generate: bool, path_name: str, **config: Any
) -> GeneratorConfig | None:
    """Exactly one of an event log and ``--generate``: the generator to draw events from, built
    from the shared generator options in ``config``, or None to read the log at ``path``."""
    if (path is None) == (not generate):
        raise typer.BadParameter(f"give {path_name} or --generate (not both)")
    return GeneratorConfig(**config) if generate else None


# How to read an event log: one set of options, declared here once and added to every command
# that reads a log by @reader_options (core/log_formats.py ReadOptions holds them).
_READ = "Reading a log"
_READER_PARAMS = {
    "fmt": (Optional[str], None, typer.Option(
        "--format", rich_help_panel=_READ,
        help=f"Log format when the file name does not say: {', '.join(FORMATS)}; for a "
        f"catalog (produce --catalog): {', '.join(CATALOG_FORMATS)}.")),
    "columns": (Optional[str], None, typer.Option(
        rich_help_panel=_READ, help="Your own CSV/TSV: which column is which field, by header "
        "name or 0-based index, e.g. user=visitorid,item=itemid,ts=timestamp,type=event. "
        "Fields: user, session (the user when no user column), item, ts, ts_offset (ms added "
        "to ts), type, value, event_id, rec_id.")),
    "type_map": (Optional[str], None, typer.Option(
        rich_help_panel=_READ, help="Raw event types onto v1 types (view, click, cart, "
        "purchase, rating, skip, impression, delete), e.g. pv=view,buy=purchase; *=click "
        "types the rows with no type column or an unlisted one. Built in: pv=view, fav/favourite=cart, buy=purchase, "
        "addtocart=cart, transaction=purchase.")),
    "ts_unit": (Optional[str], None, typer.Option(
        rich_help_panel=_READ, help="Unit of a numeric timestamp: s, ms or us "
        "(default: the format's; ms for --columns). ISO-8601 text is read as such.")),
    "ts_format": (Optional[str], None, typer.Option(
        rich_help_panel=_READ, help="strptime format of the timestamp, e.g. '%d/%m/%Y %H:%M' "
        "(naive times are UTC), or iso for ISO-8601 only.")),
    "delimiter": (Optional[str], None, typer.Option(
        rich_help_panel=_READ, help="Field delimiter: a character, 'tab', or '::' "
        "(default: the format's; ',' for --columns, tab for .tsv).")),
    "header": (Optional[bool], None, typer.Option(
        "--header/--no-header", rich_help_panel=_READ,
        help="Whether the first row names the columns (default: the format's; yes for "
        "--columns).")),
    "skip_bad_rows": (bool, False, typer.Option(
        rich_help_panel=_READ, help="Count and skip rows that are not events, and report "
        "the count, instead of stopping at the first with its file and line.")),
    "assume_sorted": (bool, False, typer.Option(
        "--sorted", rich_help_panel=_READ, help="The log is already in time order: stream it "
        "without sorting (an event that goes back in time stops the read).")),
    "sort_run": (int, 200_000, typer.Option(
        min=1, rich_help_panel=_READ, help="Events sorted in memory at once; a longer log is "
        "sorted in runs of this many on disk (in TMPDIR) and merged, so memory stays bounded.")),
}


def reader_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``command`` the reader options in place of its ``read: ReadOptions`` parameter,
    so produce, train and evaluate read logs with the same options, helps and checks."""
    hints = typing.get_type_hints(command, include_extras=True)
    kept = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(command).parameters.values() if p.name != "read"
    ]  # fmt: skip
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                          annotation=Annotated[kind, option])
        for name, (kind, default, option) in _READER_PARAMS.items()
    ]  # fmt: skip

    @functools.wraps(command)
    def with_reader(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in _READER_PARAMS}
        with usage_errors():
            read = ReadOptions(**given)
        return command(read=read, **kwargs)

    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept] + added
    with_reader.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    with_reader.__annotations__ = {p.name: p.annotation for p in params}
    return with_reader
