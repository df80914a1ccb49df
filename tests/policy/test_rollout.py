"""Rollouts with the tiny random Llama: shapes, masks, validity, log-probs, determinism."""

from __future__ import annotations

import pytest
import torch

from recgen.policy.logprobs import completion_logprobs
from recgen.policy.models import LoraConfig, build_tiny_policy
from recgen.policy.rollout import greedy_decode, sample_groups
from recgen.policy.rollout_reference import generate_naive

G = 4


@pytest.fixture(scope="module")
def batch(tiny_policy, grammar, prompts):
    return sample_groups(tiny_policy, prompts, grammar, group_size=G, temperature=1.0, seed=0)


def _recompute_single(policy, batch, temperature):
    """Per-row plain forward on prompt + completion (no padding at all)."""
    out = torch.zeros_like(batch.old_logprobs)
    with torch.no_grad():
        for r in range(batch.num_rows):
            n = int(batch.lengths[r])
            prompt = batch.row_prompt_ids(r)
            ids = torch.tensor([prompt + batch.completion_ids[r, :n].tolist()])
            logits = policy.model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1].float()
            lp = (logits / temperature).log_softmax(-1)
            out[r, :n] = lp.gather(-1, ids[0, len(prompt) :, None]).squeeze(-1)
    return out


def test_shapes(batch, prompts):
    rows = len(prompts) * G
    assert batch.num_rows == rows and batch.num_groups == len(prompts) and batch.group_size == G
    t = batch.completion_ids.shape[1]
    for x in (batch.completion_mask, batch.gen_mask, batch.rank_mask, batch.old_logprobs):
        assert x.shape == (rows, t)
    assert batch.completion_mask.dtype == torch.bool
    assert batch.group_index.tolist() == [b for b in range(len(prompts)) for _ in range(G)]
    assert len(batch.texts) == len(batch.parsed) == rows
    assert batch.lengths.max() == t


def test_masks_disjoint_and_cover_completion(batch, tiny_policy):
    assert not (batch.gen_mask & batch.rank_mask).any()
    assert torch.equal(batch.gen_mask | batch.rank_mask, batch.completion_mask)
    # every row has both phases; the slate comes first
    for r in range(batch.num_rows):
        gen = batch.gen_mask[r].nonzero().squeeze(-1)
        rank = batch.rank_mask[r].nonzero().squeeze(-1)
        assert len(gen) > 0 and len(rank) > 0 and gen.max() < rank.min()
    # masks are prefixes: no hole inside a completion
    lengths = batch.lengths
    expected = torch.arange(batch.completion_ids.shape[1])[None] < lengths[:, None]
    assert torch.equal(batch.completion_mask, expected)
    pad = tiny_policy.tokenizer.pad_token_id
    assert (batch.completion_ids[~batch.completion_mask] == pad).all()
    assert (batch.old_logprobs[~batch.completion_mask] == 0).all()


def test_every_constrained_rollout_parses(batch):
    for text, p in zip(batch.texts, batch.parsed, strict=True):
        assert p.error is None, text
        assert text.startswith("<slate>")
        assert len(p.slate) == 10 and len(set(p.slate)) == 10
        assert len(p.ranking) == 5 and set(p.ranking) <= set(p.slate)
        assert all(1 <= x <= 20 for x in p.slate)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_old_logprobs_match_full_forward(tiny_policy, grammar, prompts, temperature):
    batch = sample_groups(
        tiny_policy, prompts, grammar, group_size=G, temperature=temperature, seed=1
    )
    assert (batch.old_logprobs[batch.completion_mask] < 0).all()
    single = _recompute_single(tiny_policy, batch, temperature)
    assert torch.allclose(batch.old_logprobs, single, atol=1e-4), (
        (batch.old_logprobs - single).abs().max()
    )
    row_prompts = [batch.row_prompt_ids(r) for r in range(batch.num_rows)]
    with torch.no_grad():
        batched, entropy = completion_logprobs(
            tiny_policy.model,
            row_prompts,
            batch.completion_ids,
            batch.completion_mask,
            temperature=temperature,
            pad_id=tiny_policy.tokenizer.pad_token_id,
        )
    assert entropy is None
    assert torch.allclose(batch.old_logprobs, batched, atol=1e-4)


def test_rollout_tensors_usable_with_autograd(tiny_policy, batch):
    """Outputs are normal tensors (not inference tensors): a trainer can backprop through them."""
    model = tiny_policy.model
    model.train()
    try:
        lp, _ = completion_logprobs(
            model,
            [batch.row_prompt_ids(r) for r in range(2)],
            batch.completion_ids[:2],
            batch.completion_mask[:2],
            pad_id=tiny_policy.tokenizer.pad_token_id,
        )
        (lp - batch.old_logprobs[:2]).sum().backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()
    assert not model.training


def test_completion_entropy(tiny_policy, batch):
    """with_entropy: the (detached) entropy of the tempered distribution, 0 outside the mask;
    the log-probs are the same as without it. ``recgen.policy`` re-exports the function."""
    import recgen.policy

    assert recgen.policy.completion_logprobs is completion_logprobs
    rows, temperature = 3, 0.7
    args = (
        tiny_policy.model,
        [batch.row_prompt_ids(r) for r in range(rows)],
        batch.completion_ids[:rows],
        batch.completion_mask[:rows],
    )
    kw = {"pad_id": tiny_policy.tokenizer.pad_token_id, "temperature": temperature}
    lp, ent = completion_logprobs(*args, with_entropy=True, **kw)
    lp_only, none = completion_logprobs(*args, **kw)
    assert none is None and torch.equal(lp, lp_only)
    assert lp.requires_grad and not ent.requires_grad and ent.shape == lp.shape
    mask = batch.completion_mask[:rows]
    assert (ent[~mask] == 0).all() and (ent[mask] > 0).all()
    with torch.no_grad():
        r, n = 0, int(batch.lengths[0])
        ids = torch.tensor([args[1][r] + batch.completion_ids[r, :n].tolist()])
        logits = tiny_policy.model(input_ids=ids, logits_to_keep=n + 1).logits[0, :-1].float()
        logp = (logits / temperature).log_softmax(-1)
        want = -(logp.exp() * logp).sum(-1)
    assert torch.allclose(ent[r, :n], want, atol=1e-4)


def test_seeded_sampling_is_reproducible(tiny_policy, grammar, prompts):
    a = sample_groups(tiny_policy, prompts, grammar, group_size=G, seed=7)
    b = sample_groups(tiny_policy, prompts, grammar, group_size=G, seed=7)
    c = sample_groups(tiny_policy, prompts, grammar, group_size=G, seed=8)
    assert torch.equal(a.completion_ids, b.completion_ids)
    assert torch.equal(a.old_logprobs, b.old_logprobs)
    assert a.texts != c.texts
    # rows within a group differ when sampling (random tiny model: near-uniform choices)
    assert len(set(a.texts[:G])) > 1


def test_greedy_rows_identical(tiny_policy, grammar, prompts):
    batch = sample_groups(tiny_policy, prompts, grammar, group_size=3, greedy=True)
    for b in range(len(prompts)):
        rows = batch.completion_ids[3 * b : 3 * b + 3]
        assert (rows == rows[0]).all()
    assert all(p.error is None for p in batch.parsed)


def test_tiny_top_p_equals_greedy(tiny_policy, grammar, prompts):
    greedy = sample_groups(tiny_policy, prompts, grammar, group_size=2, greedy=True)
    nucleus = sample_groups(tiny_policy, prompts, grammar, group_size=2, top_p=1e-6, seed=3)
    assert torch.equal(greedy.completion_ids, nucleus.completion_ids)


def test_chunking_does_not_change_greedy(tiny_policy, grammar, prompts):
    whole = sample_groups(tiny_policy, prompts, grammar, group_size=2, greedy=True)
    one_by_one = sample_groups(tiny_policy, prompts, grammar, group_size=2, greedy=True, max_rows=2)
    assert torch.equal(whole.completion_ids, one_by_one.completion_ids)
    assert torch.allclose(whole.old_logprobs, one_by_one.old_logprobs, atol=1e-4)


def test_fast_and_naive_greedy_agree(tiny_policy, grammar, prompts):
    fast = sample_groups(tiny_policy, prompts, grammar, group_size=2, greedy=True)
    naive = generate_naive(tiny_policy, prompts, grammar, group_size=2, greedy=True)
    assert fast.texts == naive.texts
    assert torch.equal(fast.completion_ids, naive.completion_ids)
    assert torch.equal(fast.gen_mask, naive.gen_mask)
    assert torch.equal(fast.rank_mask, naive.rank_mask)
    assert torch.allclose(fast.old_logprobs, naive.old_logprobs, atol=1e-4)


def test_naive_sampling_valid_and_logprobs(tiny_policy, grammar, prompts):
    naive = generate_naive(tiny_policy, prompts[:1], grammar, group_size=3, temperature=0.8, seed=0)
    assert all(p.error is None for p in naive.parsed)
    single = _recompute_single(tiny_policy, naive, 0.8)
    assert torch.allclose(naive.old_logprobs, single, atol=1e-4)


def test_forced_slates(tiny_policy, grammar, prompts):
    forced = [[3, 1, 4, 15, 9, 2, 6, 5, 20, 7], None, [11, 12, 13, 14, 15, 16, 17, 18, 19, 20]]
    batch = sample_groups(tiny_policy, prompts, grammar, group_size=2, forced_slates=forced, seed=0)
    for r, p in enumerate(batch.parsed):
        assert p.error is None
        fs = forced[r // 2]
        if fs is not None:
            assert p.slate == fs
            assert set(p.ranking) <= set(fs)


def test_greedy_decode_single_request(tiny_policy, grammar, prompts):
    out = greedy_decode(tiny_policy, prompts[0], grammar)
    assert out.parsed.error is None
    batch = sample_groups(tiny_policy, prompts[:1], grammar, group_size=1, greedy=True)
    assert out.text == batch.texts[0]
    assert out.token_ids == batch.completion_ids[0, : int(batch.lengths[0])].tolist()


def test_jump_forward_matches_step_by_step(tiny_policy, grammar, prompts, monkeypatch):
    """Serving (one greedy row, no log-probs) feeds grammar-forced tokens in one forward and
    stops forwarding once the grammar is done: same completion, fewer forward calls."""
    from recgen.policy import kernels

    calls = []
    original = kernels._Forward.__call__
    monkeypatch.setattr(kernels._Forward, "__call__", lambda self, ids, *a: calls.append(ids.shape[1]) or
                        original(self, ids, *a))
    for prompt in prompts:
        calls.clear()
        step = sample_groups(tiny_policy, [prompt], grammar, group_size=1, greedy=True, logprobs=True)
        step_calls = len(calls)
        calls.clear()
        jump = sample_groups(tiny_policy, [prompt], grammar, group_size=1, greedy=True, logprobs=False)
        assert jump.texts == step.texts
        assert torch.equal(jump.completion_ids, step.completion_ids)
        assert torch.equal(jump.gen_mask, step.gen_mask) and torch.equal(jump.rank_mask, step.rank_mask)
        # step by step: the prompt + one call per token but the last; jumping: fewer
        assert step_calls == int(step.lengths[0])
        assert len(calls) < step_calls and max(calls[1:]) > 1


def test_unconstrained_mode(tiny_policy, grammar, prompts):
    batch = sample_groups(
        tiny_policy,
        prompts[:2],
        grammar,
        group_size=2,
        constrained=False,
        max_new_tokens=12,
        seed=0,
    )
    assert batch.completion_ids.shape[0] == 4 and batch.completion_ids.shape[1] <= 12
    assert not (batch.gen_mask & batch.rank_mask).any()
    assert torch.equal(batch.gen_mask | batch.rank_mask, batch.completion_mask)
    # a random model writes junk: it fails to parse, with a reason
    assert all(p.error for p in batch.parsed)
    single = _recompute_single(tiny_policy, batch, 1.0)
    assert torch.allclose(batch.old_logprobs, single, atol=1e-4)


def test_restores_training_mode_and_works_with_lora(smollm2_tokenizer, grammar, prompts):
    policy = build_tiny_policy(seed=1, tokenizer=smollm2_tokenizer, lora=LoraConfig(rank=4))
    policy.model.train()
    batch = sample_groups(policy, prompts[:1], grammar, group_size=2, seed=0)
    assert policy.model.training
    assert all(p.error is None for p in batch.parsed)


def test_bad_arguments(tiny_policy, grammar, prompts):
    with pytest.raises(ValueError, match="temperature"):
        sample_groups(tiny_policy, prompts, grammar, temperature=0.0)
    with pytest.raises(ValueError, match="forced_slates"):
        sample_groups(tiny_policy, prompts, grammar, forced_slates=[None])
    with pytest.raises(ValueError, match="empty"):
        sample_groups(tiny_policy, [], grammar)


@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_decode_attention_matches_sdpa(mask_kind):
    """The grouped-matmul decode attention equals transformers' sdpa (GQA, strided cache)."""
    from types import SimpleNamespace

    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from recgen.policy.kernels import decode_attention_forward

    gen = torch.Generator().manual_seed(0)
    rows, heads, kv_heads, keys, dim = 3, 6, 2, 11, 8
    query = torch.randn(rows, heads, 1, dim, generator=gen)
    buf_k = torch.randn(rows, kv_heads, keys + 5, dim, generator=gen)
    buf_v = torch.randn(rows, kv_heads, keys + 5, dim, generator=gen)
    key, value = buf_k[:, :, :keys], buf_v[:, :, :keys]  # strided views, as in the cache
    mask = None
    if mask_kind is not None:
        keep = torch.ones(rows, 1, 1, keys, dtype=torch.bool)
        keep[0, ..., :4] = False  # left padding of row 0
        mask = keep if mask_kind == "bool" else torch.zeros(keep.shape).masked_fill(~keep, -1e9)
    module = SimpleNamespace(num_key_value_groups=heads // kv_heads, is_causal=True)
    want, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    got, _ = decode_attention_forward(module, query, key, value, mask, scaling=dim**-0.5)
    assert got.shape == want.shape == (rows, 1, heads, dim)
    assert torch.allclose(got, want, atol=1e-5)


def test_growing_cache_layer_grows_past_capacity():
    from recgen.policy.kernels import _GrowingLayer

    keys, values = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    layer = _GrowingLayer(keys, values, capacity=5)
    new_k, new_v = torch.randn(2, 3, 1, 5), torch.randn(2, 3, 1, 5)
    for _ in range(3):  # 4 -> 7 positions: one reallocation
        k, v = layer.update(new_k, new_v)
    assert layer.get_seq_length() == 7
    assert torch.equal(k, torch.cat([keys] + [new_k] * 3, dim=2))
    assert torch.equal(v, torch.cat([values] + [new_v] * 3, dim=2))


def test_bf16_rollout_uses_decode_attention(smollm2_tokenizer, grammar, prompts):
    """bf16 on CPU swaps in the decode attention; outputs stay valid, log-probs close."""
    policy = build_tiny_policy(seed=0, tokenizer=smollm2_tokenizer, dtype="bf16")
    batch = sample_groups(policy, prompts[:2], grammar, group_size=2, seed=0)
    assert policy.model.config._attn_implementation == "sdpa"  # restored afterwards
    assert all(p.error is None for p in batch.parsed)
    single = _recompute_single(policy, batch, 1.0)
    assert torch.allclose(batch.old_logprobs, single, atol=0.1)
