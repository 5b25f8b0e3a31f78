"""How long what the pipeline keeps of users stays: the TTL of a silent user's state, the
retention of the topics that hold users' records and raw input, the bound on a deleted user's
bytes in the table changelogs, and the largest dead letter kept whole.

Apart from streams/settings.py because they are one idea (docs/architecture.md, "How long a deleted
user's bytes stay" states them): :class:`streams.settings.Settings` mixes them in, so
``settings.user_ttl`` and the ``STREAMREC_*`` variables read as before.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from core.durations import parse_duration


class RetentionSettings(BaseModel):
    """The retention fields of :class:`streams.settings.Settings`, which mixes this in."""

    user_ttl: float | None = Field(
        None,
        gt=0,
        description="Evict a user inactive longer than this in event time (3600, 6h, 30d); "
        "unset = keep forever",
    )
    dlq_retention: float | None = Field(
        7 * 86400.0,
        gt=0,
        description="Retention of the dead-letter topic when the pipeline creates it "
        "(3600, 6h, 7d, inf)",
    )
    recs_retention: float | None = Field(
        7 * 86400.0,
        gt=0,
        description="Retention of the recommendations topic when the pipeline creates it "
        "(3600, 6h, 7d, inf): a deleted user's records leave it within about 1.1x this",
    )
    forget_within: float = Field(
        2 * 86400.0,
        gt=0,
        description="How long a deleted or evicted user's old states and tombstone may stay "
        "in the table changelogs the pipeline creates (3600, 6h, 2d): half of it each is "
        "their max.compaction.lag.ms and delete.retention.ms (a worker whose data dir is "
        "older than that half may miss a tombstone: start it on an empty one)",
    )
    dlq_max_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="A dead letter larger than this is stored truncated, with its size, "
        "offset and SHA-256 in headers (the broker would refuse it whole)",
    )
    @field_validator("user_ttl", "dlq_retention", "recs_retention", "forget_within",
                     mode="before")  # fmt: skip
    @classmethod
    def _duration(cls, value: object) -> object:
        """A duration as people type it (``6h``, ``30d``), or seconds."""
        if isinstance(value, str):
            return None if value.strip() == "" else parse_duration(value)
        return value
