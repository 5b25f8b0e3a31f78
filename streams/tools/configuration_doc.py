"""docs/configuration.md, written from :class:`streams.settings.Settings` and nothing else.

Every ``STREAMREC_*`` variable is a field of the settings object; its default, its bounds and
its meaning are that field's. The page groups them by what a user is doing, and
tests/unit/test_configuration_doc.py fails when the page differs from what :func:`render`
writes, or when a field is in no group: the page cannot drift from the code (``make docs``
writes it again).
"""

from __future__ import annotations

import json
import math
import typing
from pathlib import Path

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from streams.settings import Settings

PAGE = Path("docs/configuration.md")
ENV_PREFIX = "STREAMREC_"
GROUPS: dict[str, tuple[str, ...]] = {
    "Broker and topics": (
        "bootstrap", "app_id", "events_topic", "recs_topic", "model_updates_topic",
        "partitions", "replication", "standby_replicas", "broker_engine",
        "processing_guarantee",
    ),
    "Interest and its forgetting": (
        "half_life_s", "half_life_events", "event_weights", "rating_center", "history_len",
        "dedupe_window",
    ),
    "The model and the lists it serves": (
        "model_path", "model_root", "dim", "top_k", "emit", "interest_weight",
        "sequence_weight", "rerank_candidates", "explain", "covisit_weight", "rules_weight",
        "content_weight", "sessions_weight",
    ),
    "Items: statistics and online learning": (
        "item_stats", "popularity_half_life_s", "item_learning", "item_learning_rate",
        "item_negatives", "item_prior_updates",
    ),
    "Exploration, cold start and diversity": (
        "explore", "explore_budget", "explore_epsilon", "explore_pool", "explore_new_items",
        "cold_start_events", "mmr_lambda", "mmr_candidates",
    ),
    "Bad input and dead letters": ("max_future_skew_s", "max_abs_value", "dlq_max_bytes"),
    "Retention and deletion": ("user_ttl", "dlq_retention", "recs_retention", "forget_within"),
    "Security": (
        "api_token", "internal_key", "security_protocol", "sasl_mechanism", "sasl_username",
        "sasl_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile",
    ),
    "The worker process and tuning": (
        "state_dir", "web_port", "web_host", "advertised_host", "torch_threads", "batch_size",
        "user_slice", "batch_within_s", "fetch_max_wait_ms", "session_timeout_s",
        "heartbeat_interval_s", "rebalance_timeout_s", "commit_interval_s",
    ),
}
DURATIONS = {"user_ttl", "dlq_retention", "recs_retention", "forget_within"}  # 6h, 30d or s

HEADER = """# Configuration

<!-- Written by `make docs` from streams/settings.py (streams/tools/configuration_doc.py);
     edit the settings' descriptions, not this page: a test fails when the two differ. -->

Every setting is an environment variable `STREAMREC_<NAME>`, read once by the CLI; a command's
flags override it (`streamrec <command> --help`). Nothing below the CLI reads the environment:
`Settings(...)` in code is exactly what it is given. Lists of values (`STREAMREC_EVENT_WEIGHTS`)
are JSON; durations take `3600`, `6h`, `30d` or `inf`; "unset" means leave the variable out.
"""


def render() -> str:
    """The whole page, as :data:`PAGE` holds it."""
    fields = Settings.model_fields
    parts = [HEADER]
    for title, names in GROUPS.items():
        parts.append(f"\n## {title}\n\n| variable | default | allowed | meaning |\n"
                     "|---|---|---|---|\n")  # fmt: skip
        parts += [_row(name, fields[name]) for name in names]
    return "".join(parts)


def ungrouped() -> list[str]:
    """Fields of :class:`Settings` in no group, or in two (each must be in one)."""
    placed = [name for names in GROUPS.values() for name in names]
    return sorted({n for n in Settings.model_fields if placed.count(n) != 1}
                  | (set(placed) - set(Settings.model_fields)))


def _row(name: str, field: FieldInfo) -> str:
    meaning = (field.description or "").replace("|", "\\|").replace("<", "&lt;")
    return (f"| `{ENV_PREFIX}{name.upper()}` | {_default(name, field)} | {_allowed(name, field)} "
            f"| {meaning} |\n")  # fmt: skip


def _default(name: str, field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return f"`{json.dumps(value, separators=(',', ':'))}`"
    if isinstance(value, float) and math.isinf(value):
        return "`inf`"
    if name in DURATIONS:
        return f"`{value:g}` s"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def _allowed(name: str, field: FieldInfo) -> str:
    choices = [typing.get_args(a) for a in (field.annotation, *typing.get_args(field.annotation))
               if typing.get_origin(a) is typing.Literal]  # fmt: skip
    if choices:
        return ", ".join(f"`{c}`" for c in choices[0])
    bounds = []
    for rule in field.metadata:
        for kind, attribute, sign in ((Ge, "ge", "≥"), (Gt, "gt", ">"), (Le, "le", "≤"),
                                      (Lt, "lt", "<")):  # fmt: skip
            if isinstance(rule, kind):
                bounds.append(f"{sign} {getattr(rule, attribute):g}")
        if getattr(rule, "min_length", None):
            bounds.append(f"{rule.min_length}+ characters")
    if name in DURATIONS:
        bounds.append("a duration")
    return ", ".join(bounds)
