"""A small synthetic leave-one-out split shared by the baseline tests."""

from __future__ import annotations

import random

import polars as pl
import pytest

from recgen.baselines import Split

SCHEMA = {"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64}


def make_split(n_users: int = 40, n_items: int = 30, per_user: int = 8, seed: int = 0) -> Split:
    """Each user: ``per_user`` distinct random items; last = test, second last = valid."""
    rng = random.Random(seed)
    rows: dict[str, list[tuple[str, str, int]]] = {"train": [], "valid": [], "test": []}
    for u in range(1, n_users + 1):
        items = rng.sample(range(1, n_items + 1), per_user)
        for t, i in enumerate(items):
            part = "test" if t == per_user - 1 else "valid" if t == per_user - 2 else "train"
            rows[part].append((str(u), str(i), 1000 + 10 * t))
    return Split(**{k: pl.DataFrame(v, schema=SCHEMA, orient="row") for k, v in rows.items()})


@pytest.fixture(scope="session")
def synthetic_split() -> Split:
    return make_split()


@pytest.fixture(scope="session")
def split_factory():
    """``make_split`` itself, for tests that need a differently sized split."""
    return make_split
