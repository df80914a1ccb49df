"""recgen.eval.metrics: hand-computed values, hypothesis properties, RecBole cross-check."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recgen.eval.metrics import (
    METRICS,
    evaluate_rankings,
    hit_at_k,
    hit_matrix,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)

FUNCS = {"recall": recall_at_k, "ndcg": ndcg_at_k, "mrr": mrr_at_k, "hit": hit_at_k}


# --- hand-computed -----------------------------------------------------------------------
def test_single_target_at_rank_2():
    ranked = ["a", "b", "c", "d"]
    rel = {"b"}
    # "b" is at 1-based rank 2: outside the top 1, inside the top 3.
    assert recall_at_k(ranked, rel, 1) == 0.0
    assert hit_at_k(ranked, rel, 1) == 0.0
    assert mrr_at_k(ranked, rel, 1) == 0.0
    assert ndcg_at_k(ranked, rel, 1) == 0.0
    assert recall_at_k(ranked, rel, 3) == 1.0
    assert hit_at_k(ranked, rel, 3) == 1.0
    # reciprocal rank of rank 2 = 1/2
    assert mrr_at_k(ranked, rel, 3) == 0.5
    # DCG = 1/log2(2+1); IDCG (one relevant item) = 1/log2(1+1) = 1
    assert ndcg_at_k(ranked, rel, 3) == pytest.approx(1 / math.log2(3), abs=1e-15)
    assert ndcg_at_k(ranked, rel, 3) == pytest.approx(0.6309297535714575)


def test_two_relevant_items():
    ranked = [10, 20, 30, 40, 50]
    rel = {20, 50, 99}  # 99 is never ranked
    # top 5 holds 20 and 50: 2 of the 3 relevant items
    assert recall_at_k(ranked, rel, 5) == pytest.approx(2 / 3)
    # top 3 holds only 20
    assert recall_at_k(ranked, rel, 3) == pytest.approx(1 / 3)
    # first relevant at rank 2
    assert mrr_at_k(ranked, rel, 5) == 0.5
    # DCG@5 = 1/log2(3) + 1/log2(6); IDCG@5 = 1 + 1/log2(3) + 1/log2(4) (3 relevant, k=5)
    dcg = 1 / math.log2(3) + 1 / math.log2(6)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, rel, 5) == pytest.approx(dcg / idcg, abs=1e-15)
    # at k=2 the ideal list has min(2, 3) = 2 relevant items: IDCG@2 = 1 + 1/log2(3)
    assert ndcg_at_k(ranked, rel, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))


def test_no_hit_and_short_list():
    # k larger than the list: the missing positions count as non-relevant
    assert recall_at_k(["x"], {"y"}, 10) == 0.0
    assert ndcg_at_k(["x"], {"y"}, 10) == 0.0
    assert ndcg_at_k(["y"], {"y"}, 10) == 1.0  # relevant at rank 1, IDCG = 1
    assert ndcg_at_k([], {"y"}, 3) == 0.0


def test_perfect_ranking_with_more_relevant_than_k():
    # all 2 slots hold relevant items; IDCG uses min(k, |Rel|) = 2 positions, so NDCG = 1
    assert ndcg_at_k(["a", "b", "c"], {"a", "b", "c"}, 2) == 1.0
    # recall's denominator is |Rel| = 3 (RecBole convention), so 2/3, not 1
    assert recall_at_k(["a", "b", "c"], {"a", "b", "c"}, 2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("name", METRICS)
def test_errors(name):
    f = FUNCS[name]
    with pytest.raises(ValueError, match="'b'"):
        f(["a", "b", "c", "b"], {"a"}, 2)  # duplicate anywhere in the list is named
    with pytest.raises(ValueError, match="positive"):
        f(["a"], {"a"}, 0)
    with pytest.raises(ValueError, match="positive"):
        f(["a"], {"a"}, -1)
    with pytest.raises(ValueError, match="empty"):
        f(["a"], set(), 1)
    with pytest.raises(ValueError, match="string"):
        f("abc", {"a"}, 1)  # a bare string is not a list of ids
    with pytest.raises(ValueError, match="string"):
        f(["abc"], "abc", 1)


def test_batched_matches_hand_values_and_errors():
    rankings = [["a", "b", "c"], ["c", "a", "b"], ["x", "y", "z"]]
    relevant = [{"a"}, {"a"}, {"a"}]
    out = evaluate_rankings(rankings, relevant, ks=(1, 3), metrics=("hit", "ndcg", "mrr"))
    assert list(out) == ["hit@1", "hit@3", "ndcg@1", "ndcg@3", "mrr@1", "mrr@3"]
    # user 0: "a" at rank 1; user 1: rank 2; user 2: absent
    np.testing.assert_array_equal(out["hit@1"], [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(out["hit@3"], [1.0, 1.0, 0.0])
    np.testing.assert_allclose(out["ndcg@3"], [1.0, 1 / math.log2(3), 0.0])
    np.testing.assert_allclose(out["mrr@3"], [1.0, 0.5, 0.0])
    assert out["ndcg@3"].dtype == np.float64
    with pytest.raises(ValueError, match="user 1"):
        evaluate_rankings([["a"], ["b", "b"]], [{"a"}, {"b"}])
    with pytest.raises(ValueError, match="user 0"):
        evaluate_rankings([["a"]], [set()])
    with pytest.raises(ValueError, match="aligned"):
        evaluate_rankings([["a"]], [{"a"}, {"b"}])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_rankings([["a"]], [{"a"}], metrics=("map",))
    assert evaluate_rankings([], [], ks=(5,))["recall@5"].shape == (0,)


# --- properties --------------------------------------------------------------------------
ITEMS = st.integers(min_value=0, max_value=30)


@st.composite
def ranking_case(draw):
    ranked = draw(st.lists(ITEMS, min_size=0, max_size=15, unique=True))
    rel = draw(st.sets(ITEMS, min_size=1, max_size=6))
    k = draw(st.integers(min_value=1, max_value=20))
    return ranked, rel, k


@settings(max_examples=150, deadline=None, derandomize=True)
@given(ranking_case())
def test_bounds_and_batched_agree(case):
    ranked, rel, k = case
    batched = evaluate_rankings([ranked], [rel], ks=(k,))
    for name, f in FUNCS.items():
        v = f(ranked, rel, k)
        assert 0.0 <= v <= 1.0
        assert batched[f"{name}@{k}"][0] == pytest.approx(v, abs=1e-12)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.sets(ITEMS, min_size=1, max_size=6), st.lists(ITEMS, max_size=10, unique=True), st.data())
def test_perfect_ranking_is_one(rel, others, data):
    # relevant items first (any order among them), then non-relevant ones
    ranked = data.draw(st.permutations(sorted(rel))) + [x for x in others if x not in rel]
    k = data.draw(st.integers(min_value=len(rel), max_value=len(rel) + 5))
    for f in FUNCS.values():
        assert f(ranked, rel, k) == pytest.approx(1.0, abs=1e-12)
    # NDCG/MRR/hit are 1 at any cut-off for a perfect ranking
    for f in (ndcg_at_k, mrr_at_k, hit_at_k):
        assert f(ranked, rel, 1) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(ranking_case(), st.randoms(use_true_random=False))
def test_recall_and_hit_invariant_to_order_within_top_k(case, rnd):
    ranked, rel, k = case
    top, rest = ranked[:k], ranked[k:]
    shuffled = list(top)
    rnd.shuffle(shuffled)
    for f in (recall_at_k, hit_at_k):
        assert f(shuffled + rest, rel, k) == f(ranked, rel, k)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    st.lists(ITEMS, min_size=2, max_size=15, unique=True),
    st.integers(min_value=1, max_value=20),
    st.data(),
)
def test_ndcg_monotone_when_relevant_item_moves_up(ranked, k, data):
    # one relevant item at position i; swapping it with the item just above cannot lower NDCG
    i = data.draw(st.integers(min_value=1, max_value=len(ranked) - 1))
    rel = {ranked[i]}
    up = list(ranked)
    up[i - 1], up[i] = up[i], up[i - 1]
    assert ndcg_at_k(up, rel, k) >= ndcg_at_k(ranked, rel, k)
    if i < k:  # inside the cut-off the gain is strict
        assert ndcg_at_k(up, rel, k) > ndcg_at_k(ranked, rel, k)
    assert mrr_at_k(up, rel, k) >= mrr_at_k(ranked, rel, k)


# --- cross-check against RecBole ---------------------------------------------------------
@pytest.fixture(scope="module")
def recbole_metrics():
    # RecBole 1.2.1 uses numpy aliases removed in numpy 2; shim only the missing ones.
    for name, value in (("float_", np.float64), ("float", float), ("int", int)):
        if not hasattr(np, name):
            setattr(np, name, value)
    metrics = pytest.importorskip("recbole.evaluator.metrics")
    return metrics


def test_matches_recbole_on_200_random_cases(recbole_metrics):
    rng = np.random.default_rng(1234)
    max_k = 10
    ks = (1, 3, 5, 10)
    rankings, relevant = [], []
    for _ in range(200):
        n_items = int(rng.integers(10, 40))
        ranked = rng.permutation(n_items)[: int(rng.integers(max_k, n_items + 1))].tolist()
        n_rel = int(rng.integers(1, 8))
        rel = set(rng.choice(n_items, size=n_rel, replace=False).tolist())
        rankings.append(ranked)
        relevant.append(rel)
    ours = evaluate_rankings(rankings, relevant, ks=ks)
    pos_index, pos_len = hit_matrix(rankings, relevant, max_k)
    assert pos_index.any() and not pos_index.all()  # the cases exercise both hits and misses

    # RecBole's metric_info methods do not use `self`; call them unbound.
    rb = {
        "ndcg": recbole_metrics.NDCG.metric_info(None, pos_index, pos_len),
        "recall": recbole_metrics.Recall.metric_info(None, pos_index, pos_len),
        "mrr": recbole_metrics.MRR.metric_info(None, pos_index),
        "hit": recbole_metrics.Hit.metric_info(None, pos_index),
    }
    for name in METRICS:
        for k in ks:
            np.testing.assert_allclose(ours[f"{name}@{k}"], rb[name][:, k - 1], rtol=0, atol=1e-9)
    # and the one-user functions agree with the batched ones
    for u in range(0, 200, 17):
        for name, f in FUNCS.items():
            assert f(rankings[u], relevant[u], 5) == pytest.approx(ours[f"{name}@5"][u], abs=1e-12)
