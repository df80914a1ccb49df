"""Benchmark atomic files: RecBole reads back exactly recgen's split."""

from __future__ import annotations

import polars as pl
import pytest

from recgen.baselines import RecBoleConfig, recbole_compat, user_sequences, write_benchmark_files
from recgen.baselines.recbole_models import recbole_config_dict
from recgen.errors import DataError


def _recbole_splits(tmp_path, model: str):
    from recbole.config import Config
    from recbole.data import create_dataset

    cfg = RecBoleConfig(model=model)
    config = Config(
        model=model,
        dataset="recgen",
        config_dict=recbole_config_dict(cfg, str(tmp_path), str(tmp_path / "s")),
    )
    dataset = create_dataset(config)
    return dataset, dataset.build()


def _pairs(ds, part) -> set[tuple[str, str]]:
    users = ds.id2token(ds.uid_field, part.inter_feat[ds.uid_field].numpy())
    items = ds.id2token(ds.iid_field, part.inter_feat[ds.iid_field].numpy())
    return {(str(u), str(i)) for u, i in zip(users, items, strict=True)}


def _frame_pairs(frame: pl.DataFrame) -> set[tuple[str, str]]:
    return set(zip(frame["user_id"].to_list(), frame["item_id"].to_list(), strict=True))


def test_general_files_match_split(tmp_path, synthetic_split):
    s = synthetic_split
    counts = write_benchmark_files(s, tmp_path / "recgen", sequential=False)
    assert counts == {"train": s.train.height, "valid": s.valid.height, "test": s.test.height}
    with recbole_compat():
        ds, parts = _recbole_splits(tmp_path, "BPR")
    for part, frame in zip(parts, (s.train, s.valid, s.test), strict=True):
        assert len(part) == frame.height
        assert _pairs(ds, part) == _frame_pairs(frame)


def test_sequential_files_match_split_and_test_history_has_valid_item(tmp_path, synthetic_split):
    s = synthetic_split
    seqs = user_sequences(s)
    counts = write_benchmark_files(s, tmp_path / "recgen", sequential=True, max_seq_len=50)
    # one train row per prefix of each train sequence (len - 1 per user)
    assert counts["train"] == sum(len(v) - 1 for v in seqs.values())
    assert (counts["valid"], counts["test"]) == (s.valid.height, s.test.height)
    with recbole_compat():
        ds, (train, valid, test) = _recbole_splits(tmp_path, "SASRec")
    assert (len(train), len(valid), len(test)) == (counts["train"], counts["valid"], counts["test"])
    assert _pairs(ds, valid) == _frame_pairs(s.valid)
    assert _pairs(ds, test) == _frame_pairs(s.test)
    valid_item = dict(zip(s.valid["user_id"].to_list(), s.valid["item_id"].to_list(), strict=True))
    lists = test.inter_feat["item_id_list"].numpy()
    lengths = test.inter_feat["item_length"].numpy()
    users = ds.id2token(ds.uid_field, test.inter_feat[ds.uid_field].numpy())
    for user, row, n in zip(users, lists, lengths, strict=True):
        hist = [str(t) for t in ds.id2token(ds.iid_field, row[:n])]
        assert hist == seqs[str(user)] + [valid_item[str(user)]]  # train items, then valid


def test_sequential_history_truncated(tmp_path, synthetic_split):
    write_benchmark_files(synthetic_split, tmp_path, sequential=True, max_seq_len=3)
    lines = (tmp_path / "recgen.test.inter").read_text().splitlines()[1:]
    assert all(len(line.split("\t")[1].split(" ")) == 3 for line in lines)


def test_bad_ids_rejected(tmp_path, synthetic_split):
    s = synthetic_split
    bad = s.train.with_columns(pl.col("item_id").str.replace("^1$", "1 1"))
    with pytest.raises(DataError, match="item id"):
        write_benchmark_files(type(s)(bad, s.valid, s.test), tmp_path, sequential=True)
    dup = pl.concat([s.valid, s.valid.head(1)])
    with pytest.raises(DataError, match="one row per user"):
        write_benchmark_files(type(s)(s.train, dup, s.test), tmp_path)


def test_ml100k_general_files_match_recgen_split(tmp_path, ml100k):
    """On the real dataset: RecBole's three splits hold exactly recgen's rows."""
    counts = write_benchmark_files(ml100k, tmp_path / "recgen", sequential=False)
    assert counts == {"train": ml100k.train.height, "valid": 943, "test": 943}
    with recbole_compat():
        ds, parts = _recbole_splits(tmp_path, "BPR")
    assert ds.item_num - 1 == ml100k.num_items  # every catalogue item has an interaction
    for part, frame in zip(parts, (ml100k.train, ml100k.valid, ml100k.test), strict=True):
        assert _pairs(ds, part) == _frame_pairs(frame)


@pytest.mark.slow
def test_ml100k_sequential_counts(tmp_path, ml100k):
    counts = write_benchmark_files(ml100k, tmp_path / "recgen", sequential=True)
    assert counts["train"] == ml100k.train.height - 943  # one row per prefix
    with recbole_compat():
        _, parts = _recbole_splits(tmp_path, "SASRec")
    assert [len(p) for p in parts] == [counts["train"], 943, 943]
