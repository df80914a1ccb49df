"""Pool rows → LLM examples: the prompt, the position ↔ item map, and the targets.

One place turns a candidate-pool row (user, target, position, candidates, scores) into what
both training and evaluation feed the policy, so that the two never drift apart.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from tqdm.auto import tqdm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One prediction point, ready for the policy."""

    user_id: str
    target: str
    position: int
    candidates: tuple[str, ...]  # the pool in retriever order (best first)
    scores: tuple[float, ...]
    order: tuple[str, ...]  # order[p-1] = item shown at 1-based prompt position p
    input_ids: tuple[int, ...]  # the tokenized prompt
    prompt_text: str

    @property
    def relevant(self) -> frozenset[str]:
        return frozenset((self.target,))

    def items_at(self, positions: Sequence[int]) -> list[str]:
        """Item ids of 1-based prompt positions."""
        return [self.order[p - 1] for p in positions]

    def positions_of(self, item_ids: Sequence[str]) -> list[int]:
        """1-based prompt positions of pool items."""
        where = {item: i + 1 for i, item in enumerate(self.order)}
        return [where[i] for i in item_ids]

    def retriever_slate(self, m: int) -> list[int]:
        """Positions of the retriever's top-m candidates (the decoupled baseline's fixed slate),
        in ascending position order: written in retriever order, the forced slate would hand
        the reranker the retriever's ranking, which the shuffled pool hides from every method."""
        return sorted(self.positions_of(self.candidates[:m]))


def example_seed(seed: int, user_id: str, position: int) -> int:
    """A stable per-example seed (the pool shuffle must not depend on process or set order)."""
    return zlib.crc32(f"{seed}:{user_id}:{position}".encode()) & 0x7FFFFFFF


def display_titles(ds) -> dict[str, str]:
    """Item id → the title shown to the LLM: "Toy Story (1995)" when the source has a year."""
    from recgen.policy.prompt import format_title

    cols = ["item_id", "title"] + (["year"] if "year" in ds.items.columns else [])
    out = {}
    for row in ds.items.select(cols).iter_rows():
        out[row[0]] = format_title(row[1], row[2] if len(row) > 2 else None)
    return out


def build_examples(ds, pools: pl.DataFrame, tokenizer, prompt_cfg, *, seed: int = 0,
                   desc: str = "prompts") -> list[Example]:
    """Build one :class:`Example` per pool row (history = the user's sequence before ``position``)."""
    from recgen.policy.prompt import build_prompt

    titles = display_titles(ds)
    out: list[Example] = []
    rows = pools.select("user_id", "target", "position", "candidates", "scores").iter_rows()
    for user_id, target, position, candidates, scores in tqdm(rows, total=pools.height, desc=desc, leave=False):
        history = ds.sequence(user_id)[:position]
        prompt = build_prompt(
            tokenizer,
            [titles[i] for i in history],
            list(candidates),
            [titles[i] for i in candidates],
            prompt_cfg,
            seed=example_seed(seed, user_id, position),
        )
        out.append(
            Example(
                user_id=user_id, target=target, position=int(position),
                candidates=tuple(candidates), scores=tuple(float(s) for s in scores),
                order=tuple(prompt.order), input_ids=tuple(prompt.input_ids), prompt_text=prompt.text,
            )
        )
    return out


def sft_target_positions(ex: Example, slate_size: int, rank_size: int) -> tuple[list[int], list[int]]:
    """The supervised target: a slate holding the target plus the retriever's top candidates
    (in retriever order), and a ranking with the target first, then the retriever's order."""
    others = [c for c in ex.candidates if c != ex.target]
    slate_items = [ex.target, *others[: slate_size - 1]] if ex.target in ex.candidates else others[:slate_size]
    rank_items = slate_items[:rank_size]
    # the slate is written in ascending position order, so where the target sits inside the
    # slate says nothing (the same order the decoupled baseline's forced slate uses)
    return sorted(ex.positions_of(slate_items)), ex.positions_of(rank_items)


def format_output(slate: Sequence[int], ranking: Sequence[int]) -> str:
    """The serialisation of FGRPO.md: ``<slate>4 17 2</slate><rank>17 4</rank>``."""
    return f"<slate>{' '.join(map(str, slate))}</slate><rank>{' '.join(map(str, ranking))}</rank>"
