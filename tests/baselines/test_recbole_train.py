"""A tiny RecBole training run returns full-catalogue rankings without seen items."""

from __future__ import annotations

import pytest

from recgen.baselines import RecBoleConfig, run_recbole, seen_items
from recgen.errors import ConfigError


@pytest.mark.parametrize("model", ["BPR", "SASRec"])
def test_one_epoch_rankings_exclude_seen(synthetic_split, model):
    result = run_recbole(synthetic_split, RecBoleConfig(model=model, epochs=1, top_n=15))
    seen = seen_items(synthetic_split, "test")
    assert set(result.rankings) == set(synthetic_split.test["user_id"].to_list())
    catalogue = (
        set(synthetic_split.train["item_id"])
        | set(synthetic_split.valid["item_id"])
        | set(synthetic_split.test["item_id"])
    )
    for user, ranked in result.rankings.items():
        assert len(ranked) == 15 and len(set(ranked)) == 15
        assert not set(ranked) & seen[user]  # train + valid items never recommended
        assert set(ranked) <= catalogue
    assert result.epochs_run == 1 and result.best_epoch == 0
    assert "ndcg@10" in result.best_valid and result.train_seconds >= 0


def test_short_ranking_when_catalogue_runs_out(synthetic_split):
    # 30 items, each user saw 7 before test -> at most 23 rankable items.
    result = run_recbole(synthetic_split, RecBoleConfig(model="BPR", epochs=1, top_n=100))
    assert all(len(r) == 30 - 7 for r in result.rankings.values())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"model": "NoSuchModel"},
        {"model": "DeepFM"},
        {"epochs": 0},
        {"threads": 0},
        {"top_n": 0},
        {"learning_rate": 0.0},
        {"valid_metric": "NDCG"},
        {"dataset_name": "a/b"},
        {"stopping_step": 0},
        {"max_train_seconds": 0.0},
    ],
)
def test_config_rejects_nonsense(kwargs):
    with pytest.raises(ConfigError):
        RecBoleConfig(**kwargs)


def test_time_budget_stops_training(synthetic_split):
    cfg = RecBoleConfig(model="BPR", epochs=50, max_train_seconds=1e-6, top_n=5)
    result = run_recbole(synthetic_split, cfg)
    assert result.epochs_run == 1 and result.stop_reason == "time_budget"
    assert len(result.rankings) == synthetic_split.test.height


def test_time_budget_cuts_an_epoch_short(split_factory):
    split = split_factory(n_users=200, n_items=40, per_user=12)
    cfg = RecBoleConfig(model="BPR", epochs=5, train_batch_size=8, max_train_seconds=1e-6)
    result = run_recbole(split, cfg)
    assert result.epochs_run == 1 and result.last_epoch_cut_short
    assert result.stop_reason == "time_budget"
