"""Fixtures for the data tests: an isolated cache root and small raw files in each format."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Point the default cache root at a temporary folder for the data tests."""
    old = os.environ.get("RECGEN_CACHE_DIR")
    os.environ["RECGEN_CACHE_DIR"] = str(tmp_path_factory.mktemp("recgen-cache"))
    yield
    if old is None:
        os.environ.pop("RECGEN_CACHE_DIR", None)
    else:
        os.environ["RECGEN_CACHE_DIR"] = old


def write(path: Path, text: str, encoding: str = "utf-8", gz: bool = False) -> Path:
    """Write ``text`` (optionally gzipped) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def simple_events(n_users: int = 3, n_items: int = 4, t0: int = 1000) -> list[tuple[str, str, int]]:
    """Every user rates every item, user u's item i at time t0 + 10*i + u (distinct times)."""
    return [
        (str(u), str(i), t0 + 10 * i + u)
        for u in range(1, n_users + 1)
        for i in range(1, n_items + 1)
    ]


@pytest.fixture
def raw() -> SimpleNamespace:
    """Helpers for writing raw files: ``raw.write``, ``raw.jsonl``, ``raw.events``."""
    return SimpleNamespace(write=write, jsonl=jsonl, events=simple_events)
