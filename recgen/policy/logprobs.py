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
    logits = logits[:, :-1, :].float()  # position p_max - 1 + i predicts completion token i
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
