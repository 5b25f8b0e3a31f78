"""The commands at either end of the pipeline: produce events, tail recommendations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from core.log_formats import ReadOptions
from streams.cli.options import (
    EVENT_LOG_HELP,
    Bootstrap,
    GenEventsPerUser,
    GenItems,
    GenUsers,
    chosen_generator,
    console,
    load_settings,
    note,
    reader_options,
    user_errors,
)


@reader_options
def produce(
    source: Annotated[Optional[Path], typer.Argument(help=EVENT_LOG_HELP)] = None,
    generate: Annotated[
        bool, typer.Option(help="Use the synthetic drifting-interest generator.")
    ] = False,
    users: GenUsers = 200,
    items: GenItems = 500,
    events_per_user: GenEventsPerUser = 50,
    seed: Annotated[int, typer.Option(help="Generator seed.")] = 0,
    read: ReadOptions = ReadOptions(),
    rate: Annotated[
        float, typer.Option(min=0, help="Events per second; 0 = as fast as possible.")
    ] = 0.0,
    limit: Annotated[Optional[int], typer.Option(help="Send at most this many events.")] = None,
    bootstrap: Bootstrap = None,
) -> None:
    """Send events to the events topic, keyed by user_id, in event-time order, showing the
    rate as it goes. A log is streamed: memory stays bounded however long it is."""
    from itertools import islice

    from streams.tools.producer import load_source, produce_events, progress_bar

    settings = load_settings(bootstrap=bootstrap)
    generator = chosen_generator(
        source, generate, "an event log path",
        n_users=users, n_items=items, events_per_user=events_per_user, seed=seed,
    )
    with user_errors():
        messages = load_source(source, read, generator, note)
        if limit is not None:
            messages = islice(messages, limit)
        with progress_bar(console) as progress:
            sent = produce_events(settings, messages, rate, progress)
    console.print(f"sent {sent} events to {settings.events_topic} at {settings.bootstrap}")


def tail(
    bootstrap: Bootstrap = None,
    from_beginning: Annotated[bool, typer.Option(help="Start at the oldest record.")] = False,
    max_records: Annotated[Optional[int], typer.Option(help="Exit after this many.")] = None,
    idle_timeout: Annotated[
        Optional[float], typer.Option(help="Exit after this many seconds with no record.")
    ] = None,
    plain: Annotated[
        bool, typer.Option(help="One JSON record per line instead of a table.")
    ] = False,
) -> None:
    """Consume the recommendation topic and show it live."""
    from streams.tools.consumer import tail_recommendations

    settings = load_settings(bootstrap=bootstrap)
    with user_errors():
        count = tail_recommendations(
            settings, from_beginning, max_records, idle_timeout, plain, console
        )
    console.print(f"{count} recommendation records")
