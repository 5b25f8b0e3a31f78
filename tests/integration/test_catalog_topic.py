"""`streamrec produce --catalog`: a catalog file's items reach the compacted items topic, keyed by
item id, as v1 records; a bad row stops the send, naming file and line."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from core.items import parse_item
from streams.cli import app
from streams.kafka_edge.topics import admin

pytestmark = pytest.mark.integration


def env_of(settings) -> dict[str, str]:  # noqa: ANN001
    return {"STREAMREC_BOOTSTRAP": settings.bootstrap, "STREAMREC_EVENTS_TOPIC":
            settings.events_topic, "STREAMREC_APP_ID": settings.app_id,
            "STREAMREC_PARTITIONS": str(settings.partitions)}  # fmt: skip


def test_a_catalog_goes_to_the_compacted_items_topic_keyed_by_item_id(settings, tmp_path):
    catalog = tmp_path / "movies.dat"
    catalog.write_text("1::Toy Story (1995)::Animation|Comedy\n2::Heat (1995)::Crime\n"
                       "1::Toy Story (1995)::Animation|Children's|Comedy\n", encoding="latin-1")
    result = CliRunner().invoke(app, ["produce", str(catalog), "--catalog"], env=env_of(settings))
    assert result.exit_code == 0, result.output
    assert f"sent 3 items to {settings.items_topic}" in result.output

    consumer = KafkaConsumer(settings.items_topic, bootstrap_servers=settings.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5_000)  # fmt: skip
    try:
        records = [record for record, _ in zip(consumer, range(3))]
    finally:
        consumer.close()
    newest = {r.key: parse_item(r.value) for r in sorted(records, key=lambda r: r.offset)}
    assert sorted(newest) == [b"1", b"2"]
    assert newest[b"1"].categories == ("Animation", "Children's", "Comedy")
    client = admin(settings.bootstrap)
    try:
        described = client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, settings.items_topic)])
    finally:
        client.close()
    [configs] = [by_name[settings.items_topic] for by_name in described.values()]
    assert configs["cleanup.policy"]["value"] == "compact"


def test_a_bad_catalog_row_stops_the_send_with_its_file_and_line(settings, tmp_path):
    catalog = tmp_path / "movies.dat"
    catalog.write_text("1::Toy Story (1995)::Comedy\n2::::\n", encoding="latin-1")
    result = CliRunner().invoke(app, ["produce", str(catalog), "--catalog"], env=env_of(settings))
    assert result.exit_code != 0
    assert "movies.dat:2: no_content" in result.output
