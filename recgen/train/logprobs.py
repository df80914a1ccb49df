"""Per-token log-probabilities of completions under a (trainable) causal LM.

Prompts of different lengths are left-padded so that every completion starts at the same
column; only the logits of completion positions are materialised (``logits_to_keep``), which
matters with a 49k vocabulary: 8 rows x 600 prompt tokens of fp32 logits would be ~1 GB.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def completion_logprobs(
    model: torch.nn.Module,
    prompts: Sequence[Sequence[int]],
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    pad_id: int,
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (R, T) of ``completion_ids`` given ``prompts[r]``, at ``temperature``.

    Positions outside ``completion_mask`` hold 0. Returns (logprobs, entropy or None).
    """
    rows, t = completion_ids.shape
    if len(prompts) != rows:
        raise ValueError(f"{len(prompts)} prompts for {rows} completion rows")
    p_max = max(len(p) for p in prompts)
    device = completion_ids.device
    input_ids = torch.full((rows, p_max + t), pad_id, dtype=torch.long, device=device)
    attn = torch.zeros((rows, p_max + t), dtype=torch.long, device=device)
    for r, p in enumerate(prompts):
        input_ids[r, p_max - len(p): p_max] = torch.as_tensor(p, dtype=torch.long, device=device)
        attn[r, p_max - len(p): p_max] = 1
    input_ids[:, p_max:] = torch.where(completion_mask.bool(), completion_ids, pad_id)
    attn[:, p_max:] = completion_mask.long()
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attn, position_ids=position_ids,
                logits_to_keep=t + 1, use_cache=False)
    logits = out.logits[:, :-1, :].float() / temperature  # logits predicting completion tokens
    logp_all = torch.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    mask = completion_mask.bool()
    logp = torch.where(mask, logp, torch.zeros_like(logp))
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            entropy = torch.where(mask, entropy, torch.zeros_like(entropy))
    return logp, entropy
