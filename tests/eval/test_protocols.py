"""Protocol bookkeeping: the final list, the slate-miss / rank-drop split, tables."""

import numpy as np

from recgen.eval.protocols import (
    MethodOutput,
    final_list,
    popularity_outputs,
    retriever_outputs,
    score,
)
from recgen.eval.tables import comparison_table
from recgen.examples import Example


def _ex(user, target, candidates=("a", "b", "c", "d", "e")):
    return Example(user_id=user, target=target, position=5, candidates=tuple(candidates),
                   scores=tuple(float(-i) for i in range(len(candidates))),
                   order=tuple(reversed(candidates)), input_ids=(1,), prompt_text="")


def test_final_list_is_ranking_then_rest_of_slate_then_pool_by_retriever_score():
    ex = _ex("u", "c")
    # slate written as (e, c, a): the rest of the slate after the ranking (c) is ordered by
    # retriever score (a before e); then the rest of the pool in retriever order (b, d)
    assert final_list(ex, ["e", "c", "a"], ["c"]) == ["c", "a", "e", "b", "d"]


def test_error_split_adds_up_with_hit_at_1():
    examples = [_ex("u1", "a"), _ex("u2", "b"), _ex("u3", "e")]
    out = MethodOutput(
        "m",
        slates=[["a", "b"], ["a", "b"], ["a", "b"]],
        rankings=[["a"], ["a"], ["a"]],
        final=[final_list(ex, ["a", "b"], ["a"]) for ex in examples],
    )
    res = score(examples, out, "pool")
    # u1: target ranked first (hit); u2: in the slate but ranked second (rank drop);
    # u3: not in the slate (slate miss)
    assert res.per_user["recall@1"].tolist() == [1.0, 0.0, 0.0]
    assert res.per_user["rank_drop"].tolist() == [0.0, 1.0, 0.0]
    assert res.per_user["slate_miss"].tolist() == [0.0, 0.0, 1.0]
    total = res.per_user["recall@1"] + res.per_user["rank_drop"] + res.per_user["slate_miss"]
    assert np.all(total == 1.0)
    # u2's target is second in the final list: NDCG@3 = 1/log2(3)
    assert abs(res.per_user["ndcg@3"][1] - 1 / np.log2(3)) < 1e-12
    assert res.frame.columns == ["user_id", "method", "ranked", "target", "slate", "ranking"]


def test_baselines_and_table():
    examples = [_ex("u1", "b"), _ex("u2", "d")]
    retr = score(examples, retriever_outputs(examples, slate_size=2, rank_size=1), "pool")
    pop = score(examples, popularity_outputs(examples, {"d": 10, "b": 5}, slate_size=2, rank_size=1), "pool")
    # retriever order a,b,c,d,e: neither target first; popularity puts d then b first
    assert retr.per_user["recall@1"].tolist() == [0.0, 0.0]
    assert pop.per_user["recall@1"].tolist() == [0.0, 1.0]
    table = comparison_table({"retriever": retr, "popularity": pop}, ["recall@1", "slate_miss"],
                             reference="popularity", test_metric="ndcg@5")
    assert "| popularity | 2 | **0.500" in table  # best recall@1 in bold
    assert "(reference)" in table


def test_end_to_end_reports_pool_recall():
    examples = [_ex("u1", "b"), _ex("u2", "zzz")]  # the second target is missing from the pool
    res = score(examples, retriever_outputs(examples, slate_size=2, rank_size=1), "end-to-end")
    assert res.per_user["pool_recall@5"].tolist() == [1.0, 0.0]
    assert "recall@10" in res.per_user


def test_runner_rejects_a_method_name_without_a_folder():
    from types import SimpleNamespace

    import polars as pl
    import pytest

    from recgen.errors import ConfigError
    from recgen.eval.runner import EvalSetup, evaluate_methods

    frame = pl.DataFrame({"user_id": ["u"], "target": ["a"], "position": [1], "candidates": [["a", "b"]],
                          "scores": [[1.0, 0.5]]})
    ds = SimpleNamespace(name="ml-test", train=pl.DataFrame({"user_id": ["u"], "item_id": ["a"]}))
    pools = SimpleNamespace(inject={"test": frame}, retrieve={}, folder="x")
    with pytest.raises(ConfigError, match="'fgrpo'"):
        evaluate_methods(ds, pools, ["fgrpo"], EvalSetup(users=1), base_model="tiny")
    with pytest.raises(ConfigError, match="no end-to-end pools"):
        evaluate_methods(ds, pools, ["retriever"], EvalSetup(users=1, protocol="end-to-end"), base_model="tiny")
