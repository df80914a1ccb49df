"""The self-contained model folder that :class:`recgen.Recommender` saves and loads.

Layout (format 1)::

    BUNDLE/
      recgen-bundle.json    # format, settings (pool/slate/rank sizes, prompt, seed, method, …)
      policy/               # the LLM: weights (LoRA merged), tokenizer, recgen.json
      retriever/            # SASRec weights + config + item ids (recgen.retrieval.sasrec)
      retriever/index/      # the FAISS index over the same item ids (recgen.retrieval.index)
      items.parquet         # item_id, title (as shown to the LLM)
      histories.parquet     # user_id, items (the known users' full sequences, oldest first)

Everything is read from the folder: loading needs no hub, no dataset file and no pool cache.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recgen.errors import ConfigError, ModelNotFoundError
from recgen.io import atomic_write_json

logger = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "recgen-bundle.json"


@dataclass(frozen=True)
class BundleConfig:
    """Settings a bundle is served with (those it was trained with)."""

    dataset: str = field(default="ml-100k", metadata={"help": "dataset name or path it was built from"})
    method: str = field(default="zero-shot", metadata={"help": "training method of the policy"})
    pool_size: int = field(default=20, metadata={"help": "candidate pool size N"})
    slate_size: int = field(default=10, metadata={"help": "slate size m"})
    rank_size: int = field(default=5, metadata={"help": "ranking size k"})
    history_len: int = field(default=10, metadata={"help": "history items shown in the prompt"})
    max_title_tokens: int = field(default=16, metadata={"help": "titles cut to this many tokens"})
    item_noun: str = field(default="movie", metadata={"help": "what an item is called in the prompt"})
    seed: int = field(default=0, metadata={"help": "seed of the prompt's candidate shuffle"})
    dtype: str = field(default="bf16", metadata={"help": "bf16 | fp32"})

    def __post_init__(self) -> None:
        for name in ("pool_size", "slate_size", "rank_size", "history_len", "max_title_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"BundleConfig.{name} must be an integer >= 1, got {value!r}")
        if not self.rank_size <= self.slate_size <= self.pool_size:
            raise ConfigError(f"BundleConfig needs rank_size <= slate_size <= pool_size, got "
                              f"{self.rank_size}, {self.slate_size}, {self.pool_size}")
        if self.dtype not in ("bf16", "fp32"):
            raise ConfigError(f"BundleConfig.dtype must be 'bf16' or 'fp32', got {self.dtype!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BundleConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in values.items() if k in known})


def write_tables(folder: Path, *, titles: dict[str, str], histories: dict[str, list[str]],
                 config: BundleConfig) -> None:
    """Write the item table, the known histories and the manifest into ``folder``."""
    pl.DataFrame({"item_id": list(titles), "title": list(titles.values())},
                 schema={"item_id": pl.String, "title": pl.String}).write_parquet(folder / "items.parquet")
    pl.DataFrame({"user_id": list(histories), "items": list(histories.values())},
                 schema={"user_id": pl.String, "items": pl.List(pl.String)}
                 ).write_parquet(folder / "histories.parquet")
    atomic_write_json(folder / MANIFEST, {"format": FORMAT, "config": asdict(config)})


@dataclass
class BundleParts:
    root: Path
    config: BundleConfig
    titles: dict[str, str]
    histories: dict[str, list[str]]


def read_bundle(path: str | os.PathLike[str]) -> BundleParts:
    """The manifest and tables of a bundle (the policy and retriever load separately)."""
    root = Path(path)
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise ModelNotFoundError(f"{root} is not a recgen recommender folder: {MANIFEST} is missing "
                                 "(write one with Recommender.save)")
    meta = json.loads(manifest.read_text())
    if meta.get("format") != FORMAT:
        raise ModelNotFoundError(f"{manifest}: format {meta.get('format')!r}, this recgen reads format {FORMAT}")
    missing = [p for p in ("policy", "retriever", "retriever/index", "items.parquet", "histories.parquet")
               if not (root / p).exists()]
    if missing:
        raise ModelNotFoundError(f"recommender folder {root} is incomplete: missing {missing}")
    items = pl.read_parquet(root / "items.parquet")
    hist = pl.read_parquet(root / "histories.parquet")
    return BundleParts(root, BundleConfig.from_dict(meta["config"]),
                       dict(zip(items["item_id"].to_list(), items["title"].to_list(), strict=True)),
                       dict(zip(hist["user_id"].to_list(), hist["items"].to_list(), strict=True)))

