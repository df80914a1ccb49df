"""Evaluation: top-k metrics (:mod:`recgen.eval.metrics`) and significance
(:mod:`recgen.eval.significance`). Pure numpy/scipy; no model code here."""

from recgen.eval.metrics import (
    METRICS,
    evaluate_rankings,
    hit_at_k,
    hit_matrix,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from recgen.eval.significance import CI, PairedResult, bootstrap_ci, paired_test

__all__ = [
    "CI",
    "METRICS",
    "PairedResult",
    "bootstrap_ci",
    "evaluate_rankings",
    "hit_at_k",
    "hit_matrix",
    "mrr_at_k",
    "ndcg_at_k",
    "paired_test",
    "recall_at_k",
]
