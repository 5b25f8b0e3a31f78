"""The lifelong trainer's intake and cadence without a broker."""

from __future__ import annotations

from types import SimpleNamespace

from core.events import Event, encode_event
from streams.settings import Settings
from streams.trainer.lifelong import Trainer, TrainerConfig

NOW_MS = 1_700_000_000_000


def record(event: Event, offset: int, key: bytes | None = None) -> SimpleNamespace:
    return SimpleNamespace(key=key or event.user_id.encode(), value=encode_event(event),
                           partition=0, offset=offset, timestamp=NOW_MS, topic="events",
                           headers=[])


def test_the_trainer_learns_what_the_workers_apply_and_forgets_who_asks(model_path, tmp_path):
    trainer = Trainer(Settings(model_path=model_path),
                      TrainerConfig(tmp_path / "versions", every_events=3), model_path)
    clicks = [Event(f"u{n % 2}", f"i{n}", "click", NOW_MS - 1000 + n) for n in range(4)]
    trainer.take([record(e, n) for n, e in enumerate(clicks)])
    trainer.take([
        record(Event("u9", "i1", "click", NOW_MS), 4, key=b"someone-else"),  # dead-lettered
        record(Event("u8", "i1", "click", NOW_MS + 3_600_000), 5),  # an hour ahead: too
        record(Event("u1", "", "delete", NOW_MS), 6),
    ])
    assert trainer.invalid == 2
    assert [e.user_id for e in trainer.buffer.events()] == ["u0", "u0"]
    assert trainer.due()  # 4 new events, every 3
