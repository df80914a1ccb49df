"""ItemIndex: exact results, exclusion, kind selection, errors, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from recgen.errors import ConfigError, IndexMismatchError, RetrievalError, UnknownItemError
from recgen.retrieval import ItemIndex


def _table(n: int = 300, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, d)).astype(np.float32)
    return vecs, [f"i{j}" for j in range(n)]


def _brute(vecs, ids, q, n, ex):
    sc = vecs @ q
    order = [j for j in np.argsort(-sc, kind="stable") if ids[j] not in ex]
    return [ids[j] for j in order[:n]]


def test_flat_is_exact_and_excludes():
    vecs, ids = _table()
    index = ItemIndex(vecs, ids)
    assert index.kind == "flat" and len(index) == 300
    q = np.random.default_rng(1).standard_normal((5, 16)).astype(np.float32)
    exclude = [set(), {"i1", "i2"}, set(ids[:250]), {"i7"}, set()]
    exclude[3] |= set(_brute(vecs, ids, q[3], 3, set()))  # the exact top 3 must disappear
    got, scores = index.search(q, 10, exclude)
    for r in range(5):
        assert got[r] == _brute(vecs, ids, q[r], 10, exclude[r])
        assert not set(got[r]) & exclude[r]
        np.testing.assert_allclose(scores[r], sorted(scores[r], reverse=True))
        np.testing.assert_allclose(
            scores[r], [vecs[ids.index(i)] @ q[r] for i in got[r]], rtol=1e-5
        )


def test_n_equal_to_available_and_too_large():
    vecs, ids = _table(20, 4)
    index = ItemIndex(vecs, ids)
    q = np.ones((1, 4), np.float32)
    got, _ = index.search(q, 15, [set(ids[:5])])
    assert sorted(got[0]) == sorted(ids[5:])
    with pytest.raises(RetrievalError, match=r"n=16 .* only 15 are available"):
        index.search(q, 16, [set(ids[:5])])
    with pytest.raises(RetrievalError, match="n=21"):
        index.search(q, 21)
    with pytest.raises(RetrievalError, match="positive"):
        index.search(q, 0)


def test_mismatches_and_unknown_items():
    vecs, ids = _table(10, 4)
    with pytest.raises(IndexMismatchError, match="10 vectors but 9 item ids"):
        ItemIndex(vecs, ids[:9])
    with pytest.raises(IndexMismatchError, match="'i0' appears more than once"):
        ItemIndex(vecs, ["i0"] + ids[:9])
    with pytest.raises(ConfigError, match="kind"):
        ItemIndex(vecs, ids, kind="lsh")
    index = ItemIndex(vecs, ids)
    with pytest.raises(IndexMismatchError, match="4-d"):
        index.search(np.ones((2, 5), np.float32), 3)
    with pytest.raises(IndexMismatchError, match="2 sets for 1 queries"):
        index.search(np.ones((1, 4), np.float32), 3, [set(), set()])
    with pytest.raises(UnknownItemError, match="'zzz'"):
        index.search(np.ones((1, 4), np.float32), 3, [{"zzz"}])


def test_auto_kind_threshold():
    vecs, ids = _table(400, 8)
    assert ItemIndex(vecs, ids, auto_threshold=401).kind == "flat"
    ivf = ItemIndex(vecs, ids, auto_threshold=400)
    assert ivf.kind == "ivf" and ivf.nlist is not None and ivf.nlist >= 1


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_exclude_and_fill(kind):
    vecs, ids = _table(2000, 8)
    index = ItemIndex(vecs, ids, kind=kind, nlist=40, nprobe=1, ef_search=16)
    rng = np.random.default_rng(3)
    q = rng.standard_normal((20, 8)).astype(np.float32)
    exclude = [set(rng.choice(ids, size=300, replace=False).tolist()) for _ in range(20)]
    got, scores = index.search(q, 50, exclude)
    recall = []
    for r in range(20):
        assert len(got[r]) == 50 and len(set(got[r])) == 50 and not set(got[r]) & exclude[r]
        recall.append(len(set(got[r]) & set(_brute(vecs, ids, q[r], 50, exclude[r]))) / 50)
    assert np.mean(recall) > 0.3  # approximate, but not garbage even with nprobe=1


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_roundtrip(tmp_path, kind):
    vecs, ids = _table(500, 8)
    index = ItemIndex(vecs, ids, kind=kind, nlist=10, nprobe=3)
    q = np.random.default_rng(2).standard_normal((4, 8)).astype(np.float32)
    ex = [{"i3"}, set(), set(), {"i9", "i10"}]
    loaded = ItemIndex.load(index.save(tmp_path / "idx"))
    assert loaded.kind == kind and loaded.item_ids == ids and loaded.nprobe == 3
    assert loaded.search(q, 7, ex) == index.search(q, 7, ex)
