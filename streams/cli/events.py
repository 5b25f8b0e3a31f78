"""The commands at either end of the pipeline: produce events, tail recommendations."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from core.log_formats import ReadOptions
from streams.cli.options import (
    CATALOG_HELP,
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
    catalog: Annotated[bool, typer.Option(help=CATALOG_HELP)] = False,
    bootstrap: Bootstrap = None,
) -> None:
    """Send events to the events topic, keyed by user_id, in event-time order, showing the
    rate as it goes. A log is streamed: memory stays bounded however long it is. With
    --catalog, send an item catalog's items to the items topic instead."""
    from itertools import islice

    from streams.tools.producer import load_source, produce_events, progress_bar

    settings = load_settings(bootstrap=bootstrap)
    if catalog:
        return produce_catalog(settings, source, read, rate, limit)
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


def produce_catalog(settings, source: Optional[Path], read: ReadOptions, rate: float,
                    limit: Optional[int]) -> None:  # fmt: skip
    """`produce --catalog`: the items of SOURCE to the items topic (compacted, keyed by id)."""
    from itertools import islice

    from streams.kafka_edge.topics import ensure_topics
    from streams.tools.producer import catalog_messages, produce_events, progress_bar

    if source is None:
        raise typer.BadParameter("--catalog needs the catalog file as SOURCE")
    with user_errors():
        ensure_topics(settings)  # the items topic is compacted: made so before its first record
        messages = catalog_messages(source, read, note)
        if limit is not None:
            messages = islice(messages, limit)
        with progress_bar(console) as progress:
            sent = produce_events(settings, messages, rate, progress, topic=settings.items_topic)
    console.print(f"sent {sent} items to {settings.items_topic} at {settings.bootstrap}")


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
