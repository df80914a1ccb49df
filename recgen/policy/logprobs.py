"""Per-token log-probabilities (and optionally entropies) of completions under a causal LM.

The one implementation shared by rollouts (tests check ``RolloutBatch.old_logprobs``
against it) and the RL trainer (``recgen.train.rl``). Rows are laid out as
[left pad][prompt][completion, right-padded], so every completion starts at the same
column; only the logits of completion positions are computed (``logits_to_keep=t + 1``),
which matters with a 49k vocabulary: 8 rows x 600 prompt tokens of fp32 logits would be
~1 GB. The entropy is a diagnostic, computed under ``no_grad`` (no graph through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from recgen.policy.kernels import _cache_kwarg


def completion_logprobs(
    model: Any,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    pad_id: int = 0,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (R, T) of ``completion_ids`` given ``prompt_ids[r]``; always a pair.

    Returns ``(logp, entropy)``: ``logp`` is ``log_softmax(logits / temperature)`` at each
    completion token (grad-enabled unless called under ``no_grad``), the quantity
    ``RolloutBatch.old_logprobs`` holds; ``entropy`` is the (R, T) entropy of that
    temperature-scaled distribution (detached) if ``with_entropy``, else None. Both are 0
    outside ``completion_mask`` and live on the model's device. One forward pass, no KV cache.
    """
    rows, t = completion_ids.shape
    if len(prompt_ids) != rows:
        raise ValueError(f"{len(prompt_ids)} prompts for {rows} completion rows")
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("every prompt needs at least one token.")
    device = next(model.parameters()).device
    mask = completion_mask.to(device).bool()
    # tokens outside the mask may be anything: feed (and gather) the pad id there
    targets = torch.where(mask, completion_ids.to(device), pad_id)
    p_max = max(len(p) for p in prompt_ids)
    ids = torch.full((rows, p_max + t), pad_id, dtype=torch.long, device=device)
    attn = torch.zeros((rows, p_max + t), dtype=torch.long, device=device)
    for r, p in enumerate(prompt_ids):
        ids[r, p_max - len(p) : p_max] = torch.as_tensor(list(p), dtype=torch.long, device=device)
        attn[r, p_max - len(p) : p_max] = 1
    ids[:, p_max:] = targets
    attn[:, p_max:] = mask.long()
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    logits = model(
        input_ids=ids,
        attention_mask=attn,
        position_ids=positions,
        logits_to_keep=t + 1,
        use_cache=False,
    ).logits
    # position p_max - 1 + i predicts completion token i
    return _gather(logits[:, :-1, :], targets, mask, temperature, with_entropy)


def _gather(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, temperature: float,
            with_entropy: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs of ``targets`` under ``logits`` (R, T, V) at ``temperature``; 0 outside ``mask``."""
    logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = logits.log_softmax(-1)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    logp = torch.where(mask, logp, torch.zeros_like(logp))
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = logp_all.exp().mul_(logp_all).sum(-1).neg_()
            entropy = torch.where(mask, entropy, torch.zeros_like(entropy))
    return logp, entropy


def group_logprobs(
    model: Any,
    prompt_ids: Sequence[int],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    pad_id: int = 0,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`completion_logprobs` for G completions of ONE prompt, with the prompt encoded once.

    The prompt's forward pass runs on one row; its KV cache is repeated to G rows
    (``repeat_interleave``, differentiable) and the completions attend to it. The result and
    its gradient equal those of G separate prompt+completion passes (the G prompt passes are
    identical), for ~1/G of the prompt's compute and activation memory: with a 600-token
    prompt and ~50-token completions, 8 x 650 tokens become 600 + 8 x 50. It needs the KV
    cache, so gradient checkpointing must be off for the model while it runs.
    """
    from transformers import DynamicCache

    rows, t = completion_ids.shape
    if len(prompt_ids) == 0:
        raise ValueError("the prompt needs at least one token.")
    device = next(model.parameters()).device
    mask = completion_mask.to(device).bool()
    targets = torch.where(mask, completion_ids.to(device), pad_id)
    p = len(prompt_ids)
    prompt = torch.as_tensor(list(prompt_ids), dtype=torch.long, device=device).unsqueeze(0)
    cache = DynamicCache()
    head = model(input_ids=prompt, use_cache=True, logits_to_keep=1, **{_cache_kwarg(model): cache}).logits
    cache.batch_repeat_interleave(rows)
    attn = torch.cat([torch.ones((rows, p), dtype=torch.long, device=device), mask.long()], dim=1)
    positions = torch.arange(p, p + t, device=device).unsqueeze(0).expand(rows, t)
    body = model(input_ids=targets, attention_mask=attn, position_ids=positions, use_cache=True,
                 **{_cache_kwarg(model): cache}).logits
    # the prompt's last position predicts completion token 0; completion token i predicts i + 1
    logits = torch.cat([head.expand(rows, 1, head.shape[-1]), body[:, :-1, :]], dim=1)
    return _gather(logits, targets, mask, temperature, with_entropy)
