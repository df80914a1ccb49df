"""The policy LLM: loading (models), prompts, constrained decoding (grammar) and rollouts.

``models`` and ``prompt`` are light to import; names from ``rollout`` and ``logprobs``
(torch + transformers) and ``grammar`` are re-exported lazily, so ``import recgen.policy``
stays cheap and works even where the grammar module is unavailable.
"""

from __future__ import annotations

import importlib
from typing import Any

from recgen.policy.models import (
    DEFAULT_MODEL,
    LoraConfig,
    Policy,
    PolicyConfig,
    build_tiny_policy,
    load_default_tokenizer,
    load_policy,
)
from recgen.policy.prompt import Prompt, PromptConfig, build_prompt, format_title

_LAZY = {
    "Decoded": "rollout",
    "RolloutBatch": "rollout",
    "completion_logprobs": "logprobs",
    "generate_naive": "rollout_reference",
    "greedy_decode": "rollout",
    "sample_groups": "rollout",
    "SlateRankGrammar": "grammar",
    "DecodeState": "grammar",
    "SlateRankLogitsProcessor": "grammar",
    "ParsedOutput": "grammar",
    "parse_output": "grammar",
    "phase_masks_from_ids": "grammar",
}

__all__ = [
    "DEFAULT_MODEL",
    "LoraConfig",
    "Policy",
    "PolicyConfig",
    "Prompt",
    "PromptConfig",
    "build_prompt",
    "build_tiny_policy",
    "format_title",
    "load_default_tokenizer",
    "load_policy",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recgen.policy' has no attribute {name!r}")
    return getattr(importlib.import_module(f"recgen.policy.{module}"), name)
