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
