"""Reference rollouts with ``model.generate`` and the grammar's logits processor.

Slower than :func:`recgen.policy.rollout.sample_groups`, same :class:`RolloutBatch`; the tests
check that both agree (greedy) and the rollout benchmark measures the speed-up against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from recgen.policy.rollout import (
    RolloutBatch,
    _assemble,
    _default_max_new_tokens,
    _EvalMode,
    _grammar_module,
    _pad_id,
    _validate,
)


def generate_naive(
    policy: Any,
    prompts: Sequence[Sequence[int]],
    grammar: Any,
    *,
    group_size: int = 8,
    temperature: float = 1.0,
    top_p: float = 1.0,
    max_new_tokens: int | None = None,
    forced_slates: Sequence[Sequence[int] | None] | None = None,
    greedy: bool = False,
    seed: int | None = None,
) -> RolloutBatch:
    """Reference rollouts with ``model.generate(num_return_sequences=G)`` + the grammar's
    ``SlateRankLogitsProcessor``; one ``generate`` call per prompt. Constrained only."""
    from transformers import LogitsProcessorList

    _validate(prompts, group_size, temperature, top_p, forced_slates)
    model, tokenizer = policy.model, policy.tokenizer
    if max_new_tokens is None:
        max_new_tokens = _default_max_new_tokens(grammar, tokenizer)
    forced = list(forced_slates) if forced_slates is not None else [None] * len(prompts)
    pad_id = _pad_id(tokenizer)
    processor_cls = _grammar_module().SlateRankLogitsProcessor
    chunks = []
    if seed is not None:
        torch.manual_seed(seed)
    with _EvalMode(model), torch.inference_mode():
        for prompt, fs in zip(prompts, forced, strict=True):
            ids = torch.tensor([list(prompt)], dtype=torch.long, device=policy.device)
            processor = processor_cls(
                grammar, prompt_length=ids.shape[1], forced_slates=None if fs is None else [fs]
            )
            if greedy:  # generate refuses num_return_sequences > 1 without sampling
                ids = ids.expand(group_size, -1)
                sample_kwargs: dict[str, Any] = {"do_sample": False, "num_return_sequences": 1}
            else:
                sample_kwargs = {
                    "do_sample": True,
                    "temperature": temperature,
                    "top_p": top_p,
                    "top_k": 0,
                    "num_return_sequences": group_size,
                }
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                logits_processor=LogitsProcessorList([processor]),
                return_dict_in_generate=True,
                output_logits=True,
                pad_token_id=pad_id,
                **sample_kwargs,
            )
            seq = out.sequences[:, ids.shape[1] :]
            raw = torch.stack(out.logits, dim=1).float()  # (G, T, V) before any processor
            scaled = raw if greedy else raw / temperature
            lp = scaled.log_softmax(-1).gather(-1, seq[:, : raw.shape[1]].unsqueeze(-1))
            chunks.append(_replay(grammar, seq.cpu(), lp.squeeze(-1).cpu(), fs, pad_id))
    return _assemble(chunks, prompts, grammar, tokenizer, group_size, temperature, True)


def _replay(
    grammar: Any, seq: torch.Tensor, lp: torch.Tensor, forced_slate: Any, pad_id: int
) -> dict[str, Any]:
    """Phase masks and lengths of generated rows, by replaying them through the grammar."""
    rows, width = seq.shape
    gen = torch.zeros((rows, width), dtype=torch.bool)
    rank = torch.zeros((rows, width), dtype=torch.bool)
    lengths = []
    for r in range(rows):
        state = grammar.new_state(forced_slate=forced_slate)
        n = 0
        for t, tok in enumerate(seq[r].tolist()):
            if state.done:
                break
            if state.phase == "rank":
                rank[r, t] = True
            else:
                gen[r, t] = True
            state.advance(tok)
            n = t + 1
        lengths.append(n)
    t_max = max(lengths) if lengths else 0
    ids = seq[:, :t_max].clone()
    lp = lp[:, :t_max].clone()
    keep = torch.arange(t_max).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    ids[~keep] = pad_id
    return {
        "ids": ids,
        "lp": lp * keep,
        "gen": gen[:, :t_max],
        "rank": rank[:, :t_max],
        "lengths": lengths,
    }
