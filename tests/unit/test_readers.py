"""Every log format round-trips: events -> a small file in that format (written here) -> the
reader -> the same events, in event-time order; and a bad row is named by file and line, or
counted and skipped."""

from __future__ import annotations

import gzip
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import pytest

from core.events import Event, encode_event
from core.sources import EventLog, ReadOptions, read_events

N = 60
DAY_MS = 86_400_000


def _iso(ts: int) -> str:
    moment = datetime.fromtimestamp(ts / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _events(seed: int, types: tuple[str, ...], unit_ms: int, value: bool = False) -> list[Event]:
    """Shuffled events with ids that need no escaping and times whole in ``unit_ms``."""
    rng = random.Random(seed)
    return [
        Event(str(rng.randrange(1, 9)), str(rng.randrange(100, 140)), rng.choice(types),
              rng.randrange(1_300_000_000, 1_500_000_000) * 1000 // unit_ms * unit_ms,
              rng.randrange(1, 11) / 2 if value else None)
        for _ in range(N)
    ]  # fmt: skip


Writer = Callable[[list[Event]], str]
RAW = {"view": "pv", "cart": "cart", "purchase": "buy"}  # Taobao's behaviours
RR = {"view": "view", "cart": "addtocart", "purchase": "transaction"}  # RetailRocket's
CASES: dict[str, tuple[str, ReadOptions, list[Event], Writer]] = {
    "movielens-100k": ("u.data", ReadOptions(), _events(1, ("rating",), 1000, True),
                       lambda es: "".join(f"{e.user_id}\t{e.item_id}\t{e.value}\t{e.ts // 1000}\n"
                                          for e in es)),
    "movielens-1m": ("ratings.dat.gz", ReadOptions(), _events(2, ("rating",), 1000, True),
                     lambda es: "".join(f"{e.user_id}::{e.item_id}::{e.value}::{e.ts // 1000}\n"
                                        for e in es)),
    "movielens-csv": ("ratings.csv", ReadOptions(), _events(3, ("rating",), 1000, True),
                      lambda es: "userId,movieId,rating,timestamp\n" + "".join(
                          f"{e.user_id},{e.item_id},{e.value},{e.ts // 1000}\n" for e in es)),
    "taobao": ("UserBehavior.csv", ReadOptions(), _events(4, tuple(RAW), 1000),
               lambda es: "".join(f"{e.user_id},{e.item_id},77,{RAW[e.type]},{e.ts // 1000}\n"
                                  for e in es)),
    "yoochoose-clicks": ("yoochoose-clicks.dat", ReadOptions(), _events(5, ("click",), 1),
                         lambda es: "".join(f"{e.user_id},{_iso(e.ts)},{e.item_id},0\n"
                                            for e in es)),
    "yoochoose-buys": ("yoochoose-buys.dat", ReadOptions(), _events(6, ("purchase",), 1),
                       lambda es: "".join(f"{e.user_id},{_iso(e.ts)},{e.item_id},1200,2\n"
                                          for e in es)),
    "yoochoose-sessions": ("yoochoose-clicks-100k_test.txt", ReadOptions(),
                           _events(7, ("click",), 1),
                           lambda es: "SessionId\tItemId\tTime\n" + "".join(
                               f"{e.user_id}\t{e.item_id}\t{e.ts / 1000:.3f}\n" for e in es)),
    "diginetica": ("train-item-views.csv", ReadOptions(), _events(8, ("view",), 1),
                   lambda es: "session_id;user_id;item_id;timeframe;eventdate\n" + "".join(
                       f"{e.user_id};NA;{e.item_id};{e.ts % DAY_MS};"
                       f"{datetime.fromtimestamp(e.ts // 1000, timezone.utc).date()}\n"
                       for e in es)),
    "retailrocket": ("events.csv", ReadOptions(fmt="retailrocket"), _events(9, tuple(RR), 1),
                     lambda es: "timestamp,visitorid,event,itemid,transactionid\n" + "".join(
                         f"{e.ts},{e.user_id},{RR[e.type]},{e.item_id},"
                         f"{'5' if e.type == 'purchase' else ''}\n" for e in es)),
    "v1-csv": ("e.csv", ReadOptions(), _events(10, ("view", "click", "rating"), 1, True),
               lambda es: "user_id,item_id,type,ts,value\n" + "".join(
                   f"{e.user_id},{e.item_id},{e.type},{e.ts},{e.value}\n" for e in es)),
    "jsonl": ("e.jsonl", ReadOptions(), _events(11, ("view", "cart"), 1),
              lambda es: "".join(encode_event(e).decode() + "\n" for e in es)),
    "own-named-columns": (
        "mine.tsv",
        ReadOptions(columns="user=who,item=what,ts=when,type=kind",
                    type_map="seen=view,got=purchase", ts_format="%d/%m/%Y %H:%M:%S"),
        _events(12, ("view", "purchase"), 1000),
        lambda es: "what\twho\tkind\twhen\n" + "".join(
            f"{e.item_id}\t{e.user_id}\t{'seen' if e.type == 'view' else 'got'}\t"
            f"{datetime.fromtimestamp(e.ts / 1000, timezone.utc):%d/%m/%Y %H:%M:%S}\n"
            for e in es)),
    "own-indices-no-header": (
        "mine.txt",
        ReadOptions(columns="session=2,item=0,ts=1", ts_unit="us", delimiter="|", header=False,
                    type_map="*=click"),
        _events(13, ("click",), 1),
        lambda es: "".join(f"{e.item_id}|{e.ts * 1000}|{e.user_id}\n" for e in es)),
}


def _write(path: Path, text: str) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="latin-1") as out:
            out.write(text)
    else:
        path.write_text(text)


@pytest.mark.parametrize("case", CASES)
def test_every_format_round_trips_in_time_order(tmp_path, case):
    name, options, events, write = CASES[case]
    _write(tmp_path / name, write(events))
    expected = sorted(events, key=lambda e: e.ts)  # stable: ties keep file order
    assert read_events(tmp_path / name, options) == expected
    spilled = ReadOptions(**{**vars(options), "sort_run": 7})  # the same through disk runs
    assert list(EventLog(tmp_path / name, spilled)) == expected


def test_real_sample_shapes_are_detected(tmp_path):
    """The file names of the public logs (and the shared samples) pick their presets."""
    _write(tmp_path / "UserBehavior_head.csv", "1,2,3,fav,1511544070\n")
    assert read_events(tmp_path / "UserBehavior_head.csv")[0].type == "cart"  # fav: see FORMATS
    _write(tmp_path / "sample_train-item-views.csv",
           "session_id;user_id;item_id;timeframe;eventdate\n1;NA;81766;526309;2016-05-09\n")
    event = read_events(tmp_path / "sample_train-item-views.csv")[0]
    assert (event.user_id, event.ts) == ("1", 1_462_752_000_000 + 526_309)


def test_a_bad_row_is_named_by_file_and_line(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,4.5,100\n1,3,four,200\n1,4,3,300\n")
    with pytest.raises(ValueError, match=r"ratings.csv:3: bad_value: value .four. is not a number"):
        read_events(path)
    (tmp_path / "u.data").write_text("1\t2\t3\t100\n1\t2\n")
    with pytest.raises(ValueError, match=r"u.data:2: short_row"):
        read_events(tmp_path / "u.data")
    (tmp_path / "UserBehavior.csv").write_text("1,2,3,poke,100\n")
    with pytest.raises(ValueError, match=r"UserBehavior.csv:1: unknown_type.*poke"):
        read_events(tmp_path / "UserBehavior.csv")


def test_bad_rows_are_counted_and_skipped_when_asked(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,2,4.5,100\n1,3,four,200\n"
                    ",4,3,300\n1,5,3,-7\n1,6,2,50\n")
    log = EventLog(path, ReadOptions(skip_bad_rows=True))
    assert [e.item_id for e in log] == ["6", "2"]
    assert log.summary().startswith("skipped 3 bad rows; the first: ")
    assert "ratings.csv:3" in log.summary()


def test_a_missing_column_and_a_bad_mapping_are_usage_errors(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="no column 'when'"):
        read_events(path, ReadOptions(columns="user=a,item=b,ts=when"))
    with pytest.raises(ValueError, match="must map item"):
        read_events(path, ReadOptions(columns="user=a,ts=c"))
    with pytest.raises(ValueError, match="not v1 types"):
        read_events(path, ReadOptions(columns="user=a,item=b,ts=c", type_map="x=like"))
    with pytest.raises(ValueError, match="needs column indices"):
        read_events(path, ReadOptions(columns="user=a,item=b,ts=c", header=False))
    (tmp_path / "mine.bak").write_text("1,2,3\n")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_events(tmp_path / "mine.bak")


def test_sorted_streams_a_sorted_log_and_stops_where_it_is_not(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t3\t100\n1\t3\t3\t200\n1\t4\t3\t150\n")
    log = iter(EventLog(path, ReadOptions(assume_sorted=True)))
    assert [next(log).ts, next(log).ts] == [100_000, 200_000]
    with pytest.raises(ValueError, match=r"u.data:3: ts 150000 is before .*drop --sorted"):
        next(log)


def test_iso_timestamps_and_a_format_name_for_options(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("u,i,t\na,b,2024-05-01T10:00:00+02:00\na,c,2024-05-01T07:00:00Z\n")
    events = read_events(path, ReadOptions(columns="user=u,item=i,ts=t", ts_format="iso"))
    assert [(e.item_id, e.ts) for e in events] == [("c", 1714546800000), ("b", 1714550400000)]
    (tmp_path / "events.csv").write_text("timestamp,visitorid,event,itemid,transactionid\n"
                                         "5,v,addtocart,i,\n")
    assert read_events(tmp_path / "events.csv", "retailrocket")[0].type == "cart"


def test_unreadable_rows_and_text_are_named_too(tmp_path):
    path = tmp_path / "ratings.csv"
    huge = '"' + "x" * 200_000 + '"'  # over csv's field size limit
    path.write_text(f"userId,movieId,rating,timestamp\n1,2,4,100\n1,{huge},4,100\n1,3,4,50\n")
    with pytest.raises(ValueError, match=r"ratings.csv:3: unreadable row"):
        read_events(path)
    assert [e.item_id for e in read_events(path, ReadOptions(skip_bad_rows=True))] == ["3", "2"]
    path.write_bytes(b"userId,movieId,rating,timestamp\n1,2,4,100\n1,\xff\xfe,4,100\n")
    with pytest.raises(ValueError, match=r"ratings.csv: after line \d+: not utf-8 text"):
        read_events(path)
