"""Serving fixtures: a tiny recommender (random tiny LLM, 1-epoch SASRec on ml-100k), built once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_retriever_dir(ml100k, tmp_path_factory):
    """A saved 1-epoch SASRec retriever with its flat FAISS index inside (retriever/index)."""
    from recgen.retrieval import ItemIndex, SASRec, SASRecConfig

    folder = tmp_path_factory.mktemp("serving") / "retriever"
    retriever = SASRec.fit(ml100k, SASRecConfig(epochs=1, patience=0, threads=1, seed=0))
    retriever.save(folder)
    ItemIndex(retriever.item_vectors(), retriever.item_ids).save(folder / "index")
    return folder


@pytest.fixture(scope="session")
def tiny_recommender(tiny_retriever_dir):
    from recgen import Recommender

    return Recommender.build("tiny", "ml-100k", retriever_dir=tiny_retriever_dir)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_recommender, tmp_path_factory):
    """The tiny recommender saved as a self-contained folder."""
    return tiny_recommender.save(tmp_path_factory.mktemp("serving") / "bundle")
