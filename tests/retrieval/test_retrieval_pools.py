"""Candidate pools: invariants on ml-100k with a 1-epoch retriever, errors on bad input."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from retrieval_synthetic import SyntheticDataset

from recgen.errors import ConfigError, IndexMismatchError, RetrievalError
from recgen.retrieval import POOL_SCHEMA, ItemIndex, PoolConfig, build_pools, examples, pool_recall

N = 20


@pytest.fixture(scope="module")
def pools(ml100k, ml100k_retriever, ml100k_index):
    out = {}
    for mode in ("retrieve", "inject"):
        out[mode] = build_pools(
            ml100k,
            ml100k_retriever,
            ml100k_index,
            PoolConfig(size=N, mode=mode, train_examples_per_user=3),
        )
    return out


def test_schema_and_sizes(ml100k, pools):
    for mode, by_split in pools.items():
        assert set(by_split) == {"train", "valid", "test"}
        for split, df in by_split.items():
            assert dict(df.schema) == POOL_SCHEMA, split
            assert (df["mode"] == mode).all()
            assert (df["candidates"].list.len() == N).all()
            assert (df["scores"].list.len() == N).all()
            assert (df["candidates"].list.n_unique() == N).all()
        assert by_split["valid"].height == by_split["test"].height == ml100k.num_users
        per_user = by_split["train"].group_by("user_id").len()["len"]
        assert per_user.max() == 3 and by_split["train"].height <= 3 * ml100k.num_users


def test_positions_targets_and_no_history_items(ml100k, pools):
    for mode, by_split in pools.items():
        for split, df in by_split.items():
            for u, target, pos, cands in df.select(
                "user_id", "target", "position", "candidates"
            ).iter_rows():
                seq = ml100k.sequence(u)
                assert seq[pos] == target
                if split != "train":
                    assert seq[:pos] == ml100k.history(u, split)
                    assert pos == len(seq) - (1 if split == "test" else 2)
                assert not set(seq[:pos]) & set(cands), (mode, split, u)
                if mode == "inject":
                    assert target in cands


def test_inject_is_retrieve_with_the_lowest_replaced(pools):
    for split in ("valid", "test"):
        ret, inj = pools["retrieve"][split], pools["inject"][split]
        assert ret["user_id"].to_list() == inj["user_id"].to_list()
        for (t, rc, rs), (ic, is_, injected) in zip(
            ret.select("target", "candidates", "scores").iter_rows(),
            inj.select("candidates", "scores", "injected").iter_rows(),
            strict=True,
        ):
            assert injected == (t not in rc)
            if not injected:
                assert ic == rc
            else:
                assert set(ic) == set(rc[:-1]) | {t}
                assert ic[-1] == t and is_[-1] <= rs[-1] + 1e-5  # own (lower) score kept
            assert all(a >= b for a, b in zip(rs, rs[1:], strict=False))
        assert pool_recall(inj) == pytest.approx(pool_recall(ret))
        assert 0.0 < pool_recall(ret) < 1.0


def test_scores_are_retriever_scores(ml100k, ml100k_retriever, pools):
    df = pools["inject"]["test"].head(20)
    vecs = ml100k_retriever.item_vectors()
    for u, pos, cands, scores in df.select(
        "user_id", "position", "candidates", "scores"
    ).iter_rows():
        q = ml100k_retriever.encode([ml100k.sequence(u)[:pos]])[0]
        want = [vecs[ml100k.item_index[c]] @ q for c in cands]
        np.testing.assert_allclose(scores, want, rtol=1e-4, atol=1e-4)


def test_examples_positions():
    ds = SyntheticDataset({"a": list("pqrstuvw"), "b": list("xyz")})
    assert examples(ds, "train", 2) == [("a", 4), ("a", 5)]
    assert examples(ds, "train", 0) == [("a", p) for p in range(1, 6)]
    assert examples(ds, "valid") == [("a", 6), ("b", 1)]
    assert examples(ds, "test") == [("a", 7), ("b", 2)]
    with pytest.raises(ConfigError, match="split"):
        examples(ds, "dev")


class _Fixed:
    """A retriever with fixed vectors: encode = mean of the history's item vectors."""

    def __init__(self, ids: list[str], dim: int = 4) -> None:
        self.item_ids = ids
        self._v = np.random.default_rng(0).standard_normal((len(ids), dim)).astype(np.float32)

    def item_vectors(self):
        return self._v

    def encode(self, histories):
        return np.stack([self._v[[self.item_ids.index(i) for i in h]].mean(0) for h in histories])


def test_empty_history_names_the_user():
    ds = SyntheticDataset(
        {"u1": ["a", "b", "c", "d"], "lonely": ["a", "b"]}, catalogue=list("abcdefgh")
    )
    r = _Fixed(ds.item_ids)
    index = ItemIndex(r.item_vectors(), r.item_ids)
    with pytest.raises(RetrievalError, match="'lonely'"):
        build_pools(ds, r, index, PoolConfig(size=3), splits=("valid",))
    # the train split only uses positions with a history, so it builds
    out = build_pools(ds, r, index, PoolConfig(size=3), splits=("train",))
    assert out["train"]["user_id"].to_list() == ["u1"]


def test_n_larger_than_catalogue_minus_history():
    ds = SyntheticDataset({"u": list("abcdef")}, catalogue=list("abcdefgh"))
    r = _Fixed(ds.item_ids)
    index = ItemIndex(r.item_vectors(), r.item_ids)
    # test history = 5 items, catalogue 8 -> 3 available
    assert build_pools(ds, r, index, PoolConfig(size=3), splits=("test",))["test"].height == 1
    with pytest.raises(RetrievalError, match=r"n=4 .* only 3 are available"):
        build_pools(ds, r, index, PoolConfig(size=4), splits=("test",))


def test_mismatched_index_or_dataset():
    ds = SyntheticDataset({"u": list("abcdef")}, catalogue=list("abcdefgh"))
    r = _Fixed(ds.item_ids)
    small = ItemIndex(r.item_vectors()[:7], r.item_ids[:7])
    with pytest.raises(IndexMismatchError, match="8 items"):
        build_pools(ds, r, small)
    other = SyntheticDataset({"u": list("abcdef")}, catalogue=list("abcdefgz"))
    with pytest.raises(IndexMismatchError, match="dataset"):
        build_pools(other, r, ItemIndex(r.item_vectors(), r.item_ids))


@pytest.mark.parametrize(
    "kwargs", [{"size": 0}, {"mode": "shuffle"}, {"size": 1}, {"train_examples_per_user": -1}]
)
def test_pool_config_rejects_nonsense(kwargs):
    with pytest.raises(ConfigError):
        PoolConfig(**kwargs)


def test_pool_recall_hand_computed():
    df = pl.DataFrame(
        {
            "target": ["a", "b", "c", "d"],
            "candidates": [["a", "x"], ["x", "y"], ["c"], ["y", "d"]],
            "injected": [False, False, False, True],
        }
    )
    # a and c were retrieved; b missed; d is present only because it was injected
    assert pool_recall(df) == 0.5
    assert pool_recall(df.drop("injected")) == 0.75
