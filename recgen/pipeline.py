"""Shared steps of the pipelines: candidate pools built once per (dataset, settings) and cached,
so every method of a comparison sees the same pools, users and prompts."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recgen.retrieval.pools import PoolBuildJob, PoolConfig, build_pool_files
from recgen.retrieval.sasrec import SASRecConfig

logger = logging.getLogger(__name__)


def cache_root() -> Path:
    """``$RECGEN_CACHE_DIR`` or ``~/.cache/recgen``."""
    return Path(os.environ.get("RECGEN_CACHE_DIR") or Path.home() / ".cache" / "recgen")


@dataclass(frozen=True)
class Pools:
    """Inject-mode pools for every split (training, pool protocol) and retrieve-mode pools for
    valid/test (end-to-end protocol), plus the folder holding the retriever and its index."""

    inject: dict[str, pl.DataFrame]
    retrieve: dict[str, pl.DataFrame]
    folder: Path

    @property
    def retriever_dir(self) -> Path:
        return self.folder / "inject" / "retriever"


def _key(ds, size: int, per_user: int, sasrec: SASRecConfig) -> str:
    stats = ds.stats()
    blob = json.dumps({"dataset": ds.name, "stats": stats, "size": size, "per_user": per_user,
                       "sasrec": sasrec.__dict__, "v": 1}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def pools_folder(ds, size: int = 20, train_examples_per_user: int = 1, sasrec: SASRecConfig | None = None) -> Path:
    """The cache folder :func:`ensure_pools` uses for these settings (it may not exist yet)."""
    key = _key(ds, size, train_examples_per_user, sasrec or SASRecConfig())
    return cache_root() / "pools" / f"{Path(str(ds.name)).name}-N{size}-{key}"


def ensure_pools(ds, *, dataset: str, size: int = 20, train_examples_per_user: int = 1,
                 sasrec: SASRecConfig | None = None, folder: str | os.PathLike[str] | None = None,
                 dataset_format: str | None = None) -> Pools:
    """Load the cached pools for these settings, or train the retriever and build them.

    ``dataset`` / ``dataset_format`` are the name or path ``ds`` was loaded from and its
    format (the pool builder reloads it through the dataset cache).
    """
    sasrec = sasrec or SASRecConfig()
    root = Path(folder) if folder else pools_folder(ds, size, train_examples_per_user, sasrec)
    inject_dir, retrieve_dir = root / "inject", root / "retrieve"
    if not (inject_dir / "summary.json").exists():
        logger.info("building inject-mode pools in %s (trains the retriever)", inject_dir)
        build_pool_files(PoolBuildJob(
            out=str(inject_dir), dataset=dataset, dataset_format=dataset_format, sasrec=sasrec,
            pools=PoolConfig(size=size, mode="inject", train_examples_per_user=train_examples_per_user)))
    if not (retrieve_dir / "summary.json").exists():
        logger.info("building retrieve-mode pools in %s", retrieve_dir)
        build_pool_files(PoolBuildJob(
            out=str(retrieve_dir), dataset=dataset, dataset_format=dataset_format,
            retriever=str(inject_dir / "retriever"),
            sasrec=sasrec, splits=("valid", "test"),
            pools=PoolConfig(size=size, mode="retrieve", train_examples_per_user=train_examples_per_user)))
    inject = {s: pl.read_parquet(inject_dir / f"{s}.parquet") for s in ("train", "valid", "test")}
    retrieve = {s: pl.read_parquet(retrieve_dir / f"{s}.parquet") for s in ("valid", "test")}
    logger.info("pools: %s", {s: df.height for s, df in inject.items()})
    return Pools(inject, retrieve, root)


def user_subset(pools: pl.DataFrame, n: int, seed: int = 0) -> pl.DataFrame:
    """A seeded subset of ``n`` rows (all when n == 0 or n >= rows), in user order."""
    if n == 0 or n >= pools.height:
        return pools
    return pools.sample(n=n, seed=seed, shuffle=False).sort("user_id")
