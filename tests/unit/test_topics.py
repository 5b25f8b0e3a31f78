"""The configs the pipeline creates its topics with."""

from streams.kafka_edge.topics import topic_configs
from streams.settings import Settings


def test_the_dead_letter_topic_keeps_its_retention_and_the_changelog_is_compacted():
    configs = topic_configs(Settings(app_id="a", events_topic="ev", dlq_retention="2d"))
    assert configs["ev.dlq"] == {"retention.ms": str(2 * 86_400_000),
                                 "segment.ms": str(2 * 8_640_000)}  # fmt: skip
    assert configs["a-user-interest-changelog"]["cleanup.policy"] == "compact"
    assert topic_configs(Settings(dlq_retention="inf"))["events.dlq"] == {"retention.ms": "-1"}
    assert Settings().dlq_retention == 7 * 86400.0  # a week unless told otherwise


def test_a_deleted_users_bytes_have_a_bound_on_every_topic_that_holds_them():
    """Issue 32 #7: the changelogs are compacted, tombstones included, within ``forget_within``,
    and the recommendations topic (keyed by user) keeps its retention, in short segments."""
    settings = Settings(app_id="a", recs_topic="recs", forget_within="6h", recs_retention="1d")
    configs = topic_configs(settings)
    for table in ("user-interest", "item-stats"):
        changelog = configs[f"a-{table}-changelog"]
        assert changelog["max.compaction.lag.ms"] == changelog["delete.retention.ms"] == str(
            3 * 3_600_000)  # fmt: skip
    assert configs["recs"] == {"retention.ms": "86400000", "segment.ms": "8640000"}
    assert Settings().recs_retention == 7 * 86400.0 and Settings().forget_within == 2 * 86400.0
    forever = topic_configs(Settings(app_id="b", forget_within="inf"))
    assert forever["b-user-interest-changelog"] == {"cleanup.policy": "compact"}
