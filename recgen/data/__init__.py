"""recgen.data: read a dataset (name or path), preprocess it, split it, cache it.

>>> ds = load_dataset("ml-100k")                     # RecBole atomic files in the recbole wheel
>>> ds = load_dataset("/data/ml-1m", kcore=10)       # format auto-detected from the names

See docs/architecture.md (contract) and data/README.md (formats, defaults, cache).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import polars as pl

from recgen.data import cache, sources
from recgen.data.config import DataConfig
from recgen.data.dataset import Dataset
from recgen.data.ids import sort_ids
from recgen.data.preprocess import Prepared, prepare
from recgen.data.sources import KNOWN_FORMATS
from recgen.errors import DataError, ParseError

logger = logging.getLogger(__name__)

__all__ = ["KNOWN_FORMATS", "DataConfig", "Dataset", "load_dataset", "sort_ids"]


def load_dataset(
    name_or_path: str | os.PathLike[str] = "ml-100k",
    format: str | None = None,
    config: DataConfig | None = None,
    **options: Any,
) -> Dataset:
    """Load, preprocess and leave-one-out split a dataset (cached as parquet).

    ``name_or_path``: ``"ml-100k"`` (RecBole's atomic files in the installed wheel) or a
    file/folder in one of :data:`KNOWN_FORMATS`; ``format=None`` detects it from the names.
    ``options`` override :class:`DataConfig` fields (``kcore``, ``min_rating``,
    ``drop_untitled``, ``meta_path``, ``cache``, ``cache_dir``, ...).
    """
    cfg = DataConfig.from_options(config, **options)
    t0 = time.perf_counter()
    source = sources.resolve(name_or_path, format)
    family = "amazon" if source.format.startswith("amazon") else "movielens"
    cfg = cfg.resolved(family)
    root = cache.cache_root(cfg)
    path = None
    if cfg.cache:
        files = sources.input_files(source, cfg.meta_path)
        key = cache.cache_key(source.format, source.path, files, cfg)
        path = cache.cache_dir_for(root, source.name, key)
        hit = cache.load(path)
        if hit is not None:
            prepared, meta = hit
            ds = _dataset(source.name, prepared, path, True, meta)
            logger.info(
                "loaded %s from cache %s in %.2fs", source.name, path, time.perf_counter() - t0
            )
            return ds
        logger.info("no cache for %s at %s: preparing from %s", source.name, path, source.path)
    try:
        raw = sources.read(source, cfg.meta_path, root / ".tmp")
    except pl.exceptions.PolarsError as e:  # readers map known cases; this is the backstop
        raise ParseError(f"{source.path}: cannot be read as {source.format} ({e})") from e
    except UnicodeDecodeError as e:
        raise DataError(f"{source.path}: undecodable text ({e})") from e
    prepared = prepare(raw, cfg, str(source.path))
    meta = {
        "name": source.name,
        "format": source.format,
        "source": str(source.path),
        "files": [str(p) for p in raw.files],
        "options": cfg.fingerprint(),
    }
    if cfg.cache and path is not None:
        cache.save(path, prepared, meta)
    ds = _dataset(source.name, prepared, path if cfg.cache else None, False, meta)
    logger.info("prepared %s in %.2fs: %s", source.name, time.perf_counter() - t0, ds.stats())
    return ds


def _dataset(name: str, p: Prepared, path: Path | None, hit: bool, meta: dict) -> Dataset:
    return Dataset(
        name,
        p.interactions,
        p.items,
        p.train,
        p.valid,
        p.test,
        cache_path=path,
        from_cache=hit,
        info={**meta, "report": p.report},
    )
