"""Preprocessing steps on hand-made frames, plus a property test of the split."""

from __future__ import annotations

import logging

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from recgen.data import DataConfig, Dataset, sort_ids
from recgen.data.preprocess import kcore, prepare
from recgen.data.raw import RawData


def _raw(events, family="movielens", items=None):
    cols = ["user_id", "item_id", "timestamp", "rating"]
    inter = pl.DataFrame(
        [(str(u), str(i), int(t), float(r)) for u, i, t, r in events], schema=cols, orient="row"
    ).with_columns(pl.col("timestamp").cast(pl.Int64))
    if items is None:
        items = pl.DataFrame({"item_id": sorted({str(e[1]) for e in events})}).with_columns(
            title=pl.col("item_id") + "!"
        )
    return RawData(inter, items, family)


def _ds(prep):
    return Dataset("t", prep.interactions, prep.items, prep.train, prep.valid, prep.test)


def test_dedupe_keeps_earliest_event():
    events = [(1, 1, 50, 1), (1, 1, 10, 5), (1, 2, 20, 3), (1, 3, 30, 3), (1, 1, 40, 2)]
    prep = prepare(_raw(events), DataConfig(kcore=0), "t")
    assert prep.report["duplicates_dropped"] == 2
    row = prep.interactions.filter(pl.col("item_id") == "1").row(0, named=True)
    assert (row["timestamp"], row["rating"]) == (10, 5.0)
    assert _ds(prep).sequence("1") == ["1", "2", "3"]


def test_min_rating():
    events = [(1, i, i, 5 if i != 2 else 1) for i in range(1, 6)]
    prep = prepare(_raw(events), DataConfig(kcore=0, min_rating=4), "t")
    assert "2" not in prep.interactions["item_id"].to_list()
    assert prep.report["low_rating_dropped"] == 1


def test_kcore_is_iterative():
    # k=2. Item 'c' has 2 users (u1, u3); u3 only has 1 other event on 'd' (d: only u3).
    # Round 1 drops item d (1 event) → u3 has 1 event → dropped → item c has 1 user → dropped.
    rows = [
        ("u1", "a"),
        ("u1", "b"),
        ("u1", "c"),
        ("u2", "a"),
        ("u2", "b"),
        ("u3", "c"),
        ("u3", "d"),
    ]
    inter = pl.DataFrame(rows, schema=["user_id", "item_id"], orient="row")
    out = kcore(inter, 2)
    assert sorted(out.rows()) == [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "b")]


def test_short_users_dropped_and_logged(caplog):
    events = [(1, i, i, 3) for i in range(1, 5)] + [(2, 1, 1, 3), (2, 2, 2, 3)]
    with caplog.at_level(logging.INFO, logger="recgen.data.preprocess"):
        prep = prepare(_raw(events), DataConfig(kcore=0), "t")
    assert prep.report["short_users_dropped"] == 1
    assert "dropped 1 users with fewer than 3 interactions" in caplog.text
    assert prep.interactions["user_id"].unique().to_list() == ["1"]


def test_ties_broken_by_numeric_item_id():
    events = [(1, 10, 5, 3), (1, 9, 5, 3), (1, 100, 5, 3), (1, 2, 1, 3)]
    ds = _ds(prepare(_raw(events), DataConfig(kcore=0), "t"))
    assert ds.sequence("1") == ["2", "9", "10", "100"]
    assert ds.item_ids == ["2", "9", "10", "100"]


def test_drop_untitled():
    # item 2: null title, item 3: blank title, item 5: absent from the item table
    items = pl.DataFrame(
        {"item_id": ["1", "2", "3", "4", "6"], "title": ["a", None, " ", "d", "f"]}
    )
    events = [(u, i, 10 * i + u, 3) for u in (1, 2) for i in range(1, 7)]
    prep = prepare(_raw(events, items=items), DataConfig(kcore=0, drop_untitled=True), "t")
    assert prep.items["item_id"].to_list() == ["1", "4", "6"]
    assert prep.report["untitled_items_dropped"] == 3
    keep = prepare(_raw(events, items=items), DataConfig(kcore=0), "t")
    assert keep.items["title"].to_list() == ["a", "2", "3", "d", "5", "f"]


def test_sort_ids():
    assert sort_ids(["10", "9", "1", "9"]) == ["1", "9", "10"]
    assert sort_ids(["b", "10", "9"]) == ["10", "9", "b"]
    assert sort_ids(["01", "1", "2"]) == ["01", "1", "2"]
    assert sort_ids([]) == []


events_strategy = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 12), st.integers(0, 30), st.integers(1, 5)),
    min_size=1,
    max_size=80,
)


@settings(max_examples=60, deadline=None)
@given(events_strategy)
def test_split_properties(events):
    raw = _raw(events)
    try:
        prep = prepare(raw, DataConfig(kcore=0), "t")
    except Exception as e:  # only allowed failure: nothing left
        assert type(e).__name__ == "EmptyDatasetError"
        return
    ds = _ds(prep)
    for u in ds.user_ids:
        seq = ds.sequence(u)
        assert len(seq) >= 3 and len(seq) == len(set(seq))
        assert prep.test.filter(pl.col("user_id") == u)["item_id"].to_list() == seq[-1:]
        assert prep.valid.filter(pl.col("user_id") == u)["item_id"].to_list() == seq[-2:-1]
        assert prep.train.filter(pl.col("user_id") == u)["item_id"].to_list() == seq[:-2]
    # chronological: timestamps are non-decreasing along each sequence
    ts = prep.interactions.group_by("user_id").agg(pl.col("timestamp").diff().min().alias("d"))
    assert ts["d"].fill_null(0).min() >= 0
    assert prep.train.height + prep.valid.height + prep.test.height == prep.interactions.height
    assert ds.item_ids == sort_ids(ds.item_ids)
