"""Fixtures for the policy tests: the tiny random Llama, a grammar, a few prompts."""

from __future__ import annotations

import pytest

from recgen.policy.models import build_tiny_policy
from recgen.policy.prompt import PromptConfig, build_prompt

N_CANDIDATES, SLATE_SIZE, RANK_SIZE = 20, 10, 5


@pytest.fixture(scope="session")
def tiny_policy(smollm2_tokenizer):
    """Tiny random Llama (hidden 64, 2 layers, fp32) with the SmolLM2 tokenizer."""
    return build_tiny_policy(seed=0, tokenizer=smollm2_tokenizer)


@pytest.fixture(scope="session")
def grammar(smollm2_tokenizer):
    """The slate/rank grammar for N=20, m=10, k=5."""
    from recgen.policy.grammar import SlateRankGrammar

    return SlateRankGrammar(smollm2_tokenizer, N_CANDIDATES, SLATE_SIZE, RANK_SIZE)


def movie_titles(n: int, offset: int = 0) -> list[str]:
    """Deterministic movie-like titles."""
    words = ["Star", "Night", "Return", "Lost", "City", "Dream", "Red", "River", "King", "Ghost"]
    return [
        f"{words[(i + offset) % 10]} {words[(3 * i + offset) % 10]} {i + offset} ({1950 + (i * 7) % 50})"
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def prompts(smollm2_tokenizer) -> list[list[int]]:
    """Three short prompts of different lengths (exercises left padding)."""
    cfg = PromptConfig(history_len=3)
    out = []
    for b in range(3):
        pool_ids = [str(100 + b * 50 + i) for i in range(N_CANDIDATES)]
        history = movie_titles(1 + b, offset=70)
        p = build_prompt(
            smollm2_tokenizer, history, pool_ids, movie_titles(N_CANDIDATES, b), cfg, seed=b
        )
        out.append(p.input_ids)
    assert len({len(p) for p in out}) > 1
    return out
