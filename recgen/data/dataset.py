"""Dataset: the prepared tables plus stable id maps and O(1) per-user lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from recgen.data.ids import sort_ids
from recgen.errors import UnknownItemError, UnknownUserError

SPLITS = ("valid", "test")


class Dataset:
    """Prepared interactions, items and the leave-one-out split of one source.

    ``user_ids`` / ``item_ids`` are sorted raw ids (position = integer id); ``user_index``
    / ``item_index`` invert them. Per-user sequences are computed once at construction,
    so :meth:`sequence` and :meth:`history` are dictionary look-ups (they return copies).
    """

    def __init__(
        self,
        name: str,
        interactions: pl.DataFrame,
        items: pl.DataFrame,
        train: pl.DataFrame,
        valid: pl.DataFrame,
        test: pl.DataFrame,
        *,
        cache_path: Path | None = None,
        from_cache: bool = False,
        info: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.interactions = interactions
        self.items = items
        self.train = train
        self.valid = valid
        self.test = test
        self.cache_path = cache_path
        self.from_cache = from_cache
        self.info = dict(info or {})
        self.item_ids: list[str] = items["item_id"].to_list()
        self.item_index: dict[str, int] = {i: n for n, i in enumerate(self.item_ids)}
        grouped = interactions.group_by("user_id", maintain_order=True).agg(pl.col("item_id"))
        users = grouped["user_id"].to_list()
        self._seq: dict[str, list[str]] = dict(
            zip(users, grouped["item_id"].to_list(), strict=True)
        )
        self.user_ids: list[str] = sort_ids(users)
        self.user_index: dict[str, int] = {u: n for n, u in enumerate(self.user_ids)}
        self._titles: dict[str, str] = dict(
            zip(self.item_ids, items["title"].to_list(), strict=True)
        )

    # --- sizes ------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    # --- look-ups ---------------------------------------------------------------------
    def _user_seq(self, user_id: str) -> list[str]:
        try:
            return self._seq[user_id]
        except KeyError:
            hint = (
                f"; raw ids are strings, not {type(user_id).__name__} (try {str(user_id)!r})"
                if not isinstance(user_id, str)
                else ""
            )
            raise UnknownUserError(
                f"unknown user id {user_id!r} in dataset {self.name!r} ({self.num_users} users{hint})"
            ) from None

    def sequence(self, user_id: str) -> list[str]:
        """The user's full chronological item sequence (order: timestamp, then item id)."""
        return list(self._user_seq(user_id))

    def history(self, user_id: str, split: str) -> list[str]:
        """Items before ``split``'s target: 'test' → train + valid items, 'valid' → train."""
        seq = self._user_seq(user_id)
        if split == "test":
            return seq[:-1]
        if split == "valid":
            return seq[:-2]
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")

    def title(self, item_id: str) -> str:
        """The item's title (its id when the source had none)."""
        try:
            return self._titles[item_id]
        except KeyError:
            hint = "" if isinstance(item_id, str) else "; raw ids are strings"
            raise UnknownItemError(
                f"unknown item id {item_id!r} in dataset {self.name!r} "
                f"({self.num_items} items{hint})"
            ) from None

    def stats(self) -> dict[str, Any]:
        """users, items, interactions, mean sequence length and density."""
        n = self.interactions.height
        return {
            "users": self.num_users,
            "items": self.num_items,
            "interactions": n,
            "mean_sequence_length": n / self.num_users if self.num_users else 0.0,
            "density": n / (self.num_users * self.num_items) if self.num_users else 0.0,
        }

    def __repr__(self) -> str:
        s = self.stats()
        return (
            f"Dataset({self.name!r}, users={s['users']}, items={s['items']}, "
            f"interactions={s['interactions']})"
        )
