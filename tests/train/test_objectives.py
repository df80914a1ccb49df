"""recgen.train.objectives on hand-computed tensors (FGRPO.md, "Advantages and objective")."""

from __future__ import annotations

import math

import pytest
import torch

from recgen.train.objectives import (
    check_masks,
    clip_fraction,
    clipped_phase_term,
    fgrpo_loss,
    group_advantages,
    grpo_advantages,
    grpo_loss,
    kl_k3,
    phase_masks,
    rank_only_loss,
    sequence_log_ratio,
    zero_advantage_fraction,
)


def B(rows):  # noqa: N802  (shorthand: a boolean mask from nested 0/1 lists)
    return torch.tensor(rows, dtype=torch.bool)


def _masks():
    """Two rollouts, T = 5. Row 0: slate tokens 0-2, rank tokens 3-4.
    Row 1: slate tokens 0-1, rank tokens 2-3, token 4 is padding."""
    gen = B([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]])
    rank = B([[0, 0, 0, 1, 1], [0, 0, 1, 1, 0]])
    return gen, rank


def _grad(loss_fn, *args, **kwargs):
    """Gradient of the loss w.r.t. logp_new (the first argument) at one optimisation step."""
    logp_new = args[0].clone().requires_grad_(True)
    loss, stats = loss_fn(logp_new, *args[1:], **kwargs)
    loss.backward()
    return loss, stats, logp_new.grad


# --- advantages ------------------------------------------------------------------------
def test_group_advantages_values():
    # group 0 = [1, 0, 0, 1]: mean 0.5 → A = R - 0.5; group 1 is flat → exactly 0
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.1, 0.1, 0.1, 0.1])
    a = group_advantages(r, 4)
    assert a.tolist() == [0.5, -0.5, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0]
    # (B, G) input gives the same flattened result
    assert torch.equal(group_advantages(r.view(2, 4), 4), a)
    # scale_by_std: unbiased std of [1,0,0,1] = sqrt(4 * 0.25 / 3) = sqrt(1/3); 0.5 / 0.57735 = 0.866
    s = group_advantages(r, 4, scale_by_std=True, eps=0.0)
    h = math.sqrt(3) / 2
    assert s[:4].tolist() == pytest.approx([h, -h, -h, h])
    assert s[4:].tolist() == [0.0] * 4  # flat group: 0, not 0/eps noise
    # groups are consecutive rows: rollout j belongs to prompt j // G
    assert group_advantages([3.0, 1.0, 0.0, 0.0], 2).tolist() == [1.0, -1.0, 0.0, 0.0]


def test_flat_group_advantage_is_exactly_zero_despite_rounding():
    # 8 copies of 0.1 (and of 1/3): their float32 mean can differ from 0.1 by an ulp;
    # the advantage must still be exactly 0
    for v in (0.1, 1 / 3, 0.6309297535714575):
        a = group_advantages(torch.full((8,), v), 8, scale_by_std=True)
        assert torch.count_nonzero(a) == 0


def test_zero_advantage_fraction_and_errors():
    r = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5])
    # groups of 2: [1,1] flat, [0,1] informative, [.5,.5] flat → 2/3
    assert zero_advantage_fraction(r, 2) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(r, 4)  # 6 rewards do not split into groups of 4
    with pytest.raises(ValueError, match="group_size"):
        group_advantages(r, 0)


def test_grpo_advantages_use_joint_reward():
    # R = R_gen + lam * R_rank = [1 + 0.5*1, 0 + 0.5*0] = [1.5, 0] → A = [0.75, -0.75]
    a = grpo_advantages([1.0, 0.0], [1.0, 0.0], 2, lam=0.5)
    assert a.tolist() == [0.75, -0.75]


# --- ratio, term, KL pieces ------------------------------------------------------------
def test_sequence_log_ratio_is_length_normalised():
    new = torch.tensor([[0.0, -1.0, -2.0], [5.0, 5.0, 5.0]])
    old = torch.tensor([[-1.0, -1.0, -1.0], [0.0, 0.0, 0.0]])
    mask = B([[1, 1, 0], [0, 0, 0]])
    # row 0: mean of (0 - -1, -1 - -1) = 0.5 (token 2 is masked out); row 1: empty mask → 0
    assert sequence_log_ratio(new, old, mask).tolist() == [0.5, 0.0]


def test_clipped_phase_term_values():
    lr = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5, 1.1]))
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0, 2.0])
    # min(rho A, clip(rho, .8, 1.2) A): [min(1.5,1.2), min(-1.5,-1.2), min(.5,.8), min(-.5,-.8), 2.2]
    t = clipped_phase_term(lr, adv, 0.2)
    assert t.tolist() == pytest.approx([1.2, -1.5, 0.5, -0.8, 2.2])
    # clipped branch active in rows 0 and 3 only
    assert clip_fraction(lr, adv, 0.2) == pytest.approx(2 / 5)


def test_kl_k3_value():
    new = torch.log(torch.tensor([[0.25, 0.5]]))
    ref = torch.log(torch.tensor([[0.5, 0.5]]))
    mask = B([[1, 1]])
    # token 0: delta = ref - new = log 2 → 2 - log 2 - 1 = 0.3069; token 1: delta = 0 → 0; mean
    assert float(kl_k3(new, ref, mask)) == pytest.approx((1 - math.log(2)) / 2)


def test_masks_helpers():
    cm = B([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]])
    gen, rank = phase_masks(cm, torch.tensor([2, 5]))  # row 1 has no <rank>: all gen
    assert gen.int().tolist() == [[1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]
    assert rank.int().tolist() == [[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]]
    check_masks(gen, rank, cm)
    with pytest.raises(ValueError, match="overlap"):
        check_masks(gen, gen, cm)
    with pytest.raises(ValueError, match="outside"):
        check_masks(gen, rank, torch.zeros_like(cm))


# --- F-GRPO loss -----------------------------------------------------------------------
def test_phase_routing_of_gradients():
    gen, rank = _masks()
    logp = torch.tensor([[-1.0, -2.0, -0.5, -1.5, -0.2], [-0.3, -0.7, -1.1, -0.9, 0.0]])
    adv_gen = torch.tensor([1.0, -1.0])
    adv_rank = torch.tensor([0.5, 2.0])
    _, _, g = _grad(fgrpo_loss, logp, logp.clone(), gen, rank, adv_gen, adv_rank)
    # one step (rho = 1): dL/dlogp[j,t] = -(1/N) A_p(j) / |phase p of j|, N = 2
    expected = torch.tensor(
        [
            [-1 / 6, -1 / 6, -1 / 6, -0.125, -0.125],  # gen: -(1/2)(1)/3;  rank: -(1/2)(0.5)/2
            [0.25, 0.25, -0.5, -0.5, 0.0],  # gen: -(1/2)(-1)/2; rank: -(1/2)(2)/2; pad: 0
        ]
    )
    torch.testing.assert_close(g, expected)
    # slate tokens see only the generation advantage: zeroing adv_rank leaves them unchanged
    # and zeroes every rank-token gradient
    _, _, g2 = _grad(fgrpo_loss, logp, logp.clone(), gen, rank, adv_gen, torch.zeros(2))
    torch.testing.assert_close(g2[gen], expected[gen])
    assert torch.count_nonzero(g2[rank]) == 0
    # and vice versa
    _, _, g3 = _grad(fgrpo_loss, logp, logp.clone(), gen, rank, torch.zeros(2), adv_rank)
    torch.testing.assert_close(g3[rank], expected[rank])
    assert torch.count_nonzero(g3[gen]) == 0


def test_gradient_sign_positive_advantage_raises_logp():
    gen, rank = _masks()
    logp = torch.zeros(2, 5)
    loss_fn = fgrpo_loss
    _, _, g = _grad(
        loss_fn, logp, logp.clone(), gen, rank, torch.tensor([1.0, -1.0]), torch.zeros(2)
    )
    # gradient descent moves logp by -lr * grad: up for A > 0 (row 0), down for A < 0 (row 1)
    assert (g[0][gen[0]] < 0).all()
    assert (g[1][gen[1]] > 0).all()


def test_clipping_with_ratios_not_one():
    # 4 rollouts, 2 slate tokens each, no ranking tokens; old logp = 0, new = log rho on both
    # tokens, so the length-normalised ratio is exactly rho.
    rho = torch.tensor([1.5, 1.5, 0.5, 0.5])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    new = torch.log(rho).unsqueeze(1).repeat(1, 2)
    old = torch.zeros(4, 2)
    gen = torch.ones(4, 2, dtype=torch.bool)
    rank = torch.zeros(4, 2, dtype=torch.bool)
    loss, stats, g = _grad(fgrpo_loss, new, old, gen, rank, adv, torch.zeros(4), eps=0.2)
    # terms: min(1.5, 1.2) = 1.2 | min(-1.5, -1.2) = -1.5 | min(.5, .8) = .5 | min(-.5, -.8) = -.8
    assert float(loss.detach()) == pytest.approx(-(1.2 - 1.5 + 0.5 - 0.8) / 4)
    # rows 0 and 3: clipped (pessimistic branch is the constant) → zero gradient
    assert torch.count_nonzero(g[0]) == 0 and torch.count_nonzero(g[3]) == 0
    # rows 1 and 2: unclipped, d(-rho A / N)/dlogp_t = -A rho / (N L): row 1: 1.5/8, row 2: -0.5/8
    torch.testing.assert_close(g[1], torch.full((2,), 1.5 / 8))
    torch.testing.assert_close(g[2], torch.full((2,), -0.5 / 8))
    assert stats["clip_frac_gen"] == pytest.approx(0.5)
    assert stats["clip_frac_rank"] == 0.0  # no rollout has rank tokens
    assert stats["ratio_mean_gen"] == pytest.approx(1.0)  # (1.5 + 1.5 + .5 + .5) / 4


def test_flat_group_contributes_zero_loss_and_gradient():
    torch.manual_seed(0)
    g_size = 4
    gen = torch.zeros(8, 6, dtype=torch.bool)
    gen[:, :3] = True
    rank = torch.zeros(8, 6, dtype=torch.bool)
    rank[:, 3:] = True
    old = -torch.rand(8, 6)
    new = old + 0.3 * torch.randn(8, 6)  # ratios != 1
    # group 0 (rows 0-3) has all-equal rewards in both phases; group 1 (rows 4-7) does not
    r_gen = torch.tensor([0.4] * 4 + [1.0, 0.0, 1.0, 1.0])
    r_rank = torch.tensor([1 / 3] * 4 + [0.5, 0.0, 1.0, 0.63])
    a_gen, a_rank = group_advantages(r_gen, g_size), group_advantages(r_rank, g_size)
    loss, _, g = _grad(fgrpo_loss, new, old, gen, rank, a_gen, a_rank)
    assert torch.count_nonzero(g[:4]) == 0  # exactly zero gradient for the flat group
    assert torch.count_nonzero(g[4:]) > 0
    # the flat group's loss terms are exactly 0: the loss equals group 1's terms alone
    # (divided by N = 8)
    lr_g = sequence_log_ratio(new, old, gen)[4:]
    lr_r = sequence_log_ratio(new, old, rank)[4:]
    t = clipped_phase_term(lr_g, a_gen[4:], 0.2) + clipped_phase_term(lr_r, a_rank[4:], 0.2)
    assert float(loss.detach()) == pytest.approx(float(-t.sum() / 8), abs=1e-7)
    flat_only, _ = fgrpo_loss(new[:4], old[:4], gen[:4], rank[:4], a_gen[:4], a_rank[:4])
    assert float(flat_only) == 0.0


def test_lambda_scales_only_the_ranking_term():
    gen, rank = _masks()
    logp = torch.tensor([[-1.0, -2.0, -0.5, -1.5, -0.2], [-0.3, -0.7, -1.1, -0.9, 0.0]])
    args = (logp, logp.clone(), gen, rank, torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]))
    _, _, g1 = _grad(fgrpo_loss, *args, lam=1.0)
    _, _, g3 = _grad(fgrpo_loss, *args, lam=3.0)
    torch.testing.assert_close(g3[gen], g1[gen])  # slate tokens: unchanged
    torch.testing.assert_close(g3[rank], 3.0 * g1[rank])  # rank tokens: scaled by lambda


def test_one_step_gradient_is_length_normalised_policy_gradient():
    torch.manual_seed(1)
    n, t, lam = 6, 9, 0.7
    completion = torch.rand(n, t) > 0.2
    cut = torch.randint(1, t, (n,))
    gen, rank = phase_masks(completion, cut)
    logp = -torch.rand(n, t) * 3
    a_gen, a_rank = torch.randn(n), torch.randn(n)
    _, stats, g = _grad(fgrpo_loss, logp, logp.detach().clone(), gen, rank, a_gen, a_rank, lam=lam)
    # REINFORCE with per-phase mean log-prob: L_pg = -(1/N) sum_j [A_gen mean_gen logp + lam A_rank mean_rank logp]
    x = logp.clone().requires_grad_(True)
    mean_gen = (x * gen).sum(1) / gen.sum(1).clamp(min=1)
    mean_rank = (x * rank).sum(1) / rank.sum(1).clamp(min=1)
    (-(a_gen * mean_gen + lam * a_rank * mean_rank).mean()).backward()
    torch.testing.assert_close(g, x.grad)
    assert stats["ratio_mean_gen"] == pytest.approx(1.0) and stats["clip_frac_gen"] == 0.0


def test_kl_term_only_with_beta_and_reference():
    gen, rank = _masks()
    logp = torch.log(torch.full((2, 5), 0.25))
    ref = torch.log(torch.full((2, 5), 0.5))
    adv0 = torch.zeros(2)
    loss0, stats0 = fgrpo_loss(logp, logp, gen, rank, adv0, adv0, beta=0.0, logp_ref=ref)
    assert float(loss0.detach()) == 0.0 and stats0["kl"] == 0.0  # beta = 0: no KL
    loss, stats = fgrpo_loss(logp, logp, gen, rank, adv0, adv0, beta=0.1, logp_ref=ref)
    # every completion token has delta = log 2: k3 = 2 - log 2 - 1 = 0.3069 per token
    assert stats["kl"] == pytest.approx(1 - math.log(2))
    assert float(loss.detach()) == pytest.approx(0.1 * (1 - math.log(2)))
    # no KL gradient at the reference itself
    _, _, g = _grad(fgrpo_loss, ref, ref.clone(), gen, rank, adv0, adv0, beta=0.1, logp_ref=ref)
    assert torch.count_nonzero(g) == 0


def test_bf16_inputs_and_shape_errors():
    gen, rank = _masks()
    logp = torch.zeros(2, 5, dtype=torch.bfloat16)
    loss, stats = fgrpo_loss(logp, logp, gen, rank, torch.ones(2), torch.ones(2))
    assert loss.dtype == torch.float32
    assert set(stats) >= {"loss", "kl", "clip_frac_gen", "clip_frac_rank", "ratio_mean_gen"}
    with pytest.raises(ValueError, match="adv_gen"):
        fgrpo_loss(logp, logp, gen, rank, torch.ones(3), torch.ones(2))
    with pytest.raises(ValueError, match="overlap"):
        fgrpo_loss(logp, logp, gen, gen, torch.ones(2), torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        fgrpo_loss(logp, logp[:, :4], gen, rank, torch.ones(2), torch.ones(2))


# --- baselines -------------------------------------------------------------------------
def test_grpo_gives_one_advantage_to_every_token():
    gen, rank = _masks()
    completion = gen | rank
    logp = torch.tensor([[-1.0, -2.0, -0.5, -1.5, -0.2], [-0.3, -0.7, -1.1, -0.9, 0.0]])
    adv = torch.tensor([1.0, -2.0])
    _, stats, g = _grad(grpo_loss, logp, logp.clone(), completion, adv)
    # one sequence-level ratio over the whole completion: -(1/N) A / |completion|
    expected = torch.tensor(
        [[-0.1] * 5, [0.25, 0.25, 0.25, 0.25, 0.0]]  # row 0: -(1/2)(1)/5; row 1: -(1/2)(-2)/4
    )
    torch.testing.assert_close(g, expected)
    # slate and rank tokens of a rollout get the same gradient
    assert torch.unique(g[0][completion[0]]).numel() == 1
    assert "clip_frac_all" in stats


def test_rank_only_loss_ignores_slate_tokens():
    gen, rank = _masks()
    logp = torch.tensor([[-1.0, -2.0, -0.5, -1.5, -0.2], [-0.3, -0.7, -1.1, -0.9, 0.0]])
    _, stats, g = _grad(rank_only_loss, logp, logp.clone(), rank, torch.tensor([0.5, 2.0]))
    assert torch.count_nonzero(g[gen]) == 0  # forced slate: no gradient
    # rank tokens: -(1/2)(0.5)/2 = -0.125 and -(1/2)(2)/2 = -0.5
    torch.testing.assert_close(g[rank], torch.tensor([-0.125, -0.125, -0.5, -0.5]))
    assert "clip_frac_rank" in stats and "clip_frac_gen" not in stats
