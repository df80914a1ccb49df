"""Unit tests of the RL loop's pieces: reward scoring, per-method advantages, data order."""

from types import SimpleNamespace

import torch

from recgen.examples import Example
from recgen.train.config import preset
from recgen.train.rl import _batch_for_step, phase_advantages, score_rollouts


def _example(target="b"):
    # order: position 1 = "a", 2 = "b", 3 = "c", 4 = "d"
    return Example(user_id="u", target=target, position=3, candidates=("a", "b", "c", "d"),
                   scores=(4.0, 3.0, 2.0, 1.0), order=("a", "b", "c", "d"), input_ids=(1, 2), prompt_text="p")


def _parsed(slate, ranking, error=None):
    return SimpleNamespace(slate=slate, ranking=ranking, error=error)


def test_score_rollouts_maps_positions_to_items():
    cfg = preset("smoke", "fgrpo", group_size=2, slate_size=2, rank_size=1, pool_size=4)
    parsed = [
        _parsed([2, 3], [2]),  # target "b" (position 2) in slate and ranked first: coverage 1, ndcg 1
        _parsed([1, 3], [1]),  # target not in slate: coverage 0, ndcg 0
    ]
    rw = score_rollouts([_example()], parsed, 2, cfg)
    assert rw.r_gen.tolist() == [1.0, 0.0]
    assert rw.r_rank.tolist() == [1.0, 0.0]
    assert rw.n_invalid == 0


def test_unparseable_rollout_gets_the_format_penalty_in_both_phases():
    cfg = preset("smoke", "fgrpo", group_size=2, slate_size=2, rank_size=1, pool_size=4, format_penalty=-0.5)
    rw = score_rollouts([_example()], [_parsed(None, None, "missing <slate>"), _parsed([2, 3], [3])], 2, cfg)
    assert rw.r_gen.tolist() == [-0.5, 1.0]
    assert rw.r_rank.tolist() == [-0.5, 0.0]
    assert rw.n_invalid == 1


def _rewards():
    return SimpleNamespace(r_gen=torch.tensor([1.0, 0.0, 1.0, 1.0]), r_rank=torch.tensor([1.0, 0.0, 0.5, 0.5]))


def test_fgrpo_advantages_are_per_phase():
    a_gen, a_rank = phase_advantages(_rewards(), preset("smoke", "fgrpo", group_size=2))
    # group 1: gen (1, 0) → ±0.5; group 2: gen (1, 1) → 0 (no signal)
    assert a_gen.tolist() == [0.5, -0.5, 0.0, 0.0]
    assert a_rank.tolist() == [0.5, -0.5, 0.0, 0.0]


def test_grpo_uses_one_joint_advantage():
    cfg = preset("smoke", "grpo", group_size=2, lam=0.5)
    a_gen, a_rank = phase_advantages(_rewards(), cfg)
    # joint reward R_gen + 0.5 R_rank: (1.5, 0) → ±0.75; (1.25, 1.25) → 0
    assert torch.equal(a_gen, a_rank)
    assert a_gen.tolist() == [0.75, -0.75, 0.0, 0.0]


def test_decoupled_has_no_generation_advantage():
    a_gen, a_rank = phase_advantages(_rewards(), preset("smoke", "decoupled", group_size=2))
    assert a_gen.abs().sum() == 0
    assert a_rank.tolist() == [0.5, -0.5, 0.0, 0.0]


def test_batches_cover_each_epoch_once_and_are_reproducible():
    seen = [i for step in range(5) for i in _batch_for_step(10, step, 2, seed=3)]
    assert sorted(seen) == list(range(10))  # one epoch = every example exactly once
    assert _batch_for_step(10, 7, 2, seed=3) == _batch_for_step(10, 7, 2, seed=3)  # resume-safe
