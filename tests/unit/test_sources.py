import gzip

import pytest

from core.generator import GeneratorConfig, generate
from core.sources import load_events, read_events


def test_movielens_formats_are_sorted_and_converted(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t200\n2\t20\t3\t100\n")
    events = read_events(tmp_path / "u.data")
    assert [(e.user_id, e.item_id, e.ts, e.value) for e in events] == [
        ("2", "20", 100_000, 3.0), ("1", "10", 200_000, 5.0)]
    with gzip.open(tmp_path / "ratings.dat.gz", "wt", encoding="latin-1") as f:
        f.write("1::10::4::300\n")
    assert read_events(tmp_path / "ratings.dat.gz")[0].type == "rating"


def test_jsonl_and_csv(tmp_path):
    (tmp_path / "e.jsonl").write_text('{"user_id":"a","item_id":"b","type":"view","ts":5}\n')
    (tmp_path / "e.csv").write_text("user_id,item_id,type,ts,value\na,b,rating,7,4\n")
    assert read_events(tmp_path / "e.jsonl")[0].ts == 5
    assert read_events(tmp_path / "e.csv")[0].value == 4.0


def test_bad_lines_name_their_place(tmp_path):
    (tmp_path / "e.jsonl").write_text('{"user_id":"a"}\n')
    with pytest.raises(ValueError, match="e.jsonl:1"):
        read_events(tmp_path / "e.jsonl")


def test_generator_is_deterministic_and_time_sorted():
    config = GeneratorConfig(n_users=5, events_per_user=10, seed=3)
    first, second = generate(config), generate(config)
    assert first == second and len(first) == 50
    assert [e.ts for e in first] == sorted(e.ts for e in first)


def test_load_events_reads_a_log_or_runs_the_generator(tmp_path):
    (tmp_path / "e.jsonl").write_text('{"user_id":"a","item_id":"b","type":"view","ts":5}\n')
    assert load_events(tmp_path / "e.jsonl", None, None) == read_events(tmp_path / "e.jsonl")
    config = GeneratorConfig(n_users=2, events_per_user=3)
    assert load_events(None, None, config) == generate(config)
    for path, config in ((None, None), (tmp_path / "e.jsonl", config)):
        with pytest.raises(ValueError, match="exactly one"):
            load_events(path, None, config)


READER_FLAGS = {"--format", "--columns", "--type-map", "--ts-unit", "--ts-format", "--delimiter",
                "--header", "--skip-bad-rows", "--sorted", "--sort-run"}


def test_produce_train_and_evaluate_take_the_same_reader_options():
    import typer

    from streams.cli import app

    commands = typer.main.get_command(app).commands
    for name in ("produce", "train", "evaluate"):
        flags = {f for p in commands[name].params for f in p.opts}
        assert READER_FLAGS <= flags, (name, READER_FLAGS - flags)


def test_evaluate_reads_your_own_log_and_reports_the_skipped_rows(tmp_path):
    from typer.testing import CliRunner

    from streams.cli import app

    rows = [f"s{n % 7}|item{n % 11}|{1_600_000_000 + n}|seen" for n in range(300)]
    rows.insert(5, "s1|item2|yesterday|seen")
    (tmp_path / "mine.psv").write_text("\n".join(rows) + "\n")
    result = CliRunner().invoke(app, [
        "evaluate", "--data", str(tmp_path / "mine.psv"),
        "--columns", "session=0,item=1,ts=2,type=3",
        "--no-header", "--delimiter", "|", "--ts-unit", "s", "--type-map", "seen=click",
        "--skip-bad-rows", "--policy", "popularity", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad rows; the first: " in result.output
    assert "mine.psv:6: bad_ts" in result.output
    assert "300 events, 7 users, 11 items" in result.output


def test_produce_streams_a_log_instead_of_listing_it(tmp_path):
    from streams.tools.producer import load_source

    (tmp_path / "u.data").write_text("1\t10\t5\t200\n2\t20\t3\t100\n")
    messages = load_source(tmp_path / "u.data", None, None)
    assert not isinstance(messages, list)
    assert [key for key, _ in messages] == [b"2", b"1"]
