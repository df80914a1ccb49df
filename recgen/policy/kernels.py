"""CPU decode speed-ups for :func:`recgen.policy.rollout.sample_groups`: a decode attention
kernel, a preallocated (growing) KV-cache layer and a head-only forward step.

What: :func:`decode_attention_forward` computes attention for ONE query token per row as two
batched matmuls over the kv-head groups (no ``repeat_kv``, fp32 softmax); any other call
(prefill, dropout, position bias, softcap) falls through to transformers' sdpa.
:class:`_GrowingLayer` is a ``DynamicLayer`` whose keys/values are views into buffers of
``capacity`` positions: each step writes the new position in place (doubling if full).

Why (measured, benchmarks/rollout_speed.py, 2-core CPU, 135M model): torch's bf16
``scaled_dot_product_attention`` took ~6 ms per decode step for one new token (8 rows x 650
keys) vs ~0.4 ms as two grouped matmuls -- half of all rollout time before the fix. fp32 sdpa
is as fast, so the kernel is used only for bf16/fp16. ``DynamicLayer.update`` concatenates,
i.e. copies the whole cache (every layer, keys and values) at every step; the growing layer
does not.

How they are switched on and restored: :class:`_DecodeAttention` is a context manager that,
for a bf16/fp16 CPU model whose ``config._attn_implementation`` is ``"sdpa"``, registers the
kernel (and sdpa's mask function) under the name ``"recgen_decode"`` with transformers'
``AttentionInterface`` and sets the config to it; on exit the previous implementation is put
back (a no-op for other models). :func:`_preallocate_cache` replaces, after the prompt
forward, each initialised ``DynamicLayer`` of a ``DynamicCache`` by a :class:`_GrowingLayer`;
the cache is built per chunk and dropped afterwards, so nothing needs restoring.
``sample_groups(fast_attention=False, preallocate_cache=False)`` switches either off.

:class:`_Forward` runs one decode step; for greedy constrained decoding without log-probs
(serving, ``sample_groups(logprobs=False)``) it stops at the last hidden state so the caller
scores only the grammar-allowed tokens instead of the full (rows x 49k) output layer.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

DECODE_ATTENTION = "recgen_decode"


def decode_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention for one query token per row as two grouped matmuls; else plain sdpa.

    On this CPU torch's bf16 ``scaled_dot_product_attention`` takes ~6 ms for one decode
    step of 8 rows x 650 keys (9 query / 3 kv heads); the same maths as batched matmuls over
    the kv-head groups (no ``repeat_kv``), with an fp32 softmax, takes ~0.4 ms.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if (
        query.shape[2] != 1
        or dropout
        or kwargs.get("position_bias") is not None
        or kwargs.get("softcap") is not None
    ):
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    rows, heads, _, dim = query.shape
    kv_heads = key.shape[1]
    scale = scaling if scaling is not None else dim**-0.5
    q = query.reshape(rows, kv_heads, heads // kv_heads, dim)
    # keys @ q^T, not q @ keys^T: the cache is a strided view of a preallocated buffer and
    # this form reads it without a transposed copy (0.38 vs 0.83 ms per call measured)
    scores = torch.matmul(key, q.transpose(-1, -2)).transpose(-1, -2) * scale
    if attention_mask is not None:
        mask = attention_mask[..., : key.shape[-2]]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    out = torch.matmul(probs, value).reshape(rows, heads, 1, dim)
    return out.transpose(1, 2).contiguous(), None


def _register_decode_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(DECODE_ATTENTION, decode_attention_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(DECODE_ATTENTION, sdpa_mask)


class _DecodeAttention:
    """Swap a bf16/fp16 CPU model from ``sdpa`` to :func:`decode_attention_forward`."""

    def __init__(self, model: Any, enabled: bool) -> None:
        self.config = getattr(model, "config", None)
        current = getattr(self.config, "_attn_implementation", None)
        param = next(model.parameters())
        # fp32 sdpa is fine here (measured: same speed or faster than the grouped matmuls)
        low_precision = param.dtype in (torch.bfloat16, torch.float16)
        self.enabled = (
            enabled and param.device.type == "cpu" and low_precision and current == "sdpa"
        )
        self.previous = current

    def __enter__(self) -> None:
        if self.enabled:
            _register_decode_attention()
            self.config._attn_implementation = DECODE_ATTENTION

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.config._attn_implementation = self.previous


def _preallocate_cache(cache: Any, capacity: int) -> None:
    """Replace each DynamicLayer's tensors by views into buffers of ``capacity`` positions.

    ``DynamicLayer.update`` concatenates, i.e. copies the whole cache every step (30 layers
    x 2 x rows x kv x dim); writing the new position into a preallocated buffer does not.
    """
    layers = getattr(cache, "layers", None)
    if not layers:
        return
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.numel():
            layers[i] = _GrowingLayer(layer.keys, layer.values, capacity)


class _GrowingLayer(DynamicLayer):
    """A DynamicLayer that writes into a preallocated buffer (grows by doubling if full)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> None:
        super().__init__()
        capacity = max(capacity, keys.shape[2])
        self._k = keys.new_empty((*keys.shape[:2], capacity, keys.shape[3]))
        self._v = values.new_empty((*values.shape[:2], capacity, values.shape[3]))
        self._len = 0
        self.device = keys.device
        self.is_initialized = True
        self.update(keys, values)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = self._len + key_states.shape[-2]
        if end > self._k.shape[2]:
            size = max(end, 2 * self._k.shape[2])
            k, v = self._k, self._v
            self._k = k.new_empty((*k.shape[:2], size, k.shape[3]))
            self._v = v.new_empty((*v.shape[:2], size, v.shape[3]))
            self._k[:, :, : self._len].copy_(k[:, :, : self._len])
            self._v[:, :, : self._len].copy_(v[:, :, : self._len])
        self._k[:, :, self._len : end].copy_(key_states)
        self._v[:, :, self._len : end].copy_(value_states)
        self._len = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values


def _cache_kwarg(model: Any) -> str:
    """``cache`` (transformers >= 5.2x) or ``past_key_values`` (older models)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


class _Forward:
    """One forward step: full last-position logits, or (``head_only``) the last hidden state.

    ``head_only`` (greedy constrained decoding without log-probs, i.e. serving) skips the
    (rows x vocab) output projection: the caller scores only the few allowed tokens with
    :meth:`score`. Used only where the head is a plain bias-free Linear.
    """

    def __init__(self, model: Any, head_only: bool) -> None:
        self.model = model
        self.decoder = self.weight = None
        if head_only:
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            head = base.get_output_embeddings()
            get_decoder = getattr(base, "get_decoder", None)
            if type(head) is torch.nn.Linear and head.bias is None and get_decoder is not None:
                self.decoder, self.weight = get_decoder(), head.weight
        self.head_only = self.decoder is not None
        self.device = next(model.parameters()).device
        self.cache_kw = _cache_kwarg(self.decoder if self.head_only else model)

    def __call__(self, ids: torch.Tensor, attn: Any, pos: torch.Tensor, cache: Any) -> torch.Tensor:
        kwargs = {"attention_mask": attn, "position_ids": pos, "use_cache": True}
        kwargs[self.cache_kw] = cache
        if self.head_only:
            return self.decoder(input_ids=ids, **kwargs).last_hidden_state[:, -1, :]
        return self.model(input_ids=ids, logits_to_keep=1, **kwargs).logits[:, -1, :].float()

    def score(self, hidden: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """Logits (rows, A) of candidate tokens ``cand`` (rows, A) from hidden states."""
        w = self.weight[cand]  # (rows, A, d)
        return torch.matmul(w, hidden.unsqueeze(-1)).squeeze(-1).float()
