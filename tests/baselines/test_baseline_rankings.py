"""Full-catalogue baseline rankings written as a `recgen evaluate --out` folder."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from recgen.baselines.rankings import PROTOCOL, score_method, write_rankings
from recgen.errors import ConfigError
from recgen.eval.metrics import evaluate_rankings
from recgen.report.compute import Comparison, add_evaluation, summarise
from recgen.report.inputs import RANKING_COLUMNS, read_evaluation

USERS = ["u1", "u2", "u3", "u4"]
TARGETS = {"u1": "i1", "u2": "i7", "u3": "i12", "u4": "i99"}
CATALOGUE = [f"i{n}" for n in range(1, 31)]


def lists(shift: int) -> dict[str, list[str]]:
    """Every user: the catalogue rotated by ``shift`` (top 20 kept)."""
    return {u: (CATALOGUE[shift:] + CATALOGUE[:shift])[:20] for u in USERS}


def test_files_match_evaluate_schema_and_report_reads_them(tmp_path):
    out = tmp_path / "eval"
    write_rankings(
        out,
        {"a": lists(0), "b": lists(5)},
        USERS,
        TARGETS,
        dataset="toy",
        details={"a": {"train_seconds": 1.0}},
    )
    frame = pl.read_parquet(out / "rankings.parquet")
    assert frame.columns == list(RANKING_COLUMNS)
    assert frame.height == 8
    row = frame.filter((pl.col("method") == "b") & (pl.col("user_id") == "u2")).row(0, named=True)
    assert row["ranked"][:3] == ["i6", "i7", "i8"] and row["target"] == "i7"
    assert row["slate"] == row["ranked"][:10] and row["ranking"] == row["ranked"][:5]

    meta = json.loads((out / "metrics.json").read_text())
    assert {k: meta[k] for k in ("protocol", "split", "users", "seed", "dataset")} == {
        "protocol": PROTOCOL,
        "split": "test",
        "users": 4,
        "seed": 0,
        "dataset": "toy",
    }
    assert meta["details"] == {"a": {"train_seconds": 1.0}}
    a = meta["methods"]["a"]
    assert set(a) >= {"recall@5", "ndcg@5", "recall@10", "ndcg@10", "coverage", "pool_recall@20"}
    # a: u1 hit at rank 1, u2 at rank 7, u3 at rank 12, u4 missing
    expected = evaluate_rankings(
        [lists(0)[u] for u in USERS], [{TARGETS[u]} for u in USERS], ks=(10,), metrics=("ndcg",)
    )["ndcg@10"].mean()
    assert a["ndcg@10"]["mean"] == pytest.approx(expected)
    assert a["recall@10"]["mean"] == pytest.approx(0.5)
    assert a["pool_recall@20"]["mean"] == pytest.approx(0.75)
    assert a["ndcg@10"]["lo"] <= a["ndcg@10"]["mean"] <= a["ndcg@10"]["hi"]
    assert (out / "table.md").read_text().startswith("| method | users |")

    ev = read_evaluation(out)
    comps: list[Comparison] = []
    add_evaluation(comps, ev)
    summary = summarise(comps[0], None, 0)
    assert set(summary["methods"]) == {"a", "b"}
    assert max(summary["recompute_max_abs_diff"].values()) < 1e-9


def test_merge_keeps_other_methods_and_replaces_rewritten(tmp_path):
    out = tmp_path / "eval"
    write_rankings(out, {"a": lists(0)}, USERS, TARGETS, dataset="toy", details={"a": {"x": 1}})
    write_rankings(out, {"b": lists(5)}, USERS, TARGETS, dataset="toy", details={"b": {"x": 2}})
    write_rankings(out, {"a": lists(1)}, USERS, TARGETS, dataset="toy", details={"a": {"x": 3}})
    frame = pl.read_parquet(out / "rankings.parquet")
    assert frame["method"].unique(maintain_order=True).to_list() == ["a", "b"]  # replaced in place
    assert frame.filter(pl.col("method") == "a")["ranked"][0][0] == "i2"
    meta = json.loads((out / "metrics.json").read_text())
    assert set(meta["methods"]) == {"a", "b"}
    assert meta["details"] == {"a": {"x": 3}, "b": {"x": 2}}


def test_refuses_other_evaluations(tmp_path):
    out = tmp_path / "eval"
    write_rankings(out, {"a": lists(0)}, USERS, TARGETS, dataset="toy")
    with pytest.raises(ConfigError, match="other users"):
        write_rankings(out, {"b": lists(0)}, USERS[:3], TARGETS, dataset="toy")
    with pytest.raises(ConfigError, match="another evaluation"):
        write_rankings(out, {"b": lists(0)}, USERS, TARGETS, dataset="other")
    pool = tmp_path / "pool"  # a `recgen evaluate` folder: not full-catalogue
    pool.mkdir()
    pl.concat([pl.read_parquet(out / "rankings.parquet")]).write_parquet(pool / "rankings.parquet")
    (pool / "metrics.json").write_text(
        json.dumps({"protocol": "end-to-end", "split": "test", "dataset": "toy", "methods": {}})
    )
    with pytest.raises(ConfigError, match="another evaluation"):
        write_rankings(pool, {"b": lists(0)}, USERS, TARGETS, dataset="toy")


def test_missing_user_is_an_error():
    with pytest.raises(ValueError, match="no ranking"):
        score_method("a", USERS, TARGETS, {"u1": ["i1"]})
    res = score_method("a", USERS, TARGETS, lists(0))
    assert np.array_equal(res.per_user["recall@5"], [1.0, 0.0, 0.0, 0.0])
