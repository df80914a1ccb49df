"""The default dataset: RecBole's ml-100k atomic files from the recbole wheel."""

from __future__ import annotations

import polars as pl
import pytest

from recgen.data import load_dataset
from recgen.errors import UnknownItemError, UnknownUserError


def test_counts(ml100k):
    assert ml100k.name == "ml-100k"
    assert (ml100k.num_users, ml100k.num_items, ml100k.interactions.height) == (943, 1682, 100_000)
    s = ml100k.stats()
    assert s["users"] == 943 and s["items"] == 1682 and s["interactions"] == 100_000
    assert s["mean_sequence_length"] == pytest.approx(100_000 / 943)
    assert s["density"] == pytest.approx(100_000 / (943 * 1682))


def test_schema(ml100k):
    assert ml100k.interactions.schema == pl.Schema(
        {"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64, "rating": pl.Float64}
    )
    for split in (ml100k.train, ml100k.valid, ml100k.test):
        assert split.schema == pl.Schema(
            {"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64}
        )
    assert ml100k.items.columns[:2] == ["item_id", "title"]
    assert ml100k.items["item_id"].to_list() == ml100k.item_ids


def test_dirty_item_rows_are_kept_as_strings(ml100k):
    items = {r["item_id"]: r for r in ml100k.items.iter_rows(named=True)}
    assert items["1412"]["year"] == "V"
    assert items["267"]["title"]  # RecBole's placeholder title, kept as a string
    assert ml100k.title("1") == "Toy Story"  # no year in the title
    assert items["1"]["year"] == "1995"


def test_split_sizes(ml100k):
    assert ml100k.valid.height == ml100k.test.height == 943
    assert ml100k.valid["user_id"].n_unique() == ml100k.test["user_id"].n_unique() == 943
    assert ml100k.train.height + 2 * 943 == 100_000


def test_leave_one_out_is_chronological(ml100k):
    inter = ml100k.interactions.with_columns(
        pl.col("item_id").replace_strict(ml100k.item_index, return_dtype=pl.Int64).alias("i")
    )
    last = inter.sort(["user_id", "timestamp", "i"]).group_by("user_id", maintain_order=True)
    tails = last.agg(pl.col("item_id").tail(2)).sort("user_id")
    test = dict(ml100k.test.select("user_id", "item_id").iter_rows())
    valid = dict(ml100k.valid.select("user_id", "item_id").iter_rows())
    for user, (second_last, very_last) in tails.iter_rows():
        assert test[user] == very_last
        assert valid[user] == second_last
    # no valid/test target is followed (in time) by a train event of the same user
    vt = pl.concat([ml100k.valid, ml100k.test])
    first_target = vt.group_by("user_id").agg(pl.col("timestamp").min().alias("t"))
    later = ml100k.train.join(first_target, on="user_id").filter(pl.col("timestamp") > pl.col("t"))
    assert later.height == 0


def test_valid_test_pairs_not_later_train_events(ml100k):
    vt = pl.concat([ml100k.valid, ml100k.test]).rename({"timestamp": "t_target"})
    clash = ml100k.train.join(vt, on=["user_id", "item_id"])
    assert clash.filter(pl.col("timestamp") > pl.col("t_target")).height == 0
    assert clash.height == 0  # no duplicates at all after dedupe


def test_id_maps_sorted_and_invertible(ml100k):
    assert ml100k.user_ids == sorted(ml100k.user_ids, key=int)
    assert ml100k.item_ids == sorted(ml100k.item_ids, key=int)
    assert ml100k.user_ids[:3] == ["1", "2", "3"]
    assert all(ml100k.user_ids[i] == u for u, i in ml100k.user_index.items())
    assert all(ml100k.item_ids[i] == it for it, i in ml100k.item_index.items())
    assert len(ml100k.user_index) == 943 and len(ml100k.item_index) == 1682


def test_sequence_and_history(ml100k):
    for user in ml100k.user_ids[:50]:
        seq = ml100k.sequence(user)
        assert seq[-1] == ml100k.test.filter(pl.col("user_id") == user)["item_id"][0]
        assert ml100k.history(user, "test") == seq[:-1]
        assert ml100k.history(user, "valid") == seq[:-2]
    seq = ml100k.sequence("1")
    seq.append("mutated")
    assert ml100k.sequence("1")[-1] != "mutated"  # a copy is returned
    with pytest.raises(ValueError, match="split"):
        ml100k.history("1", "train")


def test_unknown_ids_raise_naming_the_id(ml100k):
    with pytest.raises(UnknownUserError, match="'99999'"):
        ml100k.sequence("99999")
    with pytest.raises(UnknownUserError, match="user id 1 .*try '1'"):
        ml100k.history(1, "test")  # type: ignore[arg-type]  (ids are strings)
    with pytest.raises(UnknownItemError, match="'nope'"):
        ml100k.title("nope")
    with pytest.raises(KeyError):  # UnknownIdError is a KeyError
        ml100k.title("nope")


def test_uncached_load_matches(ml100k):
    ds = load_dataset("ml-100k", cache=False)
    assert ds.cache_path is None and not ds.from_cache
    assert ds.test.equals(ml100k.test) and ds.items.equals(ml100k.items)
