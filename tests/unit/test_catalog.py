"""core/catalog.py: every catalog format read back from a small file written here in it, and
bad rows named by file and line, or counted and skipped."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from core.catalog import ML_100K_GENRES, CatalogReader, catalog_mapping
from core.items import Item
from core.log_formats import ReadOptions
from core.log_reader import BadRow

ITEMS = [
    Item("1", "Toy Story (1995)", "", ("Animation", "Children's", "Comedy"), (), 788918400000),
    Item("2", "GoldenEye (1995)", "", ("Action", "Adventure", "Thriller"), (), 788918400000),
    Item("267", "unknown", "", ("unknown",), (), None),
    Item("30", "Belle de jour (1967)", "", ("Drama",), (), -94694400000),  # before 1970
    Item("1682", "Scream of Stone (Schrei aus Stein) (1991)", "", ("Drama",), (), 826243200000),
]


def read(path: Path, **options: object) -> list[Item]:
    return list(CatalogReader(path, catalog_mapping(path, ReadOptions(**options))))


def u_item_row(item: Item) -> str:
    """A line of MovieLens 100K's u.item: id|title|release date|video date|URL|19 genre flags."""
    dates = {788918400000: "01-Jan-1995", 826243200000: "08-Mar-1996",
             -94694400000: "01-Jan-1967", None: ""}
    flags = "|".join("1" if genre in item.categories else "0" for genre in ML_100K_GENRES)
    return f"{item.item_id}|{item.title}|{dates[item.ts]}||http://x/{item.item_id}|{flags}\n"


def test_movielens_100k_u_item_with_its_genre_flags_and_release_dates(tmp_path):
    path = tmp_path / "u.item"
    path.write_text("".join(map(u_item_row, ITEMS)), encoding="latin-1")
    assert read(path) == ITEMS


def test_movielens_1m_movies_dat_and_the_later_movies_csv(tmp_path):
    dat = tmp_path / "movies.dat"
    dat.write_text("".join(f"{i.item_id}::{i.title}::{'|'.join(i.categories)}\n" for i in ITEMS),
                   encoding="latin-1")  # fmt: skip
    undated = [i._replace(ts=None) for i in ITEMS]
    assert read(dat) == undated
    csv = tmp_path / "movies.csv"
    csv.write_text('movieId,title,genres\n1,"Toy Story (1995)",Animation|Children\'s|Comedy\n'
                   "3,Heat (1995),(no genres listed)\n")  # fmt: skip
    assert read(csv) == [undated[0], Item("3", "Heat (1995)")]


def test_jsonl_of_v1_records_and_a_gzipped_csv_of_ones_own_columns(tmp_path):
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_text('{"item_id":"a","text":"A post about cats","tags":["cats"]}\n\n'
                     '{"item_id":"b","title":"Dogs","ts":5}\n')  # fmt: skip
    assert read(jsonl) == [Item("a", "", "A post about cats", (), ("cats",)),
                           Item("b", "Dogs", ts=5)]  # fmt: skip
    mine = tmp_path / "catalog.tsv.gz"
    with gzip.open(mine, "wt") as out:
        out.write("sku\tname\tblurb\tdept\tadded\n"
                  "s1\tKettle\tBoils water fast\tKitchen|Electric\t1700000000\n")  # fmt: skip
    assert read(mine, columns="item=sku,title=name,text=blurb,categories=dept,ts=added",
                delimiter="tab", ts_unit="s") == [
        Item("s1", "Kettle", "Boils water fast", ("Kitchen", "Electric"), (), 1700000000000)]


def test_a_bad_row_names_file_and_line_or_is_counted_when_asked(tmp_path):
    path = tmp_path / "movies.dat"
    path.write_text("1::Toy Story (1995)::Comedy\n2::::\n3::Heat (1995)\n4::Up::Animation\n",
                    encoding="latin-1")  # fmt: skip
    with pytest.raises(BadRow, match=r"movies\.dat:2: no_content"):
        read(path)
    reader = CatalogReader(path, catalog_mapping(path, ReadOptions()), skip_bad_rows=True)
    assert [i.item_id for i in reader] == ["1", "4"]
    assert reader.bad_rows == 2 and "movies.dat:2" in reader.first_bad


def test_an_unknown_catalog_file_asks_for_a_format_and_a_mapping_must_name_the_item(tmp_path):
    with pytest.raises(ValueError, match="--format"):
        catalog_mapping(tmp_path / "things.txt", ReadOptions())
    with pytest.raises(ValueError, match="must map item"):
        catalog_mapping(tmp_path / "things.txt", ReadOptions(columns="title=0"))
