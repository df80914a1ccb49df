"""Group rollouts for GRPO-style training, greedy decoding for serving, and a reference path.

Fast path (:func:`sample_groups`): the prompts of a chunk are encoded ONCE (left padding,
attention mask, position ids; only the last position's logits are computed), the KV cache
is expanded to G rows per prompt (``DynamicCache.batch_repeat_interleave``), then a custom
loop decodes one token per step for all rows. Under the grammar, each row samples among
its ``DecodeState.allowed_token_ids()`` only: the allowed logits are gathered into a small
(rows x allowed) tensor, the rest count as -inf. That is exactly sampling from the
-inf-masked full-vocabulary distribution, without sorting/softmaxing 49k columns per row.
Measured CPU costs addressed (see benchmarks/rollout_speed.py): torch's bf16 sdpa is slow
for one query token, so decode steps use a grouped-matmul attention, and ``DynamicLayer``
copies the whole cache every step, so the cache is moved into preallocated buffers (both in
:mod:`recgen.policy.kernels`); greedy serving without log-probs scores only the allowed
tokens instead of the full (rows x 49k) output layer (``kernels._Forward``).

``old_logprobs`` are the RAW model log-probs of each sampled token at the sampling
temperature: ``log_softmax(logits / T)`` over the whole vocabulary (no grammar mask, no
top-p), which is what a trainer recomputes from a forward pass on prompt + completion
(see :func:`recgen.policy.logprobs.completion_logprobs`). Greedy decoding uses T = 1 for them.

Reference path (:func:`recgen.policy.rollout_reference.generate_naive`):
``model.generate(num_return_sequences=G)`` with the grammar's ``SlateRankLogitsProcessor``;
same output structure, slower.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm
from transformers.cache_utils import DynamicCache

from recgen.policy.kernels import _DecodeAttention, _Forward, _preallocate_cache

logger = logging.getLogger(__name__)

# rows (prompts x G) decoded together. Measured on the 2-core CPU (135M, bf16, G = 8):
# 4 prompts in one left-padded batch took 48 s vs 42 s one prompt at a time, so by
# default each prompt's group is decoded alone (no padding, smaller caches).
DEFAULT_MAX_ROWS = 8


@dataclass
class RolloutBatch:
    """Completions of B prompts x G samples, rows grouped by prompt (row = b * G + g).

    All (R, T) tensors are right-padded; masks are bool; ``old_logprobs`` is 0 outside
    ``completion_mask``. ``gen_mask`` | ``rank_mask`` == ``completion_mask`` and they are
    disjoint. ``completion_ids`` holds the pad token outside the mask.
    """

    completion_ids: torch.Tensor
    completion_mask: torch.Tensor
    gen_mask: torch.Tensor
    rank_mask: torch.Tensor
    old_logprobs: torch.Tensor
    texts: list[str]
    parsed: list[Any]
    group_index: torch.Tensor
    prompt_ids: list[list[int]]
    group_size: int
    temperature: float = 1.0

    @property
    def num_rows(self) -> int:
        return int(self.completion_ids.shape[0])

    @property
    def num_groups(self) -> int:
        return len(self.prompt_ids)

    @property
    def lengths(self) -> torch.Tensor:
        """Number of completion tokens per row."""
        return self.completion_mask.sum(-1)

    def row_prompt_ids(self, row: int) -> list[int]:
        return self.prompt_ids[int(self.group_index[row])]


@dataclass
class Decoded:
    """One greedy completion."""

    token_ids: list[int]
    text: str
    parsed: Any


# --------------------------------------------------------------------------- helpers
def _grammar_module() -> Any:
    from recgen.policy import grammar as grammar_module

    return grammar_module


def _default_max_new_tokens(grammar: Any, tokenizer: Any) -> int:
    """Upper bound on a valid completion's length (+ a margin)."""
    for attr in ("max_new_tokens", "max_tokens", "max_length"):
        value = getattr(grammar, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    n = getattr(grammar, "n_candidates", 20)
    m = getattr(grammar, "slate_size", 10)
    k = getattr(grammar, "rank_size", 5)
    worst = (
        "<slate>" + " ".join([str(n)] * m) + "</slate><rank>" + " ".join([str(n)] * k) + "</rank>"
    )
    return len(tokenizer(worst, add_special_tokens=False).input_ids) + 16


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None) if gen_cfg is not None else None
    if isinstance(eos, int):
        ids.add(eos)
    elif eos:
        ids.update(int(e) for e in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _pad_id(tokenizer: Any) -> int:
    pad = tokenizer.pad_token_id
    return int(pad if pad is not None else tokenizer.eos_token_id)


def _top_p_filter(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Set to -inf the logits outside the smallest set whose probability reaches top_p."""
    if top_p >= 1.0:
        return logits
    sorted_logits, sorted_idx = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    cum = probs.cumsum(-1)
    remove = (cum - probs) > top_p  # keep the token that crosses top_p; always keep the first
    remove[..., 0] = False
    sorted_logits = sorted_logits.masked_fill(remove, float("-inf"))
    return torch.full_like(logits, float("-inf")).scatter(-1, sorted_idx, sorted_logits)


def _choose(
    scores: torch.Tensor, greedy: bool, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Index per row: argmax, or a sample from softmax(scores) after top-p."""
    if greedy:
        return scores.argmax(-1)
    scores = _top_p_filter(scores, top_p)
    probs = scores.softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _phase_masks_unconstrained(grammar: Any, ids: list[int], text: str) -> tuple[list, list]:
    """Phase masks of an unconstrained completion, via the grammar's helper."""
    fn = getattr(grammar, "phase_masks_from_ids", None)
    if fn is not None:
        gen, rank = fn(ids)
    else:
        module = _grammar_module()
        if hasattr(module, "phase_masks_from_ids"):
            gen, rank = module.phase_masks_from_ids(grammar, ids)
        else:
            gen, rank = module.phase_masks_from_text(grammar.tokenizer, ids)
    return [bool(x) for x in gen], [bool(x) for x in rank]


def _parse(grammar: Any, text: str) -> Any:
    return _grammar_module().parse_output(
        text, grammar.n_candidates, grammar.slate_size, grammar.rank_size
    )


def _validate(
    prompts: Sequence[Sequence[int]],
    group_size: int,
    temperature: float,
    top_p: float,
    forced_slates: Sequence[Any] | None,
) -> None:
    if not prompts:
        raise ValueError("prompts is empty: pass at least one list of token ids.")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token.")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}.")
    if not temperature > 0:
        raise ValueError(
            f"temperature must be > 0 (use greedy=True for argmax), got {temperature}."
        )
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}.")
    if forced_slates is not None and len(forced_slates) != len(prompts):
        raise ValueError(
            f"forced_slates has {len(forced_slates)} entries for {len(prompts)} prompts; "
            "give one slate (or None) per prompt."
        )


# --------------------------------------------------------------------------- fast path
def _encode_chunk(
    forward: _Forward,
    config: Any,
    prompts: Sequence[Sequence[int]],
    pad_id: int,
    group_size: int,
    capacity: int | None = None,
) -> tuple[Any, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Forward the (left-padded) prompts once; expand the cache and last output to G rows.

    Returns (cache, last logits (R, V) fp32 or hidden (R, d), attention mask (R, P) or None,
    next positions (R,)).
    """
    lengths = [len(p) for p in prompts]
    width = max(lengths)
    padded = any(n != width for n in lengths)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = torch.as_tensor(list(p), dtype=torch.long)
        attn[i, width - len(p) :] = 1
    ids, attn = ids.to(forward.device), attn.to(forward.device)
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=config)
    last = forward(ids, attn if padded else None, positions, cache)
    if group_size > 1:
        cache.batch_repeat_interleave(group_size)
        last = last.repeat_interleave(group_size, dim=0)
    if capacity is not None:
        _preallocate_cache(cache, capacity)
    next_pos = (positions[:, -1] + 1).repeat_interleave(group_size)
    mask = attn.repeat_interleave(group_size, dim=0) if padded else None
    return cache, last, mask, next_pos


def _decode_chunk(
    model: Any,
    tokenizer: Any,
    grammar: Any,
    prompts: Sequence[Sequence[int]],
    forced: Sequence[Any],
    *,
    group_size: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    greedy: bool,
    constrained: bool,
    generator: torch.Generator | None,
    preallocate: bool = True,
    logprobs: bool = True,
) -> dict[str, Any]:
    pad_id = _pad_id(tokenizer)
    eos_ids = _eos_ids(model, tokenizer)
    forward = _Forward(model, head_only=not logprobs and greedy and constrained)
    capacity = max(len(p) for p in prompts) + max_new_tokens if preallocate else None
    cache, last, prompt_mask, next_pos = _encode_chunk(
        forward, model.config, prompts, pad_id, group_size, capacity
    )
    rows = last.shape[0]
    device = last.device
    if constrained:
        states = [grammar.new_state(forced_slate=forced[r // group_size]) for r in range(rows)]
    finished = [False] * rows
    out_ids = torch.full((rows, max_new_tokens), pad_id, dtype=torch.long, device=device)
    out_lp = torch.zeros((rows, max_new_tokens), dtype=torch.float32, device=device)
    phases: list[list[bool]] = [[] for _ in range(rows)]  # True = rank phase
    attn = None
    if prompt_mask is not None:
        ones = torch.ones((rows, max_new_tokens), dtype=torch.long, device=device)
        attn = torch.cat([prompt_mask, ones], dim=1)
    width = prompt_mask.shape[1] if prompt_mask is not None else 0
    pad_allowed = torch.tensor([pad_id], dtype=torch.long)
    inv_t = 1.0 / temperature
    row_index = torch.arange(rows, device=device)

    # jump-forward (serving: one greedy row, no log-probs): tokens the grammar forces (the
    # only allowed one) are appended without choosing them and fed in one multi-token
    # forward with the chosen token; nothing is forwarded after the grammar is done
    jump = rows == 1 and constrained and forward.head_only
    t = 0  # completion tokens written so far
    while t < max_new_tokens:
        if forward.head_only:
            scaled = None
        else:
            scaled = last if (greedy or inv_t == 1.0) else last * inv_t
        if constrained:
            allowed = [
                pad_allowed if finished[r] else states[r].allowed_token_ids() for r in range(rows)
            ]
            cand = torch.nn.utils.rnn.pad_sequence(allowed, batch_first=True, padding_value=-1)
            cand = cand.to(device, non_blocking=True)
            valid = cand >= 0
            cand = cand.clamp(min=0)
            sub = forward.score(last, cand) if scaled is None else scaled.gather(1, cand)
            pick = _choose(sub.masked_fill_(~valid, float("-inf")), greedy, top_p, generator)
            tokens = cand[row_index, pick]
        else:
            tokens = _choose(scaled, greedy, top_p, generator)
        if scaled is not None and logprobs:
            out_lp[:, t] = scaled[row_index, tokens] - torch.logsumexp(scaled, dim=-1)
        tok_list = tokens.tolist()
        out_ids[:, t] = tokens
        for r in range(rows):
            if finished[r]:
                continue
            if constrained:
                state = states[r]
                phases[r].append(state.phase == "rank")
                state.advance(tok_list[r])
                finished[r] = bool(state.done)
            else:
                phases[r].append(False)
                finished[r] = tok_list[r] in eos_ids
        start, t = t, t + 1
        while jump and not finished[0] and t < max_new_tokens:
            only = states[0].allowed_token_ids()
            if len(only) != 1:
                break
            phases[0].append(states[0].phase == "rank")
            states[0].advance(int(only[0]))
            finished[0] = bool(states[0].done)
            out_ids[0, t] = only[0]
            t += 1
        if all(finished) or t >= max_new_tokens:
            break
        step_mask = attn[:, : width + t] if attn is not None else None
        offsets = torch.arange(start, t, device=device).unsqueeze(0)
        last = forward(out_ids[:, start:t], step_mask, next_pos.unsqueeze(1) + offsets, cache)
    lengths = [len(p) for p in phases]
    t_max = max(lengths) if lengths else 0
    keep = torch.arange(t_max).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    rank = torch.zeros((rows, t_max), dtype=torch.bool)
    for r, ph in enumerate(phases):
        rank[r, : len(ph)] = torch.tensor(ph, dtype=torch.bool)
    ids = out_ids[:, :t_max].cpu().masked_fill(~keep, pad_id)
    return {
        "ids": ids,
        "lp": out_lp[:, :t_max].cpu() * keep,
        "gen": keep & ~rank,
        "rank": rank & keep,
        "lengths": lengths,
    }


def _assemble(
    chunks: list[dict[str, Any]],
    prompts: Sequence[Sequence[int]],
    grammar: Any,
    tokenizer: Any,
    group_size: int,
    temperature: float,
    constrained: bool,
) -> RolloutBatch:
    pad_id = _pad_id(tokenizer)
    t_max = max(c["ids"].shape[1] for c in chunks)

    def cat(key: str, fill: Any) -> torch.Tensor:
        parts = []
        for c in chunks:
            x = c[key]
            if x.shape[1] < t_max:
                pad = torch.full((x.shape[0], t_max - x.shape[1]), fill, dtype=x.dtype)
                x = torch.cat([x, pad], dim=1)
            parts.append(x)
        return torch.cat(parts, dim=0).clone()

    ids = cat("ids", pad_id)
    lp = cat("lp", 0.0)
    gen = cat("gen", False)
    rank = cat("rank", False)
    lengths = [n for c in chunks for n in c["lengths"]]
    comp_mask = torch.arange(t_max).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    texts: list[str] = []
    for r, n in enumerate(lengths):
        row = ids[r, :n].tolist()
        texts.append(tokenizer.decode(row, skip_special_tokens=True))
        if not constrained:
            g, k = _phase_masks_unconstrained(grammar, row, texts[-1])
            gen[r, :n] = torch.tensor(g, dtype=torch.bool)
            rank[r, :n] = torch.tensor(k, dtype=torch.bool)
    if not constrained:
        # tokens the grammar assigns to no phase (e.g. junk, eos) count as generation tokens,
        # so the two masks still cover the completion exactly
        gen = comp_mask & ~rank
    parsed = [_parse(grammar, t) for t in texts]
    group_index = torch.arange(len(prompts)).repeat_interleave(group_size)
    return RolloutBatch(
        completion_ids=ids,
        completion_mask=comp_mask,
        gen_mask=gen & comp_mask,
        rank_mask=rank & comp_mask,
        old_logprobs=lp * comp_mask,
        texts=texts,
        parsed=parsed,
        group_index=group_index,
        prompt_ids=[list(p) for p in prompts],
        group_size=group_size,
        temperature=temperature,
    )


class _EvalMode:
    """Put a model in eval mode for the duration of a block, then restore its mode."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.was_training = self.model.training
        self.model.eval()

    def __exit__(self, *exc: object) -> None:
        self.model.train(self.was_training)


def sample_groups(
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
    constrained: bool = True,
    seed: int | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    progress: bool = False,
    fast_attention: bool = True,
    preallocate_cache: bool = True,
    logprobs: bool = True,
) -> RolloutBatch:
    """Sample ``group_size`` completions per prompt (fast path; see the module docstring).

    ``prompts``: token ids per prompt (e.g. ``Prompt.input_ids``). ``forced_slates``: one
    slate (1-based positions) or None per prompt; a forced slate is written verbatim and
    only the ranking is sampled. ``greedy``: argmax (every row of a group is identical).
    ``constrained=False`` samples freely (until eos or ``max_new_tokens``) to measure how
    often a model fails on its own. Prompts are decoded in chunks of at most ``max_rows``
    rows (``max_rows // group_size`` prompts, at least one). ``seed`` makes the sampling
    reproducible for the same prompts, chunking and model. ``fast_attention`` (CPU, sdpa
    models): decode steps use :func:`recgen.policy.kernels.decode_attention_forward`; ``preallocate_cache``: the
    KV cache is written into preallocated buffers instead of concatenated every step.
    ``logprobs=False`` (with ``greedy``, constrained): ``old_logprobs`` are left at 0 and
    only the allowed tokens are scored, skipping the full-vocabulary output layer (serving).
    """
    _validate(prompts, group_size, temperature, top_p, forced_slates)
    model, tokenizer = policy.model, policy.tokenizer
    if max_new_tokens is None:
        max_new_tokens = _default_max_new_tokens(grammar, tokenizer)
    forced = list(forced_slates) if forced_slates is not None else [None] * len(prompts)
    if not constrained and any(f is not None for f in forced):
        raise ValueError("forced_slates needs constrained=True (the grammar writes the slate).")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    per_chunk = max(1, max_rows // group_size)
    starts = range(0, len(prompts), per_chunk)
    chunks = []
    with _EvalMode(model), _DecodeAttention(model, fast_attention), torch.inference_mode():
        for s in tqdm(starts, desc="rollouts", disable=not progress or len(starts) < 2):
            chunks.append(
                _decode_chunk(
                    model,
                    tokenizer,
                    grammar,
                    prompts[s : s + per_chunk],
                    forced[s : s + per_chunk],
                    group_size=group_size,
                    temperature=temperature,
                    top_p=top_p,
                    max_new_tokens=max_new_tokens,
                    greedy=greedy,
                    constrained=constrained,
                    generator=generator,
                    preallocate=preallocate_cache,
                    logprobs=logprobs,
                )
            )
    return _assemble(chunks, prompts, grammar, tokenizer, group_size, temperature, constrained)


def greedy_decode(
    policy: Any,
    prompt_ids: Sequence[int],
    grammar: Any,
    *,
    forced_slate: Sequence[int] | None = None,
    max_new_tokens: int | None = None,
) -> Decoded:
    """Greedy constrained decoding of one prompt (serving; G = 1)."""
    batch = sample_groups(
        policy,
        [prompt_ids],
        grammar,
        group_size=1,
        greedy=True,
        max_new_tokens=max_new_tokens,
        forced_slates=[forced_slate],
        logprobs=False,
    )
    n = int(batch.lengths[0])
    return Decoded(
        token_ids=batch.completion_ids[0, :n].tolist(), text=batch.texts[0], parsed=batch.parsed[0]
    )


def tokens_per_second(batch: RolloutBatch, seconds: float) -> float:
    """Generated (masked) tokens per second."""
    return float(batch.completion_mask.sum()) / seconds if seconds > 0 else math.inf
