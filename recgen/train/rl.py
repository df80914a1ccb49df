"""The RL loop for F-GRPO and its baselines (GRPO, decoupled rerank).

One step: take P prompts, sample a group of G constrained rollouts for each (prompt encoded
once, KV cache shared), score the slate with coverage and the ranking with NDCG@k, turn the
rewards into group-relative advantages, and take ``updates_per_batch`` optimizer passes
over the clipped objective of :mod:`recgen.train.objectives`.

Why not TRL's GRPOTrainer: see docs/decisions.md (per-phase sequence-level ratios and
prefix-shared grammar-constrained rollouts would replace both of its core methods).
"""

from __future__ import annotations

import json
import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recgen.examples import Example
from recgen.policy.logprobs import completion_logprobs, group_logprobs
from recgen.rewards import rollout_rewards
from recgen.train import objectives as obj
from recgen.train.checkpoint import load_latest, save_checkpoint
from recgen.train.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class StepRewards:
    r_gen: torch.Tensor  # (P*G,)
    r_rank: torch.Tensor  # (P*G,)
    n_invalid: int


def score_rollouts(examples: list[Example], parsed: list[Any], group_size: int, cfg: TrainConfig) -> StepRewards:
    """Rewards of each rollout row (row r belongs to examples[r // G])."""
    r_gen, r_rank, invalid = [], [], 0
    for r, out in enumerate(parsed):
        ex = examples[r // group_size]
        invalid += out.error is not None
        rr = rollout_rewards(out, ex.relevant, k=cfg.rank_size, penalty=cfg.format_penalty, order=ex.order)
        r_gen.append(rr.r_gen)
        r_rank.append(rr.r_rank)
    return StepRewards(torch.tensor(r_gen, dtype=torch.float32), torch.tensor(r_rank, dtype=torch.float32), invalid)


def phase_advantages(rw: StepRewards, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(A_gen, A_rank) per row for the configured method (GRPO: the joint advantage in both)."""
    g = cfg.group_size
    if cfg.method == "grpo":
        joint = obj.grpo_advantages(rw.r_gen, rw.r_rank, g, lam=cfg.lam, scale_by_std=cfg.scale_by_std)
        return joint, joint
    a_gen = obj.group_advantages(rw.r_gen, g, scale_by_std=cfg.scale_by_std)
    a_rank = obj.group_advantages(rw.r_rank, g, scale_by_std=cfg.scale_by_std)
    if cfg.method == "decoupled":
        a_gen = torch.zeros_like(a_gen)
    return a_gen, a_rank


def method_loss(cfg: TrainConfig, logp_new, logp_old, batch, a_gen, a_rank, logp_ref=None):
    """The objective of ``cfg.method`` on one micro-batch; returns (loss, stats)."""
    common = dict(eps=cfg.clip_eps, beta=cfg.beta, logp_ref=logp_ref)
    if cfg.method == "fgrpo":
        return obj.fgrpo_loss(logp_new, logp_old, batch["gen_mask"], batch["rank_mask"], a_gen, a_rank,
                              lam=cfg.lam, **common)
    if cfg.method == "grpo":
        return obj.grpo_loss(logp_new, logp_old, batch["completion_mask"], a_gen, **common)
    if cfg.method == "decoupled":
        return obj.rank_only_loss(logp_new, logp_old, batch["rank_mask"], a_rank, **common)
    raise ValueError(f"{cfg.method!r} is not an RL method")


def enable_gradient_checkpointing(model) -> None:
    """Recompute activations in the backward pass (bf16 LoRA on 8 x 650 tokens: ~11 GB → a few GB)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()  # peft: checkpointed blocks need a grad-requiring input


def _scheduler(optimizer, cfg: TrainConfig):
    def lr_at(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)


def _batch_for_step(n_examples: int, step: int, per_step: int, seed: int) -> list[int]:
    """Indices of the examples of ``step``: epochs of seeded permutations (resume-safe)."""
    out = []
    for j in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(j, n_examples)
        perm = np.random.default_rng(seed + 7919 * epoch).permutation(n_examples)
        out.append(int(perm[pos]))
    return out


def train_rl(policy, grammar, examples: list[Example], cfg: TrainConfig, out_dir: Path, *,
             resume: bool = False, tracker=None) -> list[dict[str, Any]]:
    """Run ``cfg.steps`` RL steps; checkpoints under ``out_dir/checkpoints``; returns the step logs."""
    from recgen.policy.rollout import sample_groups

    model, tok = policy.model, policy.tokenizer
    if cfg.gradient_checkpointing and not cfg.shared_prefix:
        enable_gradient_checkpointing(model)  # the shared-prefix update needs the KV cache
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    scheduler = _scheduler(optimizer, cfg)
    ckpt_dir = Path(out_dir) / "checkpoints"
    metrics_path = Path(out_dir) / "metrics.jsonl"
    start = 0
    if resume:
        resumed = load_latest(ckpt_dir, model, optimizer, scheduler, expect={"method": cfg.method})
        if resumed is not None:
            start = resumed.step
    _truncate_metrics(metrics_path, start)
    g = cfg.group_size
    logs: list[dict[str, Any]] = []
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, desc=f"{cfg.method} steps")
    for step in bar:
        t0 = time.perf_counter()
        idx = _batch_for_step(len(examples), step, cfg.prompts_per_step, cfg.seed)
        batch_ex = [examples[i] for i in idx]
        forced = [ex.retriever_slate(cfg.slate_size) for ex in batch_ex] if cfg.method == "decoupled" else None
        model.eval()
        rb = sample_groups(policy, [list(ex.input_ids) for ex in batch_ex], grammar, group_size=g,
                       temperature=cfg.temperature, forced_slates=forced, constrained=cfg.constrained,
                       seed=cfg.seed * 100_003 + step)
        t_roll = time.perf_counter() - t0
        rw = score_rollouts(batch_ex, rb.parsed, g, cfg)
        a_gen, a_rank = phase_advantages(rw, cfg)
        stats = _update(model, cfg, batch_ex, rb, a_gen, a_rank, optimizer, pad_id)
        scheduler.step()
        t_step = time.perf_counter() - t0
        n_tok = int(rb.completion_mask.sum())
        log = {
            "step": step + 1,
            "reward_gen": float(rw.r_gen.mean()), "reward_rank": float(rw.r_rank.mean()),
            "adv_std_gen": float(a_gen.std()), "adv_std_rank": float(a_rank.std()),
            "frac_zero_adv_gen": obj.zero_advantage_fraction(rw.r_gen, g),
            "frac_zero_adv_rank": obj.zero_advantage_fraction(rw.r_rank, g),
            "invalid_frac": rw.n_invalid / len(rb.parsed),
            "rollout_s": t_roll, "update_s": t_step - t_roll, "step_s": t_step,
            "tokens_per_s": n_tok / t_step, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "lr": scheduler.get_last_lr()[0], **stats,
        }
        logs.append(log)
        with metrics_path.open("a") as fh:
            fh.write(json.dumps(log) + "\n")
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in log.items() if k != "step"}, step=step + 1)
        bar.set_postfix(r_gen=f"{log['reward_gen']:.2f}", r_rank=f"{log['reward_rank']:.2f}", s=f"{t_step:.1f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(ckpt_dir, step + 1, model, optimizer, scheduler,
                            {"data_position": (step + 1) * cfg.prompts_per_step, "method": cfg.method},
                            keep=cfg.keep_checkpoints)
    return logs


def _update(model, cfg, batch_ex, rb, a_gen, a_rank, optimizer, pad_id) -> dict[str, float]:
    """``updates_per_batch`` optimizer passes over the rollouts of one step.

    With ``cfg.shared_prefix`` a micro-batch is one prompt's group, whose prompt is encoded
    once (:func:`recgen.policy.logprobs.group_logprobs`); else micro-batches of
    ``cfg.micro_batch`` rows repeat their prompts (:func:`completion_logprobs`).
    """
    g = cfg.group_size
    rows = rb.completion_ids.shape[0]
    size = g if cfg.shared_prefix else cfg.micro_batch
    chunks = [list(range(s, min(s + size, rows))) for s in range(0, rows, size)]
    batches = [{k: getattr(rb, k)[c] for k in ("completion_ids", "completion_mask", "gen_mask", "rank_mask")}
               for c in chunks]

    def logprobs(ci: int, with_entropy: bool = False):
        c, b = chunks[ci], batches[ci]
        if cfg.shared_prefix:
            return group_logprobs(model, batch_ex[c[0] // g].input_ids, b["completion_ids"], b["completion_mask"],
                                  pad_id=pad_id, temperature=cfg.temperature, with_entropy=with_entropy)
        return completion_logprobs(model, [batch_ex[r // g].input_ids for r in c], b["completion_ids"],
                                   b["completion_mask"], pad_id=pad_id, temperature=cfg.temperature,
                                   with_entropy=with_entropy)

    old: dict[int, torch.Tensor] = {}
    ref: dict[int, torch.Tensor] = {}
    if cfg.updates_per_batch > 1 or cfg.beta > 0:
        with torch.no_grad():
            for ci in range(len(chunks)):
                if cfg.updates_per_batch > 1:
                    old[ci] = logprobs(ci)[0]
                if cfg.beta > 0:
                    ref[ci] = _reference_logprobs(model, lambda ci=ci: logprobs(ci)[0])
    model.train()
    sums: dict[str, float] = {}
    entropy_sum, entropy_n = 0.0, 0
    for _ in range(cfg.updates_per_batch):
        optimizer.zero_grad(set_to_none=True)
        for ci, c in enumerate(chunks):
            b = batches[ci]
            logp, ent = logprobs(ci, with_entropy=True)
            logp_old = old.get(ci, logp.detach())
            loss, st = method_loss(cfg, logp, logp_old, b, a_gen[c], a_rank[c], ref.get(ci))
            (loss * len(c) / rows).backward()
            for k, v in st.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(c) / rows / cfg.updates_per_batch
            entropy_sum += float(ent.sum())
            entropy_n += int(b["completion_mask"].sum())
        grad_norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                   cfg.max_grad_norm)
        if not torch.isfinite(grad_norm):  # one bad batch must not turn every weight into NaN
            logger.warning("non-finite gradient norm (%s): optimizer step skipped", float(grad_norm))
            optimizer.zero_grad(set_to_none=True)
            sums["skipped_steps"] = sums.get("skipped_steps", 0.0) + 1
            continue
        optimizer.step()
    sums["grad_norm"] = float(grad_norm)
    sums["entropy"] = entropy_sum / max(entropy_n, 1)
    return sums


def _reference_logprobs(model, compute) -> torch.Tensor:
    """Log-probs under the starting policy: the base model with LoRA adapters disabled."""
    if not hasattr(model, "disable_adapter"):
        raise NotImplementedError("beta > 0 needs a LoRA model (the reference is the base with adapters off)")
    with model.disable_adapter():
        return compute()


def _truncate_metrics(path: Path, upto_step: int) -> None:
    """Drop logged steps after ``upto_step`` (a resumed run redoes them)."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= upto_step]
    path.write_text("".join(ln + "\n" for ln in keep))
