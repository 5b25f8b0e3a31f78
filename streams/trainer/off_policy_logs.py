"""Off-policy evaluation from what a running pipeline logged: its recommendation records (each
item with its propensity) and the feedback events that answer them (``rec_id``), read from the
broker; the estimators are models/off_policy.py's."""

from __future__ import annotations

from typing import Sequence

import orjson

from core.events import InvalidEvent, parse_event
from models.off_policy import estimate, logged_lists, observed_rate, positives_of
from streams.tools.consumer import topic_messages
from streams.settings import Settings


def evaluate_logs(settings: Settings, targets: Sequence[float] | None = None,
                  idle_timeout: float = 5.0, seed: int = 0) -> dict:  # fmt: skip
    """Every epsilon-greedy record on the recommendations topic and every feedback event on the
    events topic (each read from its start until ``idle_timeout`` passes with nothing new);
    the estimate for each target epsilon (default: greedy and twice the logged epsilon), and
    the logging policy's own rate."""
    records = []
    unreadable = 0
    for message in topic_messages(settings, settings.recs_topic, True, idle_timeout):
        try:
            records.append(orjson.loads(message.value))
        except orjson.JSONDecodeError:
            unreadable += 1
    lists, other = logged_lists(records, settings.top_k)
    events = []
    for message in topic_messages(settings, settings.events_topic, True, idle_timeout):
        try:
            event = parse_event(message.value, settings.max_abs_value)
        except InvalidEvent:
            continue  # the worker dead-lettered it: no feedback
        if event.rec_id is not None:
            events.append(event)
    positives = positives_of(events, lambda e: settings.interest.weight(e) > 0, lists)
    logged_epsilon = sorted({logged.epsilon for logged in lists.values()})
    if targets is None:
        targets = [0.0, min(1.0, 2 * logged_epsilon[0])] if lists else []
    return {
        "records": len(records), "epsilon_records": len(lists), "other_records": other,
        "unreadable_records": unreadable, "feedback_events": len(events),
        "lists_with_positives": len(positives), "logged_epsilon": logged_epsilon,
        "observed_rate": observed_rate(lists, positives),
        "estimates": [estimate(lists, positives, target, seed) for target in targets] if lists
        else [],
    }
