"""Classic baselines on recgen's split: popularity and RecBole models (SASRec, GRU4Rec, BPR ...)."""

from recgen.baselines.popularity import Popularity
from recgen.baselines.recbole_compat import recbole_compat
from recgen.baselines.recbole_models import (
    RecBoleConfig,
    RecBoleResult,
    Split,
    run_recbole,
    seen_items,
    user_sequences,
    write_benchmark_files,
)

__all__ = [
    "Popularity",
    "RecBoleConfig",
    "RecBoleResult",
    "Split",
    "recbole_compat",
    "run_recbole",
    "seen_items",
    "user_sequences",
    "write_benchmark_files",
]
