"""Per-user metrics recomputed from rankings (hand-checked), grouping, references, best marks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recgen.eval.significance import paired_test
from recgen.eval.tables import best_per_metric, format_ci
from recgen.report.compute import add_evaluation, per_user_metrics, pick_reference, summarise
from recgen.report.inputs import EvalInput

POOL = [f"i{n}" for n in range(8)]


def rows(method: str, users: list[tuple[str, str, list[str], list[str], list[str]]]) -> pl.DataFrame:
    """(user, target, ranked, slate, ranking) tuples → a rankings.parquet-shaped frame."""
    return pl.DataFrame({
        "user_id": [u[0] for u in users], "method": [method] * len(users), "ranked": [u[2] for u in users],
        "target": [u[1] for u in users], "slate": [u[3] for u in users], "ranking": [u[4] for u in users],
    }, schema={"user_id": pl.String, "method": pl.String, "ranked": pl.List(pl.String), "target": pl.String,
               "slate": pl.List(pl.String), "ranking": pl.List(pl.String)})


def hand_case() -> pl.DataFrame:
    """a: target ranked first; b: target 2nd (in the slate, not first); c: target 6th, not in slate."""
    return rows("m", [
        ("a", "i0", POOL, ["i0", "i1", "i2"], ["i0", "i1"]),
        ("b", "i1", POOL, ["i0", "i1", "i2"], ["i0", "i1"]),
        ("c", "i5", POOL, ["i0", "i1", "i2"], ["i0", "i1"]),
    ])


def test_pool_protocol_metrics_by_hand():
    m = per_user_metrics(hand_case(), "pool")
    assert list(m) == ["recall@1", "recall@3", "recall@5", "ndcg@1", "ndcg@3", "ndcg@5",
                       "coverage", "slate_miss", "rank_drop"]
    n2 = 1 / math.log2(3)  # a hit at 0-based position 1
    np.testing.assert_allclose(m["recall@1"], [1, 0, 0])
    np.testing.assert_allclose(m["recall@3"], [1, 1, 0])
    np.testing.assert_allclose(m["recall@5"], [1, 1, 0])  # position 5 is the 6th: outside top 5
    np.testing.assert_allclose(m["ndcg@3"], [1, n2, 0])
    np.testing.assert_allclose(m["coverage"], [1, 1, 0])
    np.testing.assert_allclose(m["slate_miss"], [0, 0, 1])
    np.testing.assert_allclose(m["rank_drop"], [0, 1, 0])


def test_end_to_end_adds_pool_recall():
    frame = rows("m", [("a", "i3", POOL, ["i3"], ["i3"]), ("b", "zz", POOL, ["i0"], ["i0"])])
    m = per_user_metrics(frame, "end-to-end")
    assert list(m)[:4] == ["recall@5", "recall@10", "ndcg@5", "ndcg@10"]
    np.testing.assert_allclose(m["pool_recall@8"], [1, 0])
    np.testing.assert_allclose(m["ndcg@5"], [1 / math.log2(5), 0])
    with pytest.raises(ValueError, match="unknown protocol"):
        per_user_metrics(frame, "bogus")


def test_recomputed_means_match_reported_metrics_json():
    """What `recgen evaluate` would have written for the hand case, and what the report recomputes."""
    n2 = 1 / math.log2(3)
    reported = {"recall@1": 1 / 3, "recall@3": 2 / 3, "recall@5": 2 / 3, "ndcg@1": 1 / 3,
                "ndcg@3": (1 + n2) / 3, "ndcg@5": (1 + n2) / 3, "coverage": 2 / 3, "slate_miss": 1 / 3,
                "rank_drop": 1 / 3}
    ev = EvalInput(Path("ev"), "pool", "test", hand_case(),
                   {"m": {k: {"mean": v, "lo": 0.0, "hi": 1.0} for k, v in reported.items()}})
    comps = []
    add_evaluation(comps, ev)
    s = summarise(comps[0], None, seed=0)
    assert s["recompute_max_abs_diff"]["m"] < 1e-12
    for k, v in reported.items():
        assert s["methods"]["m"]["metrics"][k]["mean"] == pytest.approx(v, abs=1e-12)
    assert s["error_split"]["m"] == pytest.approx({"ranked_first": 1 / 3, "rank_drop": 1 / 3, "slate_miss": 1 / 3})


def test_mismatch_with_metrics_json_is_recorded():
    ev = EvalInput(Path("ev"), "pool", "test", hand_case(), {"m": {"recall@1": {"mean": 0.9}}})
    comps = []
    add_evaluation(comps, ev)
    assert comps[0].checks["m"] == pytest.approx(0.9 - 1 / 3)


def two_methods() -> pl.DataFrame:
    good = rows("fgrpo", [(u, "i0", POOL, ["i0"], ["i0"]) for u in "abcd"])
    bad = rows("grpo", [(u, "i0", POOL[::-1], ["i7"], ["i7"]) for u in "abcd"])
    return pl.concat([bad, good])


def test_summary_reference_paired_tests_and_best():
    comps = []
    add_evaluation(comps, EvalInput(Path("ev"), "pool", "test", two_methods(), {}))
    s = summarise(comps[0], None, seed=3)
    assert list(s["methods"]) == ["grpo", "fgrpo"] and s["reference"] == "fgrpo"
    assert s["best"]["ndcg@5"] == ["fgrpo"] and s["best"]["slate_miss"] == ["fgrpo"]
    expected = paired_test(np.ones(4), np.zeros(4), seed=3)._asdict()
    assert s["paired"]["grpo"]["ndcg@5"] == expected
    assert "fgrpo" not in s["paired"]
    assert summarise(comps[0], "grpo", seed=3)["reference"] == "grpo"


def test_pick_reference():
    assert pick_reference(["a", "fgrpo"], None) == "fgrpo"
    assert pick_reference(["a", "fgrpo"], "a") == "a"
    assert pick_reference(["a", "b"], "zz") == "a"


def test_same_method_from_two_folders_dedupes_or_renames():
    comps = []
    add_evaluation(comps, EvalInput(Path("one"), "pool", "test", two_methods(), {}))
    add_evaluation(comps, EvalInput(Path("two"), "pool", "test", two_methods(), {}))  # identical
    assert list(comps[0].methods) == ["grpo", "fgrpo"]
    changed = two_methods().with_columns(pl.when(pl.col("method") == "grpo").then(pl.col("ranked").list.reverse())
                                         .otherwise(pl.col("ranked")).alias("ranked"))
    add_evaluation(comps, EvalInput(Path("three"), "pool", "test", changed, {}))
    assert list(comps[0].methods) == ["grpo", "fgrpo", "grpo (three)"]
    assert summarise(comps[0], None, seed=0)["paired"]["grpo (three)"]["ndcg@5"]["n"] == 4
    # other users, or another protocol: a comparison of its own
    other = rows("grpo", [(u, "i0", POOL, ["i0"], ["i0"]) for u in "abcz"])
    add_evaluation(comps, EvalInput(Path("four"), "pool", "test", other, {}))
    add_evaluation(comps, EvalInput(Path("five"), "end-to-end", "test", other, {}))
    assert [(c.protocol, c.title) for c in comps] == [
        ("pool", "test users (4), pool protocol"), ("pool", "test users (4, set 2), pool protocol"),
        ("end-to-end", "test users (4), end-to-end protocol")]


def test_best_per_metric_skips_all_ties_and_honours_lower_is_better():
    summaries = {"a": {"x": {"mean": 0.5}, "slate_miss": {"mean": 0.2}, "tie": {"mean": 1.0}},
                 "b": {"x": {"mean": 0.7}, "slate_miss": {"mean": 0.4}, "tie": {"mean": 1.0}}}
    best = best_per_metric(summaries, ["x", "slate_miss", "tie"])
    assert best == {"x": {"b"}, "slate_miss": {"a"}}
    assert best_per_metric({"a": {"x": {"mean": 0.1}}}, ["x"]) == {"x": {"a"}}
    assert format_ci({"mean": 0.1234, "lo": 0.1, "hi": 0.2}) == "0.123 [0.100, 0.200]"
