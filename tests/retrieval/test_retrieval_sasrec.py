"""SASRec retriever: config checks, learning a successor pattern, determinism, persistence."""

from __future__ import annotations

import numpy as np
import pytest
from retrieval_synthetic import successor_dataset, tiny_config

from recgen.errors import ConfigError, ModelNotFoundError, RetrievalError, UnknownItemError
from recgen.retrieval import SASRec, SASRecConfig

TINY = tiny_config()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"hidden": 30, "heads": 4},
        {"dropout": 1.0},
        {"max_len": 0},
        {"lr": 0.0},
        {"epochs": 0},
        {"patience": -1},
        {"threads": -2},
        {"batch_size": 0},
    ],
)
def test_config_rejects_nonsense(kwargs):
    with pytest.raises(ConfigError):
        SASRecConfig(**kwargs)


def test_learns_successor_pattern(successor_ds, tiny_retriever):
    # every user walks the catalogue in order, so after item i comes item i+1 (mod 30)
    n = successor_ds.num_items
    histories = [[str((i - 2) % n), str((i - 1) % n), str(i)] for i in range(n)]
    scores = tiny_retriever.score(histories)
    for r, h in enumerate(histories):  # seen items are never recommended
        scores[r, [successor_ds.item_index[i] for i in h]] = -np.inf
    top = [successor_ds.item_ids[j] for j in scores.argmax(axis=1)]
    hits = sum(t == str((i + 1) % n) for i, t in enumerate(top))
    assert hits >= 0.9 * n, f"only {hits}/{n} successors ranked first"
    rep = tiny_retriever.report
    assert rep.epochs_run == TINY.epochs and rep.best_valid_ndcg10 > 0.5
    assert rep.train_seconds > 0


def test_vectors_shapes_and_order(successor_ds, tiny_retriever):
    vecs = tiny_retriever.item_vectors()
    assert vecs.shape == (successor_ds.num_items, TINY.hidden) and vecs.dtype == np.float32
    assert tiny_retriever.item_ids == successor_ds.item_ids
    q = tiny_retriever.encode([["1", "2"], ["5"]])
    assert q.shape == (2, TINY.hidden)
    np.testing.assert_allclose(tiny_retriever.score([["1", "2"]])[0], vecs @ q[0], rtol=1e-5)


def test_only_last_max_len_items_matter(tiny_retriever):
    long = [str(i % 30) for i in range(40)]
    np.testing.assert_array_equal(
        tiny_retriever.encode([long]), tiny_retriever.encode([long[-TINY.max_len :]])
    )


def test_same_seed_same_vectors():
    ds = successor_dataset(num_users=20, num_items=12, length=8)
    a = SASRec.fit(ds, TINY)
    b = SASRec.fit(ds, TINY)
    np.testing.assert_array_equal(a.item_vectors(), b.item_vectors())
    assert a.report.valid_ndcg10 == b.report.valid_ndcg10
    c = SASRec.fit(ds, tiny_config(seed=1))
    assert not np.array_equal(a.item_vectors(), c.item_vectors())


def test_save_load_roundtrip(tmp_path, tiny_retriever):
    out = tiny_retriever.save(tmp_path / "r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no temporary folder left
    loaded = SASRec.load(out)
    assert loaded.cfg == tiny_retriever.cfg and loaded.item_ids == tiny_retriever.item_ids
    np.testing.assert_array_equal(loaded.item_vectors(), tiny_retriever.item_vectors())
    h = [["3", "4", "5"], ["7"]]
    np.testing.assert_array_equal(loaded.encode(h), tiny_retriever.encode(h))
    assert loaded.report.best_valid_ndcg10 == tiny_retriever.report.best_valid_ndcg10


def test_load_missing_folder(tmp_path):
    with pytest.raises(ModelNotFoundError, match="missing"):
        SASRec.load(tmp_path / "nope")


def test_bad_histories(tiny_retriever):
    with pytest.raises(RetrievalError, match="history #1 is empty"):
        tiny_retriever.encode([["1"], []])
    with pytest.raises(UnknownItemError, match="'no-such-item'"):
        tiny_retriever.encode([["1", "no-such-item"]])
