"""RawData: what a format reader returns, before preprocessing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")

_TITLE_YEAR = re.compile(r"^(.*\S)\s*\((\d{4})[^()]*\)\s*$")


@dataclass
class RawData:
    """Interactions (user_id, item_id str; timestamp Int64 s; [rating Float64]) and items.

    ``items`` has at least item_id and title (str, possibly null), plus year/genres/category.
    ``family`` is 'movielens' or 'amazon' (source-dependent defaults); ``files`` are the
    files read (their sizes/mtimes key the cache).
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    family: str
    files: list[Path] = field(default_factory=list)


def split_title_year(title: str) -> tuple[str, str | None]:
    """'Toy Story (1995)' -> ('Toy Story', '1995'); titles without a trailing year unchanged."""
    m = _TITLE_YEAR.match(title)
    if m:
        return m.group(1), m.group(2)
    return title, None


def items_frame(rows: list[dict[str, str | None]], columns: list[str]) -> pl.DataFrame:
    """A string-typed items frame from Python rows (the small MovieLens tables)."""
    schema = dict.fromkeys(columns, pl.String)
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
