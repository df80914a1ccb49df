"""Popularity on a hand-made split with a hand-computed ranking."""

from __future__ import annotations

import polars as pl
import pytest

from recgen.baselines import Popularity
from recgen.errors import MissingColumnError, RetrievalError

# train counts: item 10 x3, item 2 x2, item 9 x2, item 5 x1.
TRAIN = pl.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "c", "c", "c"],
        "item_id": ["10", "2", "9", "10", "9", "10", "2", "5"],
        "timestamp": [1, 2, 3, 1, 2, 1, 2, 3],
    }
)


def test_ranking_by_count_ties_by_numeric_id():
    pop = Popularity().fit(TRAIN)
    # 10 (3) first; 2 and 9 tie at 2 -> numeric id order puts 2 before 9; then 5 (1).
    assert pop.ranking == ["10", "2", "9", "5"]


def test_rank_excludes_seen():
    pop = Popularity().fit(TRAIN)
    # user a saw 10, 2, 9 -> only 5 is left; user with no history gets the global top 2.
    assert pop.rank([["10", "2", "9"], []], n=2) == [["5"], ["10", "2"]]
    assert pop.rank([["10", "2", "9"]], n=2, exclude_seen=False) == [["10", "2"]]


def test_catalogue_items_without_counts_rank_last():
    pop = Popularity().fit(TRAIN, catalogue=["1", "2", "5", "9", "10", "11"])
    # zero-count items 1 and 11 follow, in numeric order.
    assert pop.ranking == ["10", "2", "9", "5", "1", "11"]


def test_errors():
    with pytest.raises(RetrievalError):
        Popularity().rank([[]], n=1)
    with pytest.raises(RetrievalError):
        Popularity().fit(TRAIN).rank([[]], n=0)
    with pytest.raises(MissingColumnError):
        Popularity().fit(TRAIN.rename({"item_id": "item"}))
