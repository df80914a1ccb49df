"""The policy LLM: loading (models), prompts, constrained decoding (grammar) and rollouts.

Names from ``recgen.policy.grammar`` are re-exported lazily, so this package imports even
where the grammar module is unavailable.
"""

from __future__ import annotations

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
from recgen.policy.rollout import RolloutBatch, generate_naive, greedy_decode, sample_groups

_GRAMMAR_NAMES = (
    "SlateRankGrammar",
    "DecodeState",
    "SlateRankLogitsProcessor",
    "ParsedOutput",
    "parse_output",
)

__all__ = [
    "DEFAULT_MODEL",
    "LoraConfig",
    "Policy",
    "PolicyConfig",
    "Prompt",
    "PromptConfig",
    "RolloutBatch",
    "build_prompt",
    "build_tiny_policy",
    "format_title",
    "generate_naive",
    "greedy_decode",
    "load_default_tokenizer",
    "load_policy",
    "sample_groups",
    *_GRAMMAR_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _GRAMMAR_NAMES:
        from recgen.policy import grammar

        return getattr(grammar, name)
    raise AttributeError(f"module 'recgen.policy' has no attribute {name!r}")
