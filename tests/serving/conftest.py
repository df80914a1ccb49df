"""Serving fixtures: a tiny recommender (random tiny LLM + the session's 1-epoch retriever), built once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_recommender(tiny_retriever_dir):
    from recgen import Recommender

    return Recommender.build("tiny", "ml-100k", retriever_dir=tiny_retriever_dir)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_recommender, tmp_path_factory):
    """The tiny recommender saved as a self-contained folder."""
    return tiny_recommender.save(tmp_path_factory.mktemp("serving") / "bundle")
