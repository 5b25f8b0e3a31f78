"""What the poisoning run (bench/poisoning.py) sends, none of it with the cluster's MAC: the
findings' inputs on every internal topic and the hostile stream on the events topic."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import orjson
from kafka import KafkaProducer

from core.events import Event, encode_event
from core.item_stats import encode_item_vector
from models.artifact import load_recommender
from models.content import ENCODER_HEADER, pack_content
from streams.announcements import announcement_of
from streams.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the soak's modules beside this one
from soak_hostile import EXPECTED_REASON, hostile_message  # noqa: E402

FAKES = [f"fake-{n}" for n in range(10)]


def send(bootstrap: str, topic: str, records: list, headers: list | None = None) -> int:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_request_size=8 << 20)
    for key, value in records:
        producer.send(topic, key=key, value=value, headers=headers or [])
    producer.flush()
    producer.close()
    return len(records)


def by_item(item: str, **fields: object) -> tuple[bytes, bytes]:
    record = {"i": item, "t": "click", "ts": 1_700_000_000_000, "v": None, "p": 0, "o": 0,
              "h": None, **fields}  # fmt: skip
    return item.encode(), orjson.dumps(record)


def poison_by_item(settings: Settings, item: str) -> int:
    """Findings 1, 4 and 5 on the by-item topic."""
    records = [by_item(item, p=p) for p in range(65_540)]  # 1: a partition each
    records += [by_item(item, o=2**62)] * 4  # 4: a position far past the end
    records += [(item.encode(), b"{"), (item.encode(), b"")]  # 5: malformed, and what a user
    records += [by_item(item, t=t) for t in ("nonsense", "delete", "rating", 7, None)]  # path
    records += [by_item(item, v=1e300), by_item(item, ts=10**16), by_item(item, p=-1),
                by_item(item, o=-5), by_item("other", **{}), by_item(item, h="x"),
                by_item(item, i=3), by_item(item, u="AAAA", m=1)]  # fmt: skip
    records[-4] = (item.encode(), records[-4][1])  # an item that is not its key
    return send(settings.bootstrap, settings.item_events_topic, records)


def poison_announcements(settings: Settings, served: Path, outside: Path) -> int:
    """Finding 2: a zero sha256, an artifact outside the root, a rollback, and garbage."""
    said = announcement_of(served)
    records = [said.model_copy(update={"version": "forged-zero", "sha256": "0" * 64}),
               announcement_of(outside),
               announcement_of(settings.model_path)]  # the rollback to v1, unsigned
    values = [a.model_dump_json().encode() for a in records] + [b"garbage"]
    return send(settings.bootstrap, settings.model_updates_topic, [(b"serve", v) for v in values])


def poison_vectors(settings: Settings, served: Path, real_item: str) -> dict[str, int]:
    """Finding 3: long vectors for new items, a count that would pin an item, other sizes."""
    model = load_recommender(served)
    norms = np.linalg.norm(model.vectors, axis=1)
    fake = (model.vectors[int(norms.argmax())] * 1.45).astype("<f4").tobytes()
    records = [(item.encode(), encode_item_vector(model.tag, 1, fake)) for item in FAKES]
    records.append((real_item.encode(), encode_item_vector(model.tag, 4_000_000_000, fake)))
    wide = np.ones(model.dim + 3, "<f4").tobytes()
    records.append((real_item.encode(), encode_item_vector(model.tag, 4_000_000_001, wide)))
    huge = np.full(65_535, 0.001, "<f4").tobytes()
    records += [(f"huge-{n}".encode(), encode_item_vector(model.tag, 1, huge)) for n in range(200)]
    content = [(item.encode(), pack_content(np.ones(384, np.float32))) for item in FAKES]
    return {settings.item_vectors_topic: send(settings.bootstrap, settings.item_vectors_topic,
                                              records),
            settings.content_topic: send(settings.bootstrap, settings.content_topic, content,
                                         [(ENCODER_HEADER, b"all-MiniLM-L6-v2")])}  # fmt: skip


def hostile_events(settings: Settings, like: Event) -> Counter:
    """The soak's hostile kinds, a 1 MB event id and duplicate keys; their expected reasons."""
    expected: Counter = Counter()
    records = []
    for n, kind in enumerate(EXPECTED_REASON):
        records.append(hostile_message(kind, n, like))
        expected[EXPECTED_REASON[kind]] += 1
    obj = orjson.loads(encode_event(like))
    records.append((like.user_id.encode(), orjson.dumps({**obj, "event_id": "e" * 1_000_000})))
    expected["bad_event_id"] += 1
    duplicated = encode_event(like)[:-1] + b',"type":"delete"}'
    records.append((like.user_id.encode(), duplicated))
    expected["bad_json"] += 1
    send(settings.bootstrap, settings.events_topic, records)
    return expected
