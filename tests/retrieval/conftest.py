"""Fixtures for retrieval tests: a tiny synthetic dataset and a 1-epoch ml-100k retriever."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # for retrieval_synthetic
from retrieval_synthetic import successor_dataset, tiny_config  # noqa: E402

from recgen.retrieval import ItemIndex, SASRec, SASRecConfig  # noqa: E402


@pytest.fixture(scope="session")
def successor_ds():
    return successor_dataset()


@pytest.fixture(scope="session")
def tiny_retriever(successor_ds):
    return SASRec.fit(successor_ds, tiny_config())


@pytest.fixture(scope="session")
def ml100k_retriever(ml100k):
    cfg = SASRecConfig(epochs=1, patience=0, threads=1, seed=0)
    return SASRec.fit(ml100k, cfg)


@pytest.fixture(scope="session")
def ml100k_index(ml100k_retriever):
    return ItemIndex(ml100k_retriever.item_vectors(), ml100k_retriever.item_ids)
