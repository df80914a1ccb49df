"""DataConfig: the preprocessing options of :func:`recgen.data.load_dataset`.

Defaults that depend on the source are ``None`` here and resolved by
:meth:`DataConfig.resolved` once the format is known (see ``data/README.md``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from recgen.errors import ConfigError

#: k-core default per source family: Amazon dumps are very sparse, MovieLens already has
#: >= 20 ratings per user, so k-core is off there.
KCORE_DEFAULTS = {"movielens": 0, "amazon": 5}


@dataclass(frozen=True)
class DataConfig:
    """How raw interactions become the prepared, split dataset.

    Steps, in order: drop exact duplicate (user, item) events keeping the earliest;
    keep events with ``rating >= min_rating``; drop items without a title (if asked);
    iterative k-core; drop users with fewer than ``min_user_interactions`` events; sort each
    user's events by (timestamp, item id); leave-one-out split.
    """

    min_rating: float | None = field(
        default=None,
        metadata={"help": "Keep only events with rating >= this (None: keep all)."},
    )
    kcore: int | None = field(
        default=None,
        metadata={
            "help": "Iterative k-core: every user and item keeps >= k events "
            "(0 = off; None = source default: 5 for Amazon, 0 for MovieLens)."
        },
    )
    min_user_interactions: int = field(
        default=3,
        metadata={
            "help": "Drop users with fewer events (>= 3 so train, valid, test are non-empty)."
        },
    )
    drop_untitled: bool = field(
        default=False,
        metadata={
            "help": "Drop items without a title (Amazon items without metadata, empty titles)."
        },
    )
    meta_path: str | None = field(
        default=None,
        metadata={"help": "Amazon: metadata file; None: look for meta_<name> next to the reviews."},
    )
    cache: bool = field(default=True, metadata={"help": "Read/write the prepared parquet cache."})
    cache_dir: str | None = field(
        default=None,
        metadata={"help": "Cache root; None: $RECGEN_CACHE_DIR, else ~/.cache/recgen/datasets."},
    )

    def __post_init__(self) -> None:
        if self.min_rating is not None and not isinstance(self.min_rating, int | float):
            raise ConfigError(f"min_rating must be a number or None, got {self.min_rating!r}.")
        if self.kcore is not None and (not isinstance(self.kcore, int) or self.kcore < 0):
            raise ConfigError(f"kcore must be an integer >= 0 or None, got {self.kcore!r}.")
        if not isinstance(self.min_user_interactions, int) or self.min_user_interactions < 3:
            raise ConfigError(
                "min_user_interactions must be an integer >= 3 (leave-one-out needs a train, "
                f"a valid and a test event), got {self.min_user_interactions!r}."
            )

    @classmethod
    def from_options(cls, base: DataConfig | None = None, **options: Any) -> DataConfig:
        """``base`` (or defaults) with ``options`` replaced; unknown names → ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown data option(s) {unknown}; known: {sorted(known)}.")
        return dataclasses.replace(base or cls(), **options)

    def resolved(self, family: str) -> DataConfig:
        """Fill source-dependent defaults for a source family ('movielens' or 'amazon')."""
        if self.kcore is None:
            return dataclasses.replace(self, kcore=KCORE_DEFAULTS[family])
        return self

    def fingerprint(self) -> dict[str, Any]:
        """The options that change the prepared data (the cache key part)."""
        return {
            "min_rating": self.min_rating,
            "kcore": self.kcore,
            "min_user_interactions": self.min_user_interactions,
            "drop_untitled": self.drop_untitled,
        }
