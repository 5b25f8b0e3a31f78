"""The soak's last phases: read the stream back, wait for catch-up, check, and write the report.

Kept apart from bench/soak.py (the faults) so the checks read as one list: what the events topic
holds, each user's state against the reference, each hostile message's dead letter, each valid
event's record.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from core.report import write_report
from soak_check import (
    check_dead_letters, check_records, check_states, covers, expected_states, valid_positions,
    wait_caught_up,
)
from soak_cluster import Cluster
from soak_hostile import RETRY, Stream
from soak_read import dead_letter_of, read_topic, sort_stored, trigger_of
from soak_trace import backward_steps, explain, wrong_steps
from streams.kafka_edge.topics import USER_TABLE
from streams.kafka_edge.transactions import isolation_level
from streams.settings import Settings
from tests.helpers import item_vectors

STARTED = time.monotonic()
# Once every user has caught up, its records and dead letters were sent with it: reading them
# back takes seconds, so this deadline only bounds a run where some are missing.
# A deadline only: reading stops once every position is covered. A 30 s deadline once cut a full
# soak's read of its records short and reported the unread ones as events without a record.
OUTPUT_WAIT_S = 300.0


def say(phase: str, detail: str) -> None:
    """The progress line of a phase, with the seconds since the soak started."""
    print(f"[soak {time.monotonic() - STARTED:7.1f}s] {phase:<9} {detail}", flush=True)


def check_run(base: Settings, cluster: Cluster, stream: Stream, model: Path,
              args: argparse.Namespace, sent: int) -> dict[str, Any]:
    """Everything after the stream: read it back, wait for catch-up, compare, read the outputs."""
    bootstrap, partitions = base.bootstrap, base.partitions
    records, complete = read_topic(bootstrap, base.events_topic, partitions, 120)
    stored = sort_stored(records, stream.kind_of)
    say("read", f"{stored.events_in:,} messages in the events topic ({sent:,} sent"
        f"{'' if complete else ', NOT read to the end'}): {stored.valid_count:,} valid, "
        f"{stored.retry_count} retries, {len(stored.hostile)} hostile")
    vectors = item_vectors(model)
    expected = expected_states(stored, vectors, base, len(next(iter(vectors.values()))))
    states, waited = wait_caught_up(stored, expected, [w.port for w in cluster.live],
                                    args.drain_timeout)
    states_check = check_states(states, expected, args.dedupe_check)
    say("caught up", f"{len(expected):,} users in {waited:.1f} s: lost {states_check.lost}, "
        f"applied twice {states_check.applied_twice}, mismatches {states_check.mismatches}, "
        f"unreadable {states_check.unreadable}")
    changelog, _ = read_topic(  # as a restore reads it: an aborted transaction's values never
        bootstrap, f"{base.app_id}-{USER_TABLE}-changelog", partitions, OUTPUT_WAIT_S,
        isolation=isolation_level(base.processing_guarantee))
    backward, backward_examples = backward_steps(changelog)
    letters, _ = read_topic(bootstrap, base.dlq_topic, partitions, OUTPUT_WAIT_S,
                            covers(set(stored.hostile), lambda r: dead_letter_of(r)[0]))
    dead = check_dead_letters(letters, stored)
    outputs, _ = read_topic(bootstrap, base.recs_topic, partitions, OUTPUT_WAIT_S,
                            covers(valid_positions(stored), trigger_of))
    recs = check_records(outputs, stored)
    committed, _ = read_topic(bootstrap, base.recs_topic, partitions, OUTPUT_WAIT_S,
                              covers(valid_positions(stored), trigger_of), "read_committed")
    seen = check_records(committed, stored)
    applied_events = states_check.applied
    one_per_event = (seen["duplicate_records"] == 0 and seen["events_without_record"] == 0
                     and seen["records"] == applied_events)
    off = [e for e in states_check.examples if "error" not in e]
    steps = wrong_steps(changelog, stored, [e["user"] for e in off]) if off else {}
    trace = {e["user"]: {"wrong_steps": steps[e["user"]],
                         **explain(e["user"], e["position"], changelog, outputs, stored)}
             for e in off}
    say("outputs", f"{dead['records']} dead letters {dead['by_reason']}; {recs['records']:,} "
        f"records, {recs['events_without_record']} events without one; {len(changelog):,} "
        f"changelog values, {backward} going back in position; read_committed: "
        f"{seen['records']:,} records, {seen['duplicate_records']} duplicates, "
        f"{seen['events_without_record']} events without one")
    return {
        "events_in": stored.events_in,
        "sent": sent,
        "not_stored": sent - stored.events_in,
        "valid_events": stored.valid_count,
        "applied": states_check.applied,
        "dead_lettered": dead["by_reason"],
        "dead_letter_records": dead["records"],
        "hostile_sent": dict(stream.placed),
        "hostile": dead["kinds"],
        "hostile_not_as_expected": sorted(
            kind for kind, row in dead["kinds"].items() if row["as_expected"] != row["sent"]),
        "valid_dead_lettered": dead["valid_dead_lettered"],
        "unplanned_invalid": len(stored.unplanned),
        "retries": {"planned": stream.placed[RETRY], "in_topic": stored.retry_count,
                    "applied": states_check.retries_applied,
                    "skipped": states_check.retries_skipped, "checked": args.dedupe_check},
        "lost": states_check.lost,
        "applied_twice": states_check.applied_twice,
        "state_mismatches": states_check.mismatches,
        "unreadable_users": states_check.unreadable,
        "mismatch_examples": states_check.examples,
        "changelog_trace": trace,
        "changelog_backward_steps": backward,
        "changelog_backward_examples": backward_examples,
        **recs,
        "committed": {"records": seen["records"], "duplicate_records": seen["duplicate_records"],
                      "events_without_record": seen["events_without_record"],
                      "applied_events": applied_events, "one_per_event": one_per_event},
        "caught_up_s": round(waited, 1),
    }


def write(out: Path, name: str, report: dict[str, Any]) -> None:
    """``name``.{json,md}: the run in one row; ``name``_hostile.{json,md}: a row per kind."""
    def counts(values: dict) -> str:
        return ", ".join(f"{k} {v:,}" for k, v in sorted(values.items())) or "0"

    write_report(out, name, [report], {
        "events in": lambda r: f"{r['events_in']:,}",
        "valid": lambda r: f"{r['valid_events']:,}",
        "applied": lambda r: f"{r['applied']:,}",
        "dead-lettered": lambda r: counts(r["dead_lettered"]),
        "hostile sent": lambda r: f"{sum(r['hostile_sent'].values()):,}",
        "retries applied / skipped": lambda r: f"{r['retries']['applied']} / "
                                               f"{r['retries']['skipped']}",
        "crashes": lambda r: str(r["crashes_injected"]),
        "freeze s": lambda r: f"{r['freeze_s']:.1f}",
        "scale steps": lambda r: ", ".join(s["step"] for s in r["scale_steps"]) or "none",
        "lost": lambda r: str(r["lost"]),
        "applied twice": lambda r: str(r["applied_twice"]),
        "state mismatches": lambda r: str(r["state_mismatches"]),
        "events without record": lambda r: str(r["events_without_record"]),
        "duplicate records": lambda r: f"{r['duplicate_records']:,}",
        "max recovery s": lambda r: f"{r['max_recovery_s']:.1f}",
        "wall s": lambda r: f"{r['wall_s']:.0f}",
    })
    rows = [{"kind": kind, **row} for kind, row in report["hostile"].items()]
    write_report(out, f"{name}_hostile", rows, {
        "hostile kind": lambda r: r["kind"],
        "expected reason": lambda r: r["expected"],
        "sent": lambda r: str(r["sent"]),
        "as expected": lambda r: str(r["as_expected"]),
        "other reasons": lambda r: counts(r["other"]) if r["other"] else "",
        "not dead-lettered": lambda r: str(r["missing"]),
        "largest dead letter bytes": lambda r: f"{r['max_letter_bytes']:,}",
    })

