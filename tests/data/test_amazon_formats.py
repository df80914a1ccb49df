"""Amazon 2018 json lines, 2023 jsonl (ms timestamps) and 2023 benchmark csv; plain and gzip."""

from __future__ import annotations

import polars as pl
import pytest

from recgen.data import load_dataset

MS = 1_600_000_000_000  # 2020-09-13 in milliseconds


def _reviews_2018(n_users=6, n_items=6):
    """Every user reviews every item (a 6-core), plus one exact duplicate, later in time."""
    recs = [
        {"reviewerID": f"U{u}", "asin": f"B{i:03d}", "overall": 5.0, "unixReviewTime": 1000 + 10 * i + u,
         "style": {"Format:": "Paperback"}, "vote": "2"}
        for u in range(n_users) for i in range(n_items)
    ]  # fmt: skip
    recs.append({"reviewerID": "U0", "asin": "B000", "overall": 1.0, "unixReviewTime": 99999})
    return recs


def test_amazon_2018_gzip_with_meta(tmp_path, raw):
    raw.write(tmp_path / "Books.json.gz", raw.jsonl(_reviews_2018()), gz=True)
    meta = [
        {"asin": "B000", "title": "Café, Crème & Co", "category": ["Books", "Food & Drink"]},
        {"asin": "B001", "title": "  Second  ", "category": []},
        {"asin": "B001", "title": "duplicate meta row", "category": ["X"]},
        {"asin": "ZZZ", "title": "not reviewed"},
    ]
    raw.write(tmp_path / "meta_Books.json.gz", raw.jsonl(meta), gz=True)
    ds = load_dataset(tmp_path / "Books.json.gz")
    assert ds.info["format"] == "amazon-2018" and ds.name == "Books"
    assert ds.info["report"]["duplicates_dropped"] == 1
    assert (ds.num_users, ds.num_items, ds.interactions.height) == (6, 6, 36)
    assert ds.title("B000") == "Café, Crème & Co" and ds.title("B001") == "Second"
    assert ds.title("B002") == "B002"  # no metadata: the asin
    rows = {r["item_id"]: r for r in ds.items.iter_rows(named=True)}
    assert rows["B000"]["category"] == "Books > Food & Drink"
    assert "ZZZ" not in ds.item_index
    # the duplicate kept the earliest event (rating 5.0 at t=1000)
    first = ds.interactions.filter((pl.col("user_id") == "U0") & (pl.col("item_id") == "B000"))
    assert first["timestamp"].to_list() == [1000] and first["rating"].to_list() == [5.0]
    assert ds.user_ids == sorted(ds.user_ids)  # non-numeric ids: lexicographic


def test_amazon_2018_default_kcore_is_5(tmp_path, raw):
    recs = _reviews_2018(n_users=6, n_items=6)
    # a user with 4 reviews and an item with 3 reviewers: both removed by the 5-core
    recs += [{"reviewerID": "Sparse", "asin": f"B00{i}", "overall": 3.0, "unixReviewTime": 5000 + i}
             for i in range(4)]  # fmt: skip
    recs += [{"reviewerID": f"U{u}", "asin": "RARE", "overall": 3.0, "unixReviewTime": 6000 + u}
             for u in range(3)]  # fmt: skip
    raw.write(tmp_path / "Toys.json", raw.jsonl(recs))
    ds = load_dataset(tmp_path / "Toys.json")
    assert "Sparse" not in ds.user_index and "RARE" not in ds.item_index
    assert ds.info["options"]["kcore"] == 5
    assert load_dataset(tmp_path / "Toys.json", kcore=0).num_items == 7


def test_amazon_2023_jsonl_milliseconds_and_meta(tmp_path, raw):
    recs = [
        {"user_id": f"AE{u}", "asin": f"C{i}", "parent_asin": f"P{i}", "rating": 4,
         "timestamp": MS + 1000 * (10 * i + u), "text": "ok", "images": []}
        for u in range(5) for i in range(5)
    ]  # fmt: skip
    raw.write(tmp_path / "All_Beauty.jsonl", raw.jsonl(recs))
    meta = [{"parent_asin": f"P{i}", "title": f"Thing {i}", "main_category": "All Beauty",
             "categories": [], "details": {"a": 1}} for i in range(4)]  # fmt: skip
    raw.write(tmp_path / "meta_All_Beauty.jsonl", raw.jsonl(meta))
    ds = load_dataset(tmp_path / "All_Beauty.jsonl")
    assert ds.info["format"] == "amazon-2023"
    assert ds.interactions["timestamp"].min() == MS // 1000  # seconds
    assert ds.title("P0") == "Thing 0" and ds.title("P4") == "P4"
    assert ds.items.filter(pl.col("item_id") == "P1")["category"][0] == "All Beauty"
    assert ds.test.height == 5
    assert ds.sequence("AE0") == ["P0", "P1", "P2", "P3", "P4"]
    dropped = load_dataset(tmp_path / "All_Beauty.jsonl", drop_untitled=True, kcore=0)
    assert "P4" not in dropped.item_index and dropped.num_items == 4


def test_amazon_2023_benchmark_csv_folder(tmp_path, raw):
    header = "user_id,parent_asin,rating,timestamp,history\n"
    rows = [(f"U{u}", f"P{i}", MS + 1000 * (10 * i + u)) for u in range(5) for i in range(5)]
    parts = {"train": rows[:15], "valid": rows[15:20], "test": rows[20:]}
    for split, rs in parts.items():
        body = "".join(f'{u},{p},5.0,{t},"P0 P1"\n' for u, p, t in rs)
        raw.write(tmp_path / "bench" / f"Video_Games.{split}.csv.gz", header + body, gz=True)
    ds = load_dataset(tmp_path / "bench")
    assert ds.info["format"] == "amazon-2023-csv"
    assert ds.interactions.height == 25 and ds.num_users == 5
    assert ds.interactions["timestamp"].max() < 10**11  # ms converted to seconds
    single = load_dataset(tmp_path / "bench" / "Video_Games.train.csv.gz", kcore=0)
    assert single.interactions.height == 15


def test_seconds_in_a_ms_format_are_kept_with_a_warning(tmp_path, raw, caplog):
    body = "".join(
        f"U{u},P{i},5,{1_600_000_000 + 10 * i + u}\n" for u in range(5) for i in range(5)
    )
    raw.write(tmp_path / "x.csv", "user_id,parent_asin,rating,timestamp\n" + body)
    with caplog.at_level("WARNING"):
        ds = load_dataset(tmp_path / "x.csv")
    assert ds.interactions["timestamp"].min() == 1_600_000_000
    assert "milliseconds" in caplog.text


@pytest.mark.parametrize("fmt", ["amazon-2018", "amazon-2023"])
def test_explicit_format_and_meta_path(tmp_path, raw, fmt):
    if fmt == "amazon-2018":
        recs = [{"reviewerID": f"U{u}", "asin": f"I{i}", "overall": 2.0, "unixReviewTime": 10 * i + u}
                for u in range(5) for i in range(5)]  # fmt: skip
        meta = [{"asin": "I0", "title": "zero"}]
    else:
        recs = [{"user_id": f"U{u}", "parent_asin": f"I{i}", "rating": 2.0, "timestamp": MS + i}
                for u in range(5) for i in range(5)]  # fmt: skip
        meta = [{"parent_asin": "I0", "title": "zero"}]
    raw.write(tmp_path / "reviews.data", raw.jsonl(recs))
    raw.write(tmp_path / "elsewhere" / "m.json", raw.jsonl(meta))
    ds = load_dataset(
        tmp_path / "reviews.data", format=fmt, meta_path=str(tmp_path / "elsewhere" / "m.json")
    )
    assert ds.title("I0") == "zero" and ds.num_items == 5
