"""What the commands share: the one place env is read, the option types several commands take,
and the two ways a command fails (a usage error, or an operational one), each declared once."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

from core.generator import GeneratorConfig
from streams.settings import Settings

console = Console(stderr=True)

Bootstrap = Annotated[
    Optional[str],
    typer.Option(envvar="STREAMREC_BOOTSTRAP", help="Kafka bootstrap address host:port[,...]."),
]
Partitions = Annotated[
    Optional[int], typer.Option(envvar="STREAMREC_PARTITIONS", help="Partitions per topic.")
]
ModelPath = Annotated[
    Optional[Path], typer.Option(envvar="STREAMREC_MODEL_PATH", help="Model artifact directory.")
]
EVENT_LOG_HELP = "Event log: .jsonl, .csv, MovieLens u.data or ratings.dat[.gz]."
EventLog = Annotated[Optional[Path], typer.Option(help=EVENT_LOG_HELP)]
LogFormat = Annotated[Optional[str], typer.Option("--format", help="Force the log format.")]
# The generator's options, shared by produce, train and evaluate.
GenUsers = Annotated[int, typer.Option(help="Generator: number of users.")]
GenItems = Annotated[int, typer.Option(help="Generator: number of items.")]
GenEventsPerUser = Annotated[int, typer.Option(help="Generator: events per user.")]
# Training options train and evaluate share.
Seed = Annotated[int, typer.Option(help="Seed for data generation and training.")]
Dim = Annotated[int, typer.Option(min=2, help="Embedding dimension.")]
TorchThreads = Annotated[int, typer.Option(min=1, help="Torch CPU threads.")]
RecentEvents = Annotated[
    int, typer.Option(min=1, help="Newest positive events a warm-started version trains on.")
]


class SettingsFromEnv(Settings):
    """:class:`Settings` that also read ``STREAMREC_*`` env, under the arguments given.

    Only the CLI builds these, once per command at the entry point, so no layer below it reads
    the process's environment; a worker started as a child process gets its settings this way.
    """

    reads_env = True


@contextmanager
def usage_errors() -> Iterator[None]:
    """A ValueError from reading what the user typed (a flag, an env value) is a usage error:
    exit 2 with its reason, before anything has run."""
    try:
        yield
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


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
