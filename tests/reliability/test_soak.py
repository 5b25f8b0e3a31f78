"""The soak, small: 4,500 events and ~100 hostile messages through two SIGKILLs, a broker freeze
longer than the group's session timeout, a zombie (a worker SIGSTOPped until the other owns its
partitions, then SIGCONTed), on Apache Kafka a broker SIGKILL and restart, and a scale
1 -> 2 -> 1. No event is lost or applied twice, every hostile message is dead-lettered with its
reason, every valid event has a record.

It runs bench/soak.py as a user would (its own local broker: the faults stop and kill it, so it
cannot be the session's) and reads its JSON report; the full-size run is the command itself.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import Settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# Hostile kinds (bench/soak_hostile.py) the worker does not yet dead-letter as issue 15 wants:
# reported, not asserted. The test fails once one of them is handled, to be taken off the list.
NOT_YET: set[str] = set()
# As bench/soak.py's DEDUPE_CHECKED: a retry (same event_id) the worker applies is a failure.
DEDUPE_CHECKED = True


def run_soak(model_path: Path, out: Path, timeout: float = 300) -> tuple[dict, str]:
    command = [
        sys.executable, str(ROOT / "bench" / "soak.py"),
        "--events", "4500", "--users", "60", "--rate", "30", "--partitions", "2",
        "--kills", "2", "--freeze-s", "7", "--hostile", "100", "--drain-timeout", "30",
        # seed 22 puts the kills at 23% and 38%, before the broker kill, freeze and zombie at
        # 50%, whose recovery on Apache Kafka takes a third of the stream
        "--seed", "22",
        "--dedupe-check" if DEDUPE_CHECKED else "--no-dedupe-check",
        "--model", str(model_path), "--workdir", str(out / "work"), "--out", str(out),
    ]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)  # the soak stops its workers and broker on SIGTERM
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the soak ran past {timeout:.0f}s:\n{output[-6000:]}")
    print(output)
    assert process.returncode in (0, 1), f"the soak failed to run:\n{output[-6000:]}"
    [report] = json.loads((out / "soak.json").read_text())
    return report, output


@pytest.mark.timeout(420)  # the soak's own deadline is 300 s
def test_small_soak_loses_nothing_and_applies_nothing_twice(model_path: Path, tmp_path: Path):
    report, output = run_soak(model_path, tmp_path)
    why = (report["mismatch_examples"], report["changelog_trace"], report["kills"])
    assert report["lost"] == 0, why
    assert report["applied_twice"] == 0, why
    assert report["state_mismatches"] == 0 and report["unreadable_users"] == 0, why
    assert report["events_without_record"] == 0, report["without_record_examples"]
    assert report["valid_dead_lettered"] == {}
    # every message the soak sent is in the events topic, so every one is expected of the worker
    assert report["not_stored"] == 0 and report["unplanned_invalid"] == 0
    retries = report["retries"]
    assert retries["in_topic"] == retries["planned"] > 0
    assert retries["applied"] + retries["skipped"] == retries["planned"]

    # the faults happened, and the workers went down only when the soak took them down
    assert report["crashes_injected"] == 2
    assert all(kill["mid_stream"] for kill in report["kills"]), report["kills"]
    assert [step["step"] for step in report["scale_steps"]] == ["1 -> 2", "2 -> 1"]
    assert report["freeze_s"] >= 7
    assert len(report["zombies"]) == 1 and report["zombies"][0]["mid_stream"], report["zombies"]
    if report["broker"] == "kafka":  # Tansu keeps its log in memory: no restart to survive
        assert [k["mid_stream"] for k in report["broker_kills"]] == [True], report["broker_kills"]
        # exactly-once: the second kill froze its worker inside a transaction first, and a
        # read_committed reader sees one record per applied event all the same
        assert report["kills"][1]["inside_transaction"] is True, report["kills"]
        assert report["committed"]["one_per_event"], report["committed"]
    assert report["unexpected_exits"] == [] and report["fault_errors"] == []

    hostile = report["hostile"]
    assert set(hostile) == set(report["hostile_sent"]) - {"retry"}, "every kind sent and stored"
    wrong = {kind: row for kind, row in hostile.items()
             if kind not in NOT_YET and row["as_expected"] != row["sent"]}
    assert not wrong, f"hostile messages not dead-lettered as expected: {wrong}"
    # the ~300 KB message's dead letter is cut to what the broker takes
    assert hostile["huge_bad_field"]["max_letter_bytes"] <= Settings().dlq_max_bytes
    handled = {kind for kind in NOT_YET if hostile[kind]["as_expected"] == hostile[kind]["sent"]}
    assert not handled, f"now dead-lettered as expected: take {handled} off NOT_YET"


def test_the_soak_check_sees_loss_double_apply_and_a_wrong_state(monkeypatch):
    """The checks the soak passes on would pass vacuously if they could not fail: each kind
    of fault, put in by hand, is counted (no broker)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    from soak_check import check_states, expected_states
    from soak_read import Stored

    from core.events import Event
    from tests.helpers import reference_state

    settings = Settings(half_life_s=3600.0, history_len=10)
    vectors = {"i1": [1.0, 0.0], "i2": [0.0, 1.0]}

    def events(user: str) -> list[tuple[Event, tuple[int, int]]]:
        return [(Event(user, f"i{1 + n % 2}", "click", 1_700_000_000_000 + n * 60_000, None,
                       f"{user}-{n}"), (0, 10 * n)) for n in range(6)]

    stored = Stored(valid={u: events(u) for u in ("ok", "short", "over", "wrong", "retried")})
    retry = stored.valid["retried"][2][0]
    stored.retries = {"retried": [(retry, (0, 21))]}
    expected = expected_states(stored, vectors, settings, 2)

    def state(pairs: list) -> dict:
        return {**reference_state([e for e, _ in pairs], vectors, settings, 2), "position": [0, 0]}

    states = {
        "ok": state(stored.valid["ok"]),
        "short": state(stored.valid["short"][:-1]),
        "over": state([*stored.valid["over"], stored.valid["over"][-1]]),
        "wrong": {**state(stored.valid["wrong"]), "recent": ["i9"]},
        "retried": state(sorted([*stored.valid["retried"], (retry, (0, 21))],
                                key=lambda pair: pair[1])),
    }
    checked = check_states(states, expected, dedupe_checked=True)
    assert (checked.lost, checked.applied_twice, checked.mismatches) == (1, 2, 1)
    assert (checked.retries_applied, checked.retries_skipped) == (1, 0)
    apart = check_states(states, expected, dedupe_checked=False)
    assert (apart.lost, apart.applied_twice, apart.mismatches) == (1, 1, 1)
    assert (apart.retries_applied, apart.retries_skipped) == (1, 0)
