"""Candidate generation: SASRec retriever, FAISS item index, candidate pools."""

from recgen.retrieval.index import ItemIndex, default_nlist
from recgen.retrieval.pools import (
    POOL_SCHEMA,
    PoolBuildJob,
    PoolConfig,
    build_pool_files,
    build_pools,
    examples,
    pool_recall,
)
from recgen.retrieval.sasrec import FitReport, SASRec, SASRecConfig

__all__ = [
    "POOL_SCHEMA",
    "FitReport",
    "ItemIndex",
    "PoolBuildJob",
    "PoolConfig",
    "SASRec",
    "SASRecConfig",
    "build_pool_files",
    "build_pools",
    "default_nlist",
    "examples",
    "pool_recall",
]
