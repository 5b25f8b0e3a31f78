"""The configs the pipeline creates its topics with."""

from streams.kafka_edge.topics import topic_configs
from streams.settings import Settings


def test_the_dead_letter_topic_keeps_its_retention_and_the_changelog_is_compacted():
    configs = topic_configs(Settings(app_id="a", events_topic="ev", dlq_retention="2d"))
    assert configs["ev.dlq"] == {"retention.ms": str(2 * 86_400_000)}
    assert configs["a-user-interest-changelog"] == {"cleanup.policy": "compact"}
    assert topic_configs(Settings(dlq_retention="inf"))["events.dlq"] == {"retention.ms": "-1"}
    assert Settings().dlq_retention == 7 * 86400.0  # a week unless told otherwise
