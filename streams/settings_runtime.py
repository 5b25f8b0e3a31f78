"""How a worker runs on the broker: its batches, its fetches, its exactly-once guarantee and its
consumer group's timing.

Apart from streams/settings.py because they are one idea (tuning: docs/operations.md, "Tuning and
broker notes"): :class:`streams.settings.Settings` mixes them in, so ``settings.batch_size`` and
the ``STREAMREC_*`` variables read as before.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

# a hot user's events a batch takes: small, so their backlog adds little to each batch the other
# users wait for, at the cost of the hot user's own pace (one slice per batch)
DEFAULT_USER_SLICE = 20


class RuntimeSettings(BaseModel):
    """The runtime fields of :class:`streams.settings.Settings`, which mixes this in."""

    batch_size: int = Field(
        0, ge=0, description="Max events per batch (one fetch of the events topic); 0: 500, "
        "or 2000 under exactly_once, where each batch is a transaction whose fixed round trips "
        "a larger batch spreads over more events (a batch grows only while events wait)",
    )
    user_slice: int | None = Field(
        None, ge=0, description="Most events of one user a batch takes (0: no limit; unset: "
        f"{DEFAULT_USER_SLICE} under exactly_once, none at least once): a hot user's backlog is "
        "worked off in slices while other users' events go ahead of it "
        "(streams/kafka_edge/batch_plane.py; bench/hotkey.py measures both sides). Exactly-once "
        "only: at least once a limit is refused",
    )
    batch_within_s: float = Field(
        0.02, gt=0, description="Max wait to fill a batch of the pass-through benchmark"
    )
    torch_threads: int = Field(1, ge=1, description="Torch intra-op threads per worker")
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        description="Longest a consumer fetch waits for data (Faust fixes 1500). Under "
        "exactly-once a worker's latency at low load follows it; on the embedded Tansu it adds "
        "latency per hop and, set too low, a fetch rate that saturates it as the log grows "
        "(streams/kafka_edge/compat.py; docs/benchmarks.md has both)",
    )
    broker_engine: Literal["auto", "kafka", "tansu"] = Field("auto", description="Which "
        "broker this is, for Tansu's workarounds (streams/kafka_edge/tansu.py): auto asks its "
        "cluster id (Tansu's is tansu_cluster); kafka or tansu says so without asking")
    processing_guarantee: Literal["exactly_once", "at_least_once"] = Field(
        "exactly_once",
        description="exactly_once: each batch's records, dead letters, changelog and input "
        "offsets commit in one Kafka transaction, and a read_committed consumer sees each record "
        "once (needs a broker with transactions: Apache Kafka, not Tansu). at_least_once: a "
        "crash may send a batch's records again (drop them by rec_id); state is exactly-once "
        "either way",
    )
    # Consumer-group timing: Faust's defaults (60 / 3 / 60 s) keep a worker waiting far longer for
    # its first assignment on the embedded broker (bench/ready_time.py, docs/benchmarks.md).
    session_timeout_s: float = Field(
        6.0, gt=0, description="A worker silent this long leaves the consumer group"
    )
    heartbeat_interval_s: float = Field(
        1.0, gt=0, description="How often a worker tells the group it is alive"
    )
    rebalance_timeout_s: float = Field(
        6.0, gt=0, description="How long the group waits for its members to rejoin"
    )
    commit_interval_s: float = Field(
        2.8, gt=0, description="How often Faust commits acked offsets (its own default, 2.8)"
    )

    @property
    def max_user_slice(self) -> int:
        """``user_slice``, or the guarantee's default when it is unset (0: no limit)."""
        if self.user_slice is not None:
            return self.user_slice
        return DEFAULT_USER_SLICE if self.processing_guarantee == "exactly_once" else 0

    @property
    def max_batch(self) -> int:
        """``batch_size``, or the guarantee's default when it is 0."""
        if self.batch_size:
            return self.batch_size
        return 2000 if self.processing_guarantee == "exactly_once" else 500
