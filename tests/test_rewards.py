"""recgen.rewards: hand-computed coverage / NDCG / format rewards."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from recgen.rewards import (
    RolloutRewards,
    coverage,
    format_penalty,
    joint_reward,
    ndcg_reward,
    rollout_rewards,
)


@dataclass
class Parsed:  # the shape of recgen.policy.grammar.ParsedOutput
    slate: list[int] | None
    ranking: list[int] | None
    error: str | None = None


def test_coverage_single_target():
    # one target: 1 if it is in the slate, else 0
    assert coverage([4, 17, 2], {17}) == 1.0
    assert coverage([4, 17, 2], {5}) == 0.0


def test_coverage_multi_relevant_and_order_invariant():
    # 2 of the 4 relevant ids (3 and 9) are in the slate: 2/4
    assert coverage([1, 3, 9, 12], {3, 9, 20, 21}) == 0.5
    assert coverage([12, 9, 3, 1], {3, 9, 20, 21}) == 0.5  # order does not matter


def test_coverage_errors():
    with pytest.raises(ValueError, match="17"):
        coverage([17, 4, 17], {17})  # duplicate id in the slate is named
    with pytest.raises(ValueError, match="empty"):
        coverage([1], set())


def test_ndcg_reward():
    # target first: DCG = 1/log2(2) = 1 = IDCG
    assert ndcg_reward([17, 4, 9, 2, 11], {17}) == 1.0
    # target third: 1/log2(3 + 1) = 0.5
    assert ndcg_reward([4, 9, 17, 2, 11], {17}) == pytest.approx(0.5)
    # target ranked but cut off at k=2: 0
    assert ndcg_reward([4, 9, 17, 2, 11], {17}, k=2) == 0.0
    # target not ranked at all (it may still be in the slate): 0
    assert ndcg_reward([4, 9, 2, 11, 3], {17}) == 0.0
    with pytest.raises(ValueError, match="empty"):
        ndcg_reward([], {1})


def test_format_penalty():
    assert format_penalty(True) == 0.0
    assert format_penalty(False) == -1.0  # default penalty
    assert format_penalty(False, penalty=-0.5) == -0.5
    with pytest.raises(ValueError, match="<= 0"):
        format_penalty(False, penalty=0.5)


def test_rollout_rewards_parsed():
    parsed = Parsed(slate=[4, 17, 2, 9], ranking=[9, 17])
    # target 17: in the slate (coverage 1), ranked second (NDCG = 1/log2(3))
    r = rollout_rewards(parsed, {17}, k=2)
    assert isinstance(r, RolloutRewards)
    r_gen, r_rank = r
    assert r_gen == 1.0
    assert r_rank == pytest.approx(1 / math.log2(3))


def test_rollout_rewards_with_order_maps_positions_to_items():
    order = ["i10", "i20", "i30", "i40"]  # position p shows order[p - 1]
    parsed = Parsed(slate=[3, 1], ranking=[3])
    # slate = {i30, i10}: holds the target i30 → coverage 1; ranking = [i30] → NDCG 1
    assert rollout_rewards(parsed, {"i30"}, order=order) == (1.0, 1.0)
    # target i20 (position 2) is outside the slate: both rewards 0
    assert rollout_rewards(parsed, {"i20"}, order=order) == (0.0, 0.0)
    with pytest.raises(ValueError, match="position 5"):
        rollout_rewards(Parsed(slate=[5], ranking=[5]), {"i10"}, order=order)


def test_rollout_rewards_unparseable_gets_penalty_in_both_phases():
    # decision: an unparseable rollout gets R_gen = R_rank = penalty (coverage/NDCG count 0)
    broken = Parsed(slate=None, ranking=None, error="missing </slate>")
    assert rollout_rewards(broken, {17}, penalty=-0.7) == (-0.7, -0.7)
    # an error flag wins even if lists were recovered
    half = Parsed(slate=[17, 2], ranking=[17], error="ranking has 1 ids, expected 2")
    assert rollout_rewards(half, {17}) == (-1.0, -1.0)
    # GRPO's joint reward of such a rollout is (1 + lambda) * penalty
    assert joint_reward(*rollout_rewards(broken, {17}, penalty=-1.0), lam=0.5) == -1.5
    with pytest.raises(ValueError, match="<= 0"):
        rollout_rewards(broken, {17}, penalty=1.0)
