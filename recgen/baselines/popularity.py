"""Most-popular baseline: rank items by their number of train interactions.

Ties are broken by the catalogue's id order (numeric when every id is a decimal integer,
else lexicographic), so the ranking is deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

import polars as pl

from recgen.errors import MissingColumnError, RetrievalError

logger = logging.getLogger(__name__)


def id_sort_key(ids: Iterable[str]) -> Callable[[str], tuple[int, str]]:
    """Key function for recgen's id order: numeric when all ids are decimal, else lexicographic."""
    if all(i.isdecimal() for i in ids):
        return lambda i: (int(i), i)
    return lambda i: (0, i)


class Popularity:
    """Counts train interactions per item; ``rank`` returns the most-counted unseen items."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._order: list[str] = []

    def fit(self, train: pl.DataFrame, catalogue: Sequence[str] | None = None) -> Popularity:
        """Count ``item_id`` occurrences in ``train``.

        ``catalogue``: every rankable item; items never seen in train rank last (count 0).
        Default: the items that occur in ``train``.
        """
        if "item_id" not in train.columns:
            raise MissingColumnError(
                f"train frame has no 'item_id' column (columns: {train.columns})"
            )
        agg = train.group_by("item_id").len()
        counts = {str(i): int(c) for i, c in zip(agg["item_id"], agg["len"], strict=True)}
        if catalogue is not None:
            for item in catalogue:
                counts.setdefault(str(item), 0)
        key = id_sort_key(counts)
        self.counts = counts
        self._order = sorted(counts, key=lambda i: (-counts[i], key(i)))
        logger.info("popularity fit: %d items, %d interactions", len(counts), train.height)
        return self

    @property
    def ranking(self) -> list[str]:
        """All items, most popular first."""
        return list(self._order)

    def rank(
        self, histories: Sequence[Sequence[str]], n: int, exclude_seen: bool = True
    ) -> list[list[str]]:
        """Top-``n`` items for each history (its items removed when ``exclude_seen``).

        A list shorter than ``n`` is returned only when the catalogue runs out.
        """
        if not self._order:
            raise RetrievalError("Popularity.rank called before fit (no items counted)")
        if n < 1:
            raise RetrievalError(f"n must be >= 1, got {n}")
        out: list[list[str]] = []
        for history in histories:
            seen = set(history) if exclude_seen else set()
            top: list[str] = []
            for item in self._order:
                if item not in seen:
                    top.append(item)
                    if len(top) == n:
                        break
            out.append(top)
        return out
