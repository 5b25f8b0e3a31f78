"""The peer's pass-through: Quix Streams (librdkafka) decoding and re-encoding each event.

    .venv-peer/bin/python bench/quix_passthrough.py BOOTSTRAP GROUP IN_TOPIC OUT_TOPIC STATE_DIR \
        [at-least-once|exactly-once]

Runs in its own venv (bench/peer-requirements.txt); started by bench/throughput.py.
"""

from __future__ import annotations

import sys
import time

import orjson
from quixstreams import Application


def main(bootstrap: str, group: str, source_name: str, out_name: str, state_dir: str,
         guarantee: str = "at-least-once") -> None:  # fmt: skip
    app = Application(
        broker_address=bootstrap,
        processing_guarantee=guarantee,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        auto_create_topics=False,
    )
    source = app.topic(source_name, key_deserializer="bytes", value_deserializer="bytes")
    out = app.topic(out_name, key_serializer="bytes", value_serializer="bytes")
    frame = app.dataframe(source).apply(lambda value: orjson.dumps(orjson.loads(value)))
    # Stamp records when sent, as Faust does; Quix would otherwise copy the input's timestamp.
    frame = frame.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    frame.to_topic(out)
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:])
