"""Parquet cache of prepared datasets.

Location: ``DataConfig.cache_dir``, else ``$RECGEN_CACHE_DIR``, else
``~/.cache/recgen/datasets``. One folder per prepared dataset, named
``<name>-<key>`` where ``key`` hashes (cache format version, format, source path, each
input file's path + size + mtime_ns, the preprocessing options). A changed file, option or
format version gives a new key; old folders are never reused. Folders are written with
:func:`recgen.io.atomic_dir`, so a crash leaves no partial cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import polars as pl

from recgen.data.config import DataConfig
from recgen.data.preprocess import Prepared
from recgen.io import atomic_dir

logger = logging.getLogger(__name__)

CACHE_VERSION = 1
TABLES = ("interactions", "items", "train", "valid", "test")


def cache_root(cfg: DataConfig) -> Path:
    """The cache root folder for ``cfg`` (see the module docstring)."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser()
    env = os.environ.get("RECGEN_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "recgen" / "datasets"


def cache_key(fmt: str, source_path: Path, files: list[Path], cfg: DataConfig) -> str:
    """A hex digest identifying one prepared dataset."""
    stamp = []
    for p in files:
        st = p.stat()
        stamp.append([str(p.resolve()), st.st_size, st.st_mtime_ns])
    blob = json.dumps(
        {
            "version": CACHE_VERSION,
            "format": fmt,
            "path": str(source_path),
            "files": stamp,
            "options": cfg.fingerprint(),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_dir_for(root: Path, name: str, key: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dataset"
    return root / f"{safe}-{key}"


def load(path: Path) -> tuple[Prepared, dict[str, Any]] | None:
    """The cached tables and meta at ``path``, or None if absent/unreadable."""
    meta_file = path / "meta.json"
    if not meta_file.is_file():
        return None
    try:
        meta = json.loads(meta_file.read_text())
        if meta.get("version") != CACHE_VERSION:
            return None
        tables = {t: pl.read_parquet(path / f"{t}.parquet") for t in TABLES}
    except (OSError, ValueError, pl.exceptions.PolarsError) as e:
        logger.warning("ignoring unreadable cache %s (%s); rebuilding", path, e)
        return None
    return Prepared(**tables, report=meta.get("report", {})), meta


def save(path: Path, prepared: Prepared, meta: dict[str, Any]) -> None:
    """Write the tables + meta.json atomically (the folder appears complete or not at all)."""
    with atomic_dir(path) as tmp:
        for t in TABLES:
            getattr(prepared, t).write_parquet(tmp / f"{t}.parquet")
        full = {**meta, "version": CACHE_VERSION, "report": prepared.report}
        (tmp / "meta.json").write_text(json.dumps(full, indent=2, sort_keys=True, default=str))
    logger.info("wrote dataset cache %s", path)
