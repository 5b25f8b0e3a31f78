"""The one settings object, frozen and passed down; only the CLI reads env (``STREAMREC_*``).

``Settings(...)`` takes exactly what it is given: a developer's shell cannot change what a test,
a library call or the evaluator's copies run with. The CLI's ``SettingsFromEnv`` (streams/cli)
turns the env source on, once, at the entry point (docs/configuration.md lists the variables,
written from these fields).
Each layer below takes the small config it reads (:attr:`Settings.interest`, :attr:`Settings.blend`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.interest import DEFAULT_EVENT_WEIGHTS, InterestConfig
from models.blend import Blend
from models.exploration import POLICIES, Exploration
from models.item_learning import ItemLearning
from models.slates import ListRules
from streams.settings_names import DerivedNames
from streams.settings_retention import RetentionSettings
from streams.settings_runtime import RuntimeSettings
from streams.settings_security import SecuritySettings
from streams.steps.parse import StepConfig


class Settings(DerivedNames, SecuritySettings, RetentionSettings, RuntimeSettings, BaseSettings):
    """Everything a worker, producer or trainer needs; names persist as topic and table names
    (the topic names and addresses derived from these fields: streams/settings_names.py; who
    may talk to the broker, the API and the internal topics: streams/settings_security.py; how
    long what it keeps of users stays: streams/settings_retention.py; how a worker runs on the
    broker: streams/settings_runtime.py)."""

    model_config = SettingsConfigDict(env_prefix="STREAMREC_", frozen=True, extra="forbid")

    bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap address host:port[,...]")
    app_id: str = Field(
        "streamrec", description="Faust app id: consumer group and changelog prefix"
    )
    events_topic: str = Field(
        "events", description="The input topic; its dead letters go to <this>.dlq and its "
        "internal topics are named after it"
    )
    recs_topic: str = Field("recommendations", description="The output topic of records")
    model_updates_topic: str = Field(
        "model-updates", description="Where model versions to serve are announced (1 partition)"
    )
    partitions: int = Field(4, ge=1, description="Partitions of the events topic and user table")
    replication: int = Field(1, ge=1, description="Replication factor of every topic it creates")
    standby_replicas: int = Field(
        1,
        ge=0,
        description="Standby copies of each table partition other workers keep warm from the "
        "changelog, so a survivor takes over without recovering it (0 = off)",
    )
    dim: int = Field(32, ge=2, le=1024, description="Embedding dimension of trained models")
    half_life_s: float = Field(
        7 * 86400.0, gt=0, description="Interest half-life in event-time seconds; inf = no decay"
    )
    half_life_events: float | None = Field(
        None,
        gt=0,
        description="Decay by the user's own event count instead of event time: an interest "
        "halves after this many later events of the user (overrides half_life_s)",
    )
    event_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS),
        description="What each event type weighs in a user's interest, as JSON (a negative "
        "weight pushes the interest away from the item)",
    )
    rating_center: float = Field(
        3.0, description="A rating weighs its type's weight times (value - this)"
    )
    top_k: int = Field(10, ge=1, le=1000, description="Items per record")
    history_len: int = Field(
        50,
        ge=1,
        le=1000,
        description="Recent items kept per user (the sequence model reads them; match its max_len)",
    )
    emit: Literal["every", "coalesce"] = Field(
        "every", description="A record per event, or one per user per micro-batch"
    )
    interest_weight: float = Field(1.0, description="Weight of the decayed interest in the query")
    sequence_weight: float = Field(1.0, description="Weight of the sequence model in the query")
    rerank_candidates: int = Field(
        50, ge=0, description="Candidates the artifact's ranker re-ranks, if it has one (0 = off)"
    )
    explain: int = Field(3, ge=0, le=20, description="Recent items explaining each item (0 = off)")
    covisit_weight: float | None = Field(
        None, ge=0, description="Weight of the artifact's co-visits (items seen near the user's "
        "last 20 in users' streams) fused with the model's list, its rank weighing 1; "
        "unset: the weight the artifact was fitted with; 0 = off",
    )
    rules_weight: float | None = Field(
        None, ge=0, description="Weight of the artifact's sequential rules (items that followed "
        "the user's newest item) fused with the model's list; unset: the artifact's; 0 = off",
    )
    content_weight: float | None = Field(
        None, ge=0, description="Weight of the artifact's content neighbours (catalog items "
        "alike in text to the user's last 5, weighed by how few events each has) fused with "
        "the model's list; unset: the artifact's; 0 = off",
    )
    sessions_weight: float | None = Field(
        None, ge=0, description="Weight of the artifact's session neighbours (the items of the "
        "users whose last 20 items, as of the version, are most like the user's: V-SKNN) "
        "fused with the model's list; unset: the artifact's; 0 = off",
    )
    max_future_skew_s: float = Field(
        300.0,
        ge=0,
        description="Dead-letter (future_ts) an event whose time is further than this ahead of "
        "its broker timestamp",
    )
    max_abs_value: float = Field(
        1e6, gt=0, description="Dead-letter (bad_value) an event whose |value| is larger"
    )
    dedupe_window: int = Field(
        32,
        ge=0,
        le=1000,
        description="A user's last N event_ids are kept in the state; an event repeating one "
        "of them (a producer retry) is skipped. 0 = off",
    )
    item_stats: bool = Field(
        True,
        description="Keep per-item statistics (impressions, positives, decayed popularity, "
        "first seen, Beta posterior) from the events repartitioned by item; GET /items/ID/stats",
    )
    item_learning: bool = Field(
        False,
        description="Learn item vectors online from positive events (needs item_stats): a new "
        "item is recommendable from its first engagements; scoring then depends on when an "
        "update arrived, so a replay no longer reproduces the records exactly",
    )
    item_learning_rate: float = Field(
        1.0, gt=0, le=100, description="Online item step size (models/item_learning.py)"
    )
    item_negatives: int = Field(
        8, ge=1, le=1000, description="Sampled negative items per online item step"
    )
    item_prior_updates: float = Field(
        50.0, ge=0, description="Online updates a catalog item's trained vector counts as "
        "(the larger, the slower it moves; a new item starts at 0)",
    )
    explore: Literal[POLICIES] = Field(  # type: ignore[valid-type]
        "greedy", description="How a list explores (models/exploration.py): greedy (the "
        "model's top K), epsilon, ucb or thompson; every item of a record says its propensity",
    )
    explore_budget: int = Field(
        1, ge=0, le=1000, description="At most this many slots of a list explore (the last ones)"
    )
    explore_epsilon: float = Field(
        0.1, ge=0, le=1, description="epsilon: the chance each exploring slot shows a drawn item"
    )
    explore_pool: int = Field(
        100, ge=1, le=10_000, description="Candidates after the top K an exploring slot draws from"
    )
    explore_new_items: int = Field(
        20, ge=0, description="An item with fewer impressions is new: explored first by epsilon, "
        "its source 'new' (needs item_stats)",
    )
    cold_start_events: int = Field(
        -1, ge=-1, description="A user whose state holds at most this many events, or no "
        "interest yet, gets the trending items (decayed popularity, needs item_stats); 0: only "
        "those with no interest yet; -1: off (the worker then follows no item statistics "
        "unless its exploration reads them)",
    )
    mmr_lambda: float = Field(
        1.0, ge=0, le=1, description="Diversity: relevance's weight against similarity to the "
        "items above when the model's candidates are re-ranked by MMR (1 = off, the model's order)",
    )
    mmr_candidates: int = Field(50, ge=1, le=10_000, description="Candidates MMR chooses from")
    popularity_half_life_s: float = Field(
        86400.0, gt=0, description="Half-life of an item's decayed popularity, event time (s)"
    )
    model_path: Path = Field(Path("artifacts/model"), description="Model artifact directory")
    model_root: Path | None = Field(None, description="Announced model versions are served "
                                    "only from under this directory; default model_path's")
    state_dir: Path = Field(Path("state"), description="Worker data dir (RocksDB tables)")
    web_port: int = Field(
        6066, ge=0, le=65535, description="The worker's HTTP port (/stats/, /metrics, the "
        "query API); one per worker on a machine"
    )
    web_host: str = Field(
        "127.0.0.1", description="Interface the web server binds (0.0.0.0 in a container)"
    )
    advertised_host: str | None = Field(
        None,
        description="Host other workers reach this one's web server at (query routing); "
        "default web_host, or the machine's hostname when binding 0.0.0.0",
    )

    # Off here: Settings(...) is exactly what it is given. The CLI's SettingsFromEnv turns it on.
    reads_env: ClassVar[bool] = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        **other_sources: PydanticBaseSettingsSource,  # .env and secrets files: never read
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings) if cls.reads_env else (init_settings,)

    @field_validator("event_weights")
    @classmethod
    def _weights_finite(cls, weights: dict[str, float]) -> dict[str, float]:
        bad = [name for name, w in weights.items() if not math.isfinite(w)]
        if bad:
            raise ValueError(f"event weights must be finite numbers: {bad}")
        return weights

    @model_validator(mode="after")
    def _learning_needs_item_stats(self) -> Settings:
        if self.item_learning and not self.item_stats:
            raise ValueError("item_learning needs item_stats: the item path learns the vectors")
        if self.user_slice and self.processing_guarantee != "exactly_once":
            raise ValueError("user_slice needs exactly_once: a commit must stop at the first "
                             "event held back")
        return self

    @property
    def blend(self) -> Blend:
        return Blend(
            self.interest_weight, self.sequence_weight, self.rerank_candidates, self.explain,
            self.covisit_weight, self.rules_weight, self.content_weight, self.sessions_weight,
        )

    @property
    def list_rules(self) -> ListRules:
        return ListRules(Exploration(self.explore, self.explore_budget, self.explore_epsilon,
                                     pool=self.explore_pool, new_items=self.explore_new_items),
                         self.cold_start_events, self.mmr_lambda, self.mmr_candidates)  # fmt: skip

    @property
    def interest(self) -> InterestConfig:
        return InterestConfig(
            dict(self.event_weights),
            self.rating_center,
            self.half_life_ms,
            self.half_life_events,
            self.history_len,
            self.dedupe_window,
            None if self.user_ttl is None else self.user_ttl * 1000.0,
        )

    @property
    def models_root(self) -> Path:
        """The directory announced artifacts must lie under, resolved."""
        return (self.model_root or self.model_path.resolve().parent).resolve()

    @property
    def steps(self) -> StepConfig:
        """What a worker's pure batch steps read (streams/steps)."""
        return StepConfig(self.interest, self.top_k, self.emit, self.max_future_skew_s * 1000.0,
                          self.max_abs_value,
                          replay_records=self.processing_guarantee != "exactly_once")  # fmt: skip

    @property
    def item_learning_config(self) -> ItemLearning:
        return ItemLearning(rate=self.item_learning_rate, negatives=self.item_negatives,
                            prior_updates=self.item_prior_updates)

    @property
    def half_life_ms(self) -> float:
        return self.half_life_s * 1000.0
