"""The parquet cache: hits on a second load, keyed by files and options, atomic on crash."""

from __future__ import annotations

import logging
import os

import polars as pl
import pytest

from recgen.data import cache, load_dataset


def _folder(tmp_path, raw):
    folder = tmp_path / "ml-1m"
    events = raw.events(n_users=4, n_items=5)
    raw.write(folder / "ratings.dat", "".join(f"{u}::{i}::5::{t}\n" for u, i, t in events))
    raw.write(folder / "movies.dat", "1::Café (1990)::Drama\n", encoding="latin-1")
    return folder


def test_second_load_hits_cache(tmp_path, raw, caplog):
    folder = _folder(tmp_path, raw)
    root = tmp_path / "cache"
    first = load_dataset(folder, cache_dir=str(root))
    assert not first.from_cache and first.cache_path.parent == root
    assert sorted(p.name for p in first.cache_path.iterdir()) == [
        "interactions.parquet", "items.parquet", "meta.json", "test.parquet",
        "train.parquet", "valid.parquet",
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger="recgen.data"):
        second = load_dataset(folder, cache_dir=str(root))
    assert second.from_cache and second.cache_path == first.cache_path
    assert "from cache" in caplog.text
    for t in cache.TABLES:
        assert getattr(second, t).equals(getattr(first, t))
    assert second.user_ids == first.user_ids and second.title("1") == "Café"
    assert second.stats() == first.stats()


def test_key_changes_with_options_and_files(tmp_path, raw):
    folder = _folder(tmp_path, raw)
    root = str(tmp_path / "cache")
    a = load_dataset(folder, cache_dir=root)
    b = load_dataset(folder, cache_dir=root, min_rating=4.0)
    assert a.cache_path != b.cache_path
    ratings = folder / "ratings.dat"
    ratings.write_text(ratings.read_text() + "9::1::5::1\n9::2::5::2\n9::3::5::3\n")
    os.utime(ratings, ns=(10**18, 10**18))
    c = load_dataset(folder, cache_dir=root)
    assert not c.from_cache and c.cache_path != a.cache_path and c.num_users == 5


def test_env_var_sets_the_root(tmp_path, raw, monkeypatch):
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path / "envcache"))
    ds = load_dataset(_folder(tmp_path, raw))
    assert ds.cache_path.parent == tmp_path / "envcache"


def test_crash_during_write_leaves_no_cache(tmp_path, raw, monkeypatch):
    folder = _folder(tmp_path, raw)
    root = tmp_path / "cache"
    calls = {"n": 0}
    real = pl.DataFrame.write_parquet

    def flaky(self, path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # after two tables were written
            raise OSError("disk full")
        return real(self, path, *a, **k)

    monkeypatch.setattr(pl.DataFrame, "write_parquet", flaky)
    with pytest.raises(OSError, match="disk full"):
        load_dataset(folder, cache_dir=str(root))
    assert list(root.iterdir()) == [] or all(p.name == ".tmp" for p in root.iterdir())
    monkeypatch.setattr(pl.DataFrame, "write_parquet", real)
    ds = load_dataset(folder, cache_dir=str(root))
    assert not ds.from_cache and (ds.cache_path / "meta.json").is_file()


def test_unreadable_cache_is_rebuilt(tmp_path, raw):
    folder = _folder(tmp_path, raw)
    root = str(tmp_path / "cache")
    a = load_dataset(folder, cache_dir=root)
    (a.cache_path / "train.parquet").write_bytes(b"not parquet")
    b = load_dataset(folder, cache_dir=root)
    assert not b.from_cache and b.train.equals(a.train)
    assert load_dataset(folder, cache_dir=root).from_cache


def test_no_cache_writes_nothing(tmp_path, raw):
    root = tmp_path / "cache"
    ds = load_dataset(_folder(tmp_path, raw), cache=False, cache_dir=str(root))
    assert ds.cache_path is None and not root.exists()
