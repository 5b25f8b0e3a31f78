"""Read the recommendation topic with kafka-python and show it (live table or JSON lines)."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Iterator

import orjson
from kafka import KafkaConsumer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from streams.kafka_edge.security import kafka_python_kwargs
from streams.kafka_edge.transactions import read_isolation
from streams.settings import Settings


def topic_messages(settings: Settings, topic: str, from_beginning: bool,
                   idle_timeout: float | None) -> Iterator[Any]:
    """``topic``'s messages (kafka-python's records) until ``idle_timeout`` seconds pass
    without one (None: forever); no consumer group, nothing committed."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=settings.bootstrap,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        consumer_timeout_ms=int(idle_timeout * 1000) if idle_timeout else float("inf"),
        **kafka_python_kwargs(settings),
        **read_isolation(settings.processing_guarantee),  # what an aborted transaction sent: never
    )
    try:
        yield from consumer
    finally:
        consumer.close()


def recommendation_records(
    settings: Settings, from_beginning: bool, idle_timeout: float | None
) -> Iterator[dict]:
    """Decoded records until ``idle_timeout`` seconds pass without one (None: forever)."""
    for message in topic_messages(settings, settings.recs_topic, from_beginning, idle_timeout):
        yield orjson.loads(message.value)


def render(latest: OrderedDict[str, dict], received: int, rows: int = 15) -> Table:
    table = Table(title=f"latest recommendations ({received} records)", expand=True)
    for column in ("user", "event time", "top items (score)", "top item because of", "model"):
        table.add_column(column, overflow="fold")
    for record in list(latest.values())[-rows:]:
        items = ", ".join(f"{i['item_id']} ({i['score']:.2f})" for i in record["items"][:5])
        because = (
            ", ".join(b["item_id"] for b in record["items"][0].get("because", []))
            if record["items"]
            else ""
        )
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record["event_ts"] / 1000))
        table.add_row(record["user_id"], when, items, because, record["model_version"])
    return table


def tail_recommendations(
    settings: Settings,
    from_beginning: bool,
    max_records: int | None,
    idle_timeout: float | None,
    plain: bool,
    console: Console,
) -> int:
    received = 0
    latest: OrderedDict[str, dict] = OrderedDict()
    records = recommendation_records(settings, from_beginning, idle_timeout)
    with Live(render(latest, 0), console=console, disable=plain, refresh_per_second=4) as live:
        for record in records:
            received += 1
            if plain:
                print(orjson.dumps(record).decode(), flush=True)
            else:
                latest.pop(record["user_id"], None)
                latest[record["user_id"]] = record
                live.update(render(latest, received))
            if max_records is not None and received >= max_records:
                break
    return received
