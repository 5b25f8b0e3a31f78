"""The ceiling the pipeline is measured against: Faust agents that only pass events through.

    python bench/passthrough.py worker      (started by bench/throughput.py, configured by env)

BENCH_MODE=faust-naive: one ``topic.send`` per message (the way Faust's README forwards).
BENCH_MODE=faust-batched: the pipeline's own consumption (``take_events``) and sending
(``app.producer.send``), each event decoded and re-encoded, nothing else: the pipeline with no
state and no model. The peer's pass-through is bench/quix_passthrough.py.
"""

from __future__ import annotations

import os

import faust
import orjson

from streams.worker.app import new_faust_app
from streams.cli.options import SettingsFromEnv

settings = SettingsFromEnv()  # bench/throughput.py passes the run's settings in env
mode = os.environ.get("BENCH_MODE", "faust-batched")
out_name = os.environ["BENCH_OUT_TOPIC"]


def reencode(value: bytes) -> bytes:
    return orjson.dumps(orjson.loads(value))


def faust_app() -> faust.App:
    app = new_faust_app(settings, store="memory://", app_id=f"{settings.app_id}-{mode}")
    source = app.topic(settings.events_topic, key_serializer="raw", value_serializer="raw")
    out = app.topic(out_name, key_serializer="raw", value_serializer="raw")

    if mode == "faust-naive":

        @app.agent(source)
        async def forward(stream: faust.StreamT) -> None:
            async for event in stream.events():
                await out.send(key=event.message.key, value=reencode(event.message.value))

    else:

        @app.agent(source)
        async def forward_batched(stream: faust.StreamT) -> None:
            async for batch in stream.take_events(
                settings.max_batch, within=settings.batch_within_s
            ):
                producer = app.producer
                for event in batch:
                    value = reencode(event.message.value)
                    await producer.send(out_name, event.message.key, value, None, None, None)

    return app


if __name__ == "__main__":
    faust_app().main()
