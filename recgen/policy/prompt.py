"""The policy prompt: the user's recent history and a shuffled, numbered candidate pool.

The pool is listed in an order shuffled by a per-example seed, so a position carries no
retriever-score hint; ``Prompt.order[p - 1]`` is the item id shown at 1-based position p.
The prompt ends with the open assistant turn, so the completion starts with ``<slate>``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from recgen.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "You are a recommender system. You pick the items a user is most likely to enjoy next, "
    "and answer only in the requested format."
)

_YEAR_SUFFIX = re.compile(r"^(.*\S)\s+(\(\d{4}\))$")


@dataclass(frozen=True)
class PromptConfig:
    """How the prompt is written."""

    history_len: int = field(default=10, metadata={"help": "Last L history items shown (>= 1)."})
    max_title_tokens: int = field(
        default=16, metadata={"help": "Titles longer than this many tokens are cut (>= 1)."}
    )
    n_candidates: int = field(default=20, metadata={"help": "Pool size N listed in the prompt."})
    slate_size: int = field(default=10, metadata={"help": "Slate size m to ask for."})
    rank_size: int = field(default=5, metadata={"help": "Ranking size k to ask for."})
    system_prompt: str = field(
        default=DEFAULT_SYSTEM_PROMPT, metadata={"help": "System message text."}
    )
    item_noun: str = field(default="movie", metadata={"help": "What an item is called."})

    def __post_init__(self) -> None:
        for name in ("history_len", "max_title_tokens", "n_candidates", "slate_size", "rank_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"PromptConfig.{name} must be an integer >= 1, got {value!r}.")
        if self.slate_size > self.n_candidates:
            raise ConfigError(
                f"PromptConfig.slate_size ({self.slate_size}) must be <= n_candidates "
                f"({self.n_candidates})."
            )
        if self.rank_size > self.slate_size:
            raise ConfigError(
                f"PromptConfig.rank_size ({self.rank_size}) must be <= slate_size "
                f"({self.slate_size})."
            )


@dataclass(frozen=True)
class Prompt:
    """A built prompt: chat text, its token ids, and the shown order of the pool."""

    text: str
    input_ids: list[int]
    order: list[str]

    def item_at(self, position: int) -> str:
        """Item id shown at 1-based ``position``."""
        if not 1 <= position <= len(self.order):
            raise IndexError(f"position {position} is outside 1..{len(self.order)}")
        return self.order[position - 1]

    def to_item_ids(self, positions: Sequence[int]) -> list[str]:
        """Map 1-based positions (a parsed slate or ranking) to item ids."""
        return [self.item_at(p) for p in positions]

    def position_of(self, item_id: str) -> int:
        """1-based position at which ``item_id`` is shown."""
        return self.order.index(item_id) + 1


def format_title(title: str, year: str | int | None = None) -> str:
    """``"Title (year)"``; the year is omitted when unknown or malformed."""
    title = " ".join(str(title).split())
    year_s = str(year).strip() if year is not None else ""
    if re.fullmatch(r"\d{4}", year_s) and not _YEAR_SUFFIX.match(title):
        return f"{title} ({year_s})"
    return title


def truncate_title(tokenizer: Any, title: str, max_tokens: int) -> str:
    """Cut ``title`` to ``max_tokens`` tokens (a trailing "(year)" is kept and not counted)."""
    title = " ".join(str(title).split())
    match = _YEAR_SUFFIX.match(title)
    main, suffix = (match.group(1), " " + match.group(2)) if match else (title, "")
    ids = tokenizer(main, add_special_tokens=False).input_ids
    if len(ids) <= max_tokens:
        return main + suffix
    cut = tokenizer.decode(ids[:max_tokens]).rstrip()
    return cut + "…" + suffix


def instructions(cfg: PromptConfig) -> str:
    """The output-format instruction, stating N, m and k exactly."""
    m, k, n = cfg.slate_size, cfg.rank_size, cfg.n_candidates
    return (
        f"First choose the {m} candidates the user is most likely to watch next, then rank "
        f"the best {k} of those, best first. Use candidate numbers (1-{n}) only. "
        f"Answer exactly as <slate>{m} distinct numbers separated by spaces</slate>"
        f"<rank>{k} of those numbers, best first</rank> and nothing else."
    )


def build_prompt(
    tokenizer: Any,
    history_titles: Sequence[str],
    pool_item_ids: Sequence[str],
    pool_titles: Sequence[str],
    cfg: PromptConfig | None = None,
    seed: int = 0,
) -> Prompt:
    """Build the chat prompt for one example.

    ``history_titles`` is chronological (oldest first); the last ``cfg.history_len`` are
    shown. ``pool_item_ids``/``pool_titles`` are parallel (any order, e.g. retriever
    order); they are listed in an order shuffled by ``seed``. Deterministic for a seed.
    """
    cfg = cfg or PromptConfig()
    if len(pool_item_ids) != len(pool_titles):
        raise ValueError(
            f"pool_item_ids has {len(pool_item_ids)} entries but pool_titles has "
            f"{len(pool_titles)}; they must be parallel lists."
        )
    if len(pool_item_ids) != cfg.n_candidates:
        raise ValueError(
            f"the pool has {len(pool_item_ids)} candidates but PromptConfig.n_candidates is "
            f"{cfg.n_candidates}; the grammar and instructions would disagree."
        )
    if len(set(pool_item_ids)) != len(pool_item_ids):
        raise ValueError("pool_item_ids contains duplicates; every candidate must be distinct.")

    perm = list(range(len(pool_item_ids)))
    random.Random(seed).shuffle(perm)
    order = [str(pool_item_ids[i]) for i in perm]
    noun = cfg.item_noun

    history = list(history_titles)[-cfg.history_len :]
    lines = (
        [f"The user's last {len(history)} {noun}s, oldest first:"]
        if history
        else [f"The user has no {noun} history yet."]
    )
    lines += [f"- {truncate_title(tokenizer, t, cfg.max_title_tokens)}" for t in history]
    lines.append("")
    lines.append("Candidates:")
    lines += [
        f"{p}. {truncate_title(tokenizer, pool_titles[i], cfg.max_title_tokens)}"
        for p, i in enumerate(perm, start=1)
    ]
    lines.append("")
    lines.append(instructions(cfg))
    messages = [
        {"role": "system", "content": cfg.system_prompt},
        {"role": "user", "content": "\n".join(lines)},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    input_ids = list(tokenizer(text, add_special_tokens=False).input_ids)
    return Prompt(text=text, input_ids=input_ids, order=order)
