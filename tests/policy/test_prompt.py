"""Prompt building: chat template, shuffled numbered pool, truncation, determinism, length."""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import pytest

from recgen.errors import ConfigError
from recgen.policy.prompt import (
    PromptConfig,
    build_prompt,
    format_title,
    instructions,
    truncate_title,
)

POOL_IDS = [str(100 + i) for i in range(20)]
POOL_TITLES = [f"Movie number {i} ({1980 + i})" for i in range(20)]
HISTORY = [f"Seen film {i} (1990)" for i in range(15)]


def _build(tok, seed=0, cfg=None, history=HISTORY):
    return build_prompt(tok, history, POOL_IDS, POOL_TITLES, cfg or PromptConfig(), seed=seed)


def test_pool_is_a_seeded_permutation_listed_in_order(smollm2_tokenizer):
    p = _build(smollm2_tokenizer, seed=3)
    assert sorted(p.order) == sorted(POOL_IDS)
    title_of = dict(zip(POOL_IDS, POOL_TITLES, strict=True))
    listed = re.findall(r"^(\d+)\. (.+)$", p.text, flags=re.M)
    assert [int(n) for n, _ in listed] == list(range(1, 21))
    for n, title in listed:
        assert title == title_of[p.item_at(int(n))]  # order[p-1] is the item at position p
    assert p.to_item_ids([1, 2]) == p.order[:2] and p.position_of(p.order[4]) == 5


def test_deterministic_per_seed_and_shuffled_across_seeds(smollm2_tokenizer):
    a, b = _build(smollm2_tokenizer, seed=5), _build(smollm2_tokenizer, seed=5)
    assert a == b
    orders = {tuple(_build(smollm2_tokenizer, seed=s).order) for s in range(5)}
    assert len(orders) == 5
    assert tuple(POOL_IDS) not in orders or len(orders) > 1


def test_chat_template_and_open_assistant_turn(smollm2_tokenizer):
    p = _build(smollm2_tokenizer)
    assert p.text.startswith("<|im_start|>system\n")
    assert p.text.endswith("<|im_start|>assistant\n")
    assert p.input_ids == smollm2_tokenizer(p.text, add_special_tokens=False).input_ids


def test_only_last_history_items_shown_oldest_first(smollm2_tokenizer):
    p = _build(smollm2_tokenizer, cfg=PromptConfig(history_len=4))
    shown = re.findall(r"^- (.+)$", p.text, flags=re.M)
    assert shown == HISTORY[-4:]
    empty = _build(smollm2_tokenizer, history=[])
    assert "no movie history" in empty.text


def test_instructions_state_format_and_sizes():
    cfg = PromptConfig(n_candidates=20, slate_size=8, rank_size=3)
    text = instructions(cfg)
    assert "<slate>" in text and "</slate><rank>" in text and "</rank>" in text
    assert "8 distinct numbers" in text and "3 of those numbers" in text and "1-20" in text


def test_long_titles_truncated_year_kept(smollm2_tokenizer):
    long = "A " + " ".join(f"word{i}" for i in range(40)) + " (1977)"
    cut = truncate_title(smollm2_tokenizer, long, 16)
    assert cut.endswith("… (1977)") and len(cut) < len(long)
    main = cut.removesuffix(" (1977)").removesuffix("…")
    assert len(smollm2_tokenizer(main, add_special_tokens=False).input_ids) <= 16
    assert truncate_title(smollm2_tokenizer, "Short (1990)", 16) == "Short (1990)"


def test_format_title():
    assert format_title("Toy Story", "1995") == "Toy Story (1995)"
    assert format_title("unknown", "") == "unknown"
    assert format_title("Odd", "V") == "Odd"  # ml-100k's dirty year
    assert format_title("Already (1995)", 1995) == "Already (1995)"


def test_rejects_mismatched_pools(smollm2_tokenizer):
    with pytest.raises(ValueError, match="parallel"):
        build_prompt(smollm2_tokenizer, HISTORY, POOL_IDS, POOL_TITLES[:-1], PromptConfig())
    with pytest.raises(ValueError, match="n_candidates"):
        build_prompt(smollm2_tokenizer, HISTORY, POOL_IDS[:10], POOL_TITLES[:10], PromptConfig())
    dup = POOL_IDS[:-1] + POOL_IDS[:1]
    with pytest.raises(ValueError, match="duplicates"):
        build_prompt(smollm2_tokenizer, HISTORY, dup, POOL_TITLES, PromptConfig())


@pytest.mark.parametrize(
    "kwargs", [{"history_len": 0}, {"slate_size": 30}, {"rank_size": 11}, {"max_title_tokens": 0}]
)
def test_prompt_config_validation(kwargs):
    with pytest.raises(ConfigError):
        PromptConfig(**kwargs)


def _ml100k_titles() -> dict[str, str]:
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        pytest.skip("recbole (ml-100k titles) is not installed")
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k" / "ml-100k.item"
    rows = [line.rstrip("\n").split("\t") for line in path.open(encoding="utf-8")][1:]
    return {r[0]: format_title(r[1], r[2]) for r in rows}


def test_default_prompt_length_on_ml100k_titles(smollm2_tokenizer):
    """At defaults (L=10, N=20) the prompt stays under 600 tokens (measured ~515-590)."""
    titles = _ml100k_titles()
    ids = sorted(titles, key=int)
    lengths = []
    for s in range(20):
        rng = random.Random(s)
        history = [titles[i] for i in rng.sample(ids, 30)]
        pool = rng.sample(ids, 20)
        p = build_prompt(smollm2_tokenizer, history, pool, [titles[i] for i in pool], seed=s)
        lengths.append(len(p.input_ids))
    assert max(lengths) <= 600, lengths
