r"""F-GRPO, GRPO and decoupled (rank-only) objectives as pure torch functions.

Reference: ../shared/FGRPO.md, "Advantages and objective"; formula ↔ code map in
docs/method.md. Layout: ``N = B * G`` rollouts, rollout ``j = b * G + g`` is sample ``g`` of
prompt ``b`` (groups are CONSECUTIVE rows). Token tensors are ``(N, T)`` over completion
tokens only: ``logp_*`` are log-probs of the sampled tokens, masks are boolean. For F-GRPO
``gen_mask`` (``<slate>`` … ``</slate>``) and ``rank_mask`` (``<rank>`` … end) are disjoint.

    A_p(j)   = R_p(j) - mean_{g in group(j)} R_p(g)      [/ (std_group R_p + eps) if scale_by_std]
    lr_p(j)  = sum_t M_p[j,t] (logp_new - logp_old)[j,t] / max(1, sum_t M_p[j,t])
    rho_p(j) = exp(lr_p(j))
    T_p(j)   = min(rho_p A_p, clip(rho_p, 1-eps, 1+eps) A_p)
    L_FGRPO  = -mean_j [T_gen(j) + lam * T_rank(j)] + beta * KL
    L_GRPO   = -mean_j T_all(j) + beta * KL,   A from R_gen + lam * R_rank, M = completion mask
    L_rank   = -mean_j T_rank(j) + beta * KL   (decoupled: slate forced, its tokens get no term)
    KL       = mean_j [ mean_{t in M_KL(j)} exp(ref - new) - (ref - new) - 1 ]   (k3 estimator)

Simplifications relative to the paper (as far as it is known, see FGRPO.md):
- the ratio is sequence-level per phase with length normalisation (a GSPO-style geometric
  mean of token ratios), as FGRPO.md specifies; token-level PPO ratios are not offered;
- one symmetric clip range eps, no clip-higher / dual-clip, no entropy bonus;
- Dr.GRPO advantages (no std division unless ``scale_by_std``); the std is the unbiased
  group std (as in TRL); a group whose rewards are all exactly equal gets advantage
  exactly 0 (no rounding residue), so it contributes zero loss and zero gradient;
- the loss averages over rollouts (each rollout weighs 1/N, whatever its length);
- KL (k3, against a frozen reference) is averaged per rollout over its KL tokens, then over
  rollouts; it is added only when beta > 0 and ``logp_ref`` is given;
- a rollout with an empty phase mask has lr_p = 0 (rho_p = 1): its term is the constant A_p,
  which carries no gradient.
All arithmetic is done in float32 (inputs may be bf16). Stats are detached python floats.
"""

from __future__ import annotations

import torch

__all__ = [
    "check_masks",
    "clip_fraction",
    "clipped_phase_term",
    "fgrpo_loss",
    "grpo_advantages",
    "grpo_loss",
    "group_advantages",
    "kl_k3",
    "phase_masks",
    "rank_only_loss",
    "sequence_log_ratio",
    "zero_advantage_fraction",
]

Stats = dict[str, float]


# --- advantages ------------------------------------------------------------------------
def _grouped(rewards: torch.Tensor | list[float], group_size: int) -> torch.Tensor:
    """Rewards as a float32 ``(B, G)`` tensor (accepts ``(B*G,)`` or ``(B, G)``)."""
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}")
    r = torch.as_tensor(rewards).detach().to(torch.float32)
    if r.dim() == 2:
        if r.shape[1] != group_size:
            raise ValueError(f"rewards has shape {tuple(r.shape)} but group_size is {group_size}")
        return r
    if r.dim() != 1 or r.numel() % group_size != 0:
        raise ValueError(
            f"rewards must be (B*G,) or (B, G); got shape {tuple(r.shape)} with group_size {group_size}"
        )
    return r.view(-1, group_size)


def group_advantages(
    rewards: torch.Tensor | list[float],
    group_size: int,
    *,
    scale_by_std: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """``A(j) = R(j) - mean_group R`` (Dr.GRPO), optionally ``/ (std_group R + eps)``; shape ``(B*G,)``.

    Groups whose rewards are all equal get exactly 0. Rewards carry no gradient.
    """
    r = _grouped(rewards, group_size)
    adv = r - r.mean(dim=1, keepdim=True)
    if scale_by_std:
        std = r.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(r[:, :1])
        adv = adv / (std + eps)
    flat = (r == r[:, :1]).all(dim=1, keepdim=True)
    adv = torch.where(flat, torch.zeros_like(adv), adv)
    return adv.reshape(-1)


def zero_advantage_fraction(rewards: torch.Tensor | list[float], group_size: int) -> float:
    """Fraction of groups whose rewards are all equal (no signal): frac_zero_adv_{gen,rank}."""
    r = _grouped(rewards, group_size)
    if r.shape[0] == 0:
        return 0.0
    return float((r == r[:, :1]).all(dim=1).float().mean())


def grpo_advantages(
    r_gen: torch.Tensor | list[float],
    r_rank: torch.Tensor | list[float],
    group_size: int,
    *,
    lam: float = 1.0,
    scale_by_std: bool = False,
    eps: float = 1e-6,
) -> torch.Tensor:
    """GRPO baseline: one advantage of the joint reward ``R_gen + lam * R_rank``."""
    joint = torch.as_tensor(r_gen, dtype=torch.float32) + lam * torch.as_tensor(
        r_rank, dtype=torch.float32
    )
    return group_advantages(joint, group_size, scale_by_std=scale_by_std, eps=eps)


# --- masks -----------------------------------------------------------------------------
def phase_masks(
    completion_mask: torch.Tensor, rank_start: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split each completion at the first token of ``<rank>``.

    ``gen_mask[j,t] = completion_mask[j,t] and t < rank_start[j]``,
    ``rank_mask[j,t] = completion_mask[j,t] and t >= rank_start[j]``; ``rank_start[j] >= T``
    (e.g. ``T``) when rollout j has no ranking, so all its tokens are generation tokens.
    The two masks are disjoint and together cover the completion.
    """
    cm = completion_mask.bool()
    t = torch.arange(cm.shape[1], device=cm.device).unsqueeze(0)
    before = t < torch.as_tensor(rank_start, device=cm.device).reshape(-1, 1)
    return cm & before, cm & ~before


def check_masks(
    gen_mask: torch.Tensor, rank_mask: torch.Tensor, completion_mask: torch.Tensor | None = None
) -> None:
    """Raise ValueError unless the phase masks are boolean-like, same shape, disjoint, and
    (if given) inside ``completion_mask``."""
    if gen_mask.shape != rank_mask.shape:
        raise ValueError(
            f"gen_mask {tuple(gen_mask.shape)} and rank_mask {tuple(rank_mask.shape)} differ"
        )
    g, r = gen_mask.bool(), rank_mask.bool()
    both = (g & r).nonzero()
    if both.numel():
        j, t = both[0].tolist()
        raise ValueError(f"gen_mask and rank_mask overlap (first at rollout {j}, token {t})")
    if completion_mask is not None:
        outside = ((g | r) & ~completion_mask.bool()).nonzero()
        if outside.numel():
            j, t = outside[0].tolist()
            raise ValueError(f"phase mask outside the completion mask at rollout {j}, token {t}")


# --- ratio, clipped term, KL -----------------------------------------------------------
def sequence_log_ratio(
    logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``(N,)`` length-normalised log-ratio: mean over masked tokens of ``logp_new - logp_old``; 0 if empty."""
    m = mask.bool()
    diff = torch.where(
        m, logp_new.float() - logp_old.detach().float(), torch.zeros((), device=m.device)
    )
    return diff.sum(dim=1) / m.sum(dim=1).clamp(min=1)


def clipped_phase_term(log_ratio: torch.Tensor, adv: torch.Tensor, eps: float) -> torch.Tensor:
    """``(N,)`` PPO surrogate ``min(rho A, clip(rho, 1-eps, 1+eps) A)``, ``rho = exp(log_ratio)``."""
    rho = torch.exp(log_ratio)
    a = adv.detach().float()
    return torch.minimum(rho * a, torch.clamp(rho, 1.0 - eps, 1.0 + eps) * a)


def clip_fraction(
    log_ratio: torch.Tensor, adv: torch.Tensor, eps: float, mask: torch.Tensor | None = None
) -> float:
    """Fraction of rollouts (with a non-empty ``mask``, if given) where the clipped branch is
    active: ``(A > 0 and rho > 1+eps) or (A < 0 and rho < 1-eps)`` (their gradient is 0)."""
    rho = torch.exp(log_ratio.detach())
    a = adv.detach()
    clipped = ((a > 0) & (rho > 1 + eps)) | ((a < 0) & (rho < 1 - eps))
    if mask is not None:
        keep = mask.bool().any(dim=1)
        clipped = clipped[keep]
    return float(clipped.float().mean()) if clipped.numel() else 0.0


def kl_k3(logp_new: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scalar k3 estimate of KL(pi_theta || pi_ref): per rollout the mean over masked tokens
    of ``exp(ref - new) - (ref - new) - 1`` (>= 0), then the mean over rollouts."""
    m = mask.bool()
    delta = torch.where(
        m, logp_ref.detach().float() - logp_new.float(), torch.zeros((), device=m.device)
    )
    per_tok = torch.exp(delta) - delta - 1.0  # 0 where masked out (delta = 0)
    return (per_tok.sum(dim=1) / m.sum(dim=1).clamp(min=1)).mean()


def _validate(logp_new: torch.Tensor, logp_old: torch.Tensor, *masks: torch.Tensor) -> None:
    if logp_new.dim() != 2:
        raise ValueError(f"logp_new must be (N, T), got shape {tuple(logp_new.shape)}")
    for name, x in [("logp_old", logp_old), *[(f"mask {i}", m) for i, m in enumerate(masks)]]:
        if x.shape != logp_new.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {tuple(logp_new.shape)}")


def _check_adv(adv: torch.Tensor, n: int, name: str) -> torch.Tensor:
    a = torch.as_tensor(adv).reshape(-1)
    if a.numel() != n:
        raise ValueError(f"{name} has {a.numel()} values, expected one per rollout ({n})")
    return a


def _add_kl(
    loss: torch.Tensor,
    stats: Stats,
    logp_new: torch.Tensor,
    logp_ref: torch.Tensor | None,
    mask: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if beta > 0 and logp_ref is not None:
        if logp_ref.shape != logp_new.shape:
            raise ValueError(
                f"logp_ref has shape {tuple(logp_ref.shape)}, expected {tuple(logp_new.shape)}"
            )
        kl = kl_k3(logp_new, logp_ref, mask)
        stats["kl"] = float(kl.detach())
        loss = loss + beta * kl
    else:
        stats["kl"] = 0.0
    stats["loss"] = float(loss.detach())
    return loss


def _phase_stats(
    stats: Stats,
    name: str,
    lr: torch.Tensor,
    adv: torch.Tensor,
    eps: float,
    mask: torch.Tensor,
    term: torch.Tensor,
) -> None:
    keep = mask.bool().any(dim=1)
    rho = torch.exp(lr.detach())[keep]
    stats[f"clip_frac_{name}"] = clip_fraction(lr, adv, eps, mask)
    stats[f"ratio_mean_{name}"] = float(rho.mean()) if rho.numel() else 1.0
    stats[f"term_{name}"] = float(term.detach().mean())


# --- losses ----------------------------------------------------------------------------
def fgrpo_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    gen_mask: torch.Tensor,
    rank_mask: torch.Tensor,
    adv_gen: torch.Tensor,
    adv_rank: torch.Tensor,
    *,
    lam: float = 1.0,
    eps: float = 0.2,
    beta: float = 0.0,
    logp_ref: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Stats]:
    """``L = -mean_j [T_gen(j) + lam * T_rank(j)] + beta * KL`` (KL over gen ∪ rank tokens).

    Slate tokens receive only ``adv_gen``, ranking tokens only ``adv_rank``. Stats:
    ``loss, kl, clip_frac_{gen,rank}, ratio_mean_{gen,rank}, term_{gen,rank}``.
    """
    _validate(logp_new, logp_old, gen_mask, rank_mask)
    check_masks(gen_mask, rank_mask)
    n = logp_new.shape[0]
    a_gen = _check_adv(adv_gen, n, "adv_gen").to(logp_new.device)
    a_rank = _check_adv(adv_rank, n, "adv_rank").to(logp_new.device)
    lr_gen = sequence_log_ratio(logp_new, logp_old, gen_mask)
    lr_rank = sequence_log_ratio(logp_new, logp_old, rank_mask)
    t_gen = clipped_phase_term(lr_gen, a_gen, eps)
    t_rank = clipped_phase_term(lr_rank, a_rank, eps)
    loss = -(t_gen + lam * t_rank).mean()
    stats: Stats = {}
    _phase_stats(stats, "gen", lr_gen, a_gen, eps, gen_mask, t_gen)
    _phase_stats(stats, "rank", lr_rank, a_rank, eps, rank_mask, t_rank)
    loss = _add_kl(loss, stats, logp_new, logp_ref, gen_mask.bool() | rank_mask.bool(), beta)
    return loss, stats


def grpo_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    completion_mask: torch.Tensor,
    adv: torch.Tensor,
    *,
    eps: float = 0.2,
    beta: float = 0.0,
    logp_ref: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Stats]:
    """GRPO baseline: ``-mean_j T(j) + beta * KL`` with one sequence-level ratio over the whole
    completion and one advantage ``adv`` (from :func:`grpo_advantages`) on every token.
    Stats: ``loss, kl, clip_frac_all, ratio_mean_all, term_all``."""
    return _one_phase_loss(logp_new, logp_old, completion_mask, adv, "all", "adv", eps, beta, logp_ref)


def rank_only_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    rank_mask: torch.Tensor,
    adv_rank: torch.Tensor,
    *,
    eps: float = 0.2,
    beta: float = 0.0,
    logp_ref: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Stats]:
    """Decoupled retrieve-then-rerank baseline: ``-mean_j T_rank(j) + beta * KL`` (KL over rank
    tokens). The slate is forced (the retriever's top m), so its tokens get no term and no
    gradient. Stats: ``loss, kl, clip_frac_rank, ratio_mean_rank, term_rank``."""
    return _one_phase_loss(logp_new, logp_old, rank_mask, adv_rank, "rank", "adv_rank", eps, beta, logp_ref)


def _one_phase_loss(logp_new, logp_old, mask, adv, name: str, adv_name: str, eps: float, beta: float,
                    logp_ref) -> tuple[torch.Tensor, Stats]:
    """``-mean_j T(j) + beta * KL`` with one sequence-level ratio over ``mask`` (GRPO, rank-only)."""
    _validate(logp_new, logp_old, mask)
    a = _check_adv(adv, logp_new.shape[0], adv_name).to(logp_new.device)
    lr = sequence_log_ratio(logp_new, logp_old, mask)
    term = clipped_phase_term(lr, a, eps)
    loss = -term.mean()
    stats: Stats = {}
    _phase_stats(stats, name, lr, a, eps, mask, term)
    return _add_kl(loss, stats, logp_new, logp_ref, mask, beta), stats
