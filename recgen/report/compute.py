"""Per-user metrics recomputed from rankings, grouped into comparisons with CIs and paired tests.

The per-user values are those of :func:`recgen.eval.protocols.score`, rebuilt from the
columns of ``rankings.parquet`` (the ``ranked`` column is the protocol's final list):
Recall/NDCG@k of ``ranked`` against ``{target}``; ``coverage`` = target in ``slate``;
``slate_miss`` = 1 - coverage; ``rank_drop`` = in the slate but not ``ranking[0]``; and, under
the end-to-end protocol, ``pool_recall@N`` = target anywhere in ``ranked`` (the whole pool).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from recgen.eval.metrics import evaluate_rankings
from recgen.eval.protocols import E2E_KS, POOL_KS
from recgen.eval.significance import bootstrap_ci, paired_test
from recgen.eval.tables import best_per_metric
from recgen.report.inputs import EvalInput

logger = logging.getLogger(__name__)

PROTOCOL_NAMES = {"pool": "pool protocol", "end-to-end": "end-to-end protocol"}
CHECK_TOLERANCE = 1e-9


def per_user_metrics(frame: pl.DataFrame, protocol: str) -> dict[str, np.ndarray]:
    """Per-user metrics of one method's rows (same keys and order as ``protocols.score``)."""
    if protocol not in PROTOCOL_NAMES:
        raise ValueError(f"unknown protocol {protocol!r}: expected 'pool' or 'end-to-end'")
    targets = frame["target"].to_list()
    ranked = frame["ranked"].to_list()
    ks = POOL_KS if protocol == "pool" else E2E_KS
    out = evaluate_rankings(ranked, [{t} for t in targets], ks=ks, metrics=("recall", "ndcg"))
    in_slate = np.array([t in set(s or ()) for t, s in zip(targets, frame["slate"].to_list(), strict=True)],
                        dtype=float)
    first = np.array([bool(r) and r[0] == t for t, r in zip(targets, frame["ranking"].to_list(), strict=True)],
                     dtype=float)
    out["coverage"] = in_slate
    out["slate_miss"] = 1.0 - in_slate
    out["rank_drop"] = in_slate * (1.0 - first)
    if protocol == "end-to-end":
        size = len(ranked[0]) if ranked else 0
        out[f"pool_recall@{size}"] = np.array([t in set(r) for t, r in zip(targets, ranked, strict=True)],
                                              dtype=float)
    return out


@dataclass
class MethodScores:
    name: str
    source: Path
    user_ids: list[str]
    per_user: dict[str, np.ndarray]
    ranked: list[list[str]]


@dataclass
class Comparison:
    """Methods scored on the same users under one protocol, split and dataset: the unit of one
    comparison table (means of different user sets are not comparable, so they never share one)."""

    protocol: str
    split: str
    dataset: str | None
    users: frozenset[str]
    methods: dict[str, MethodScores] = field(default_factory=dict)
    sources: list[Path] = field(default_factory=list)
    checks: dict[str, float] = field(default_factory=dict)  # method -> max |recomputed - reported|
    index: int = 1  # to tell apart comparisons with the same protocol, split and number of users

    @property
    def title(self) -> str:
        suffix = f", set {self.index}" if self.index > 1 else ""
        return f"{self.split} users ({len(self.users)}{suffix}), {PROTOCOL_NAMES[self.protocol]}"

    @property
    def metrics(self) -> list[str]:
        return list(next(iter(self.methods.values())).per_user) if self.methods else []

    @property
    def primary(self) -> str:
        return "ndcg@5" if self.protocol == "pool" else "ndcg@10"


def _same(a: MethodScores, b: MethodScores) -> bool:
    return a.user_ids == b.user_ids and a.ranked == b.ranked


def _check(ev: EvalInput, raw: str, name: str, scores: MethodScores, comp: Comparison) -> None:
    reported = ev.reported.get(raw) or {}
    diffs = [abs(float(scores.per_user[m].mean()) - float(v["mean"]))
             for m, v in reported.items() if m in scores.per_user and isinstance(v, dict) and "mean" in v]
    if not diffs:
        return
    comp.checks[name] = max(diffs)
    if comp.checks[name] > CHECK_TOLERANCE:
        logger.warning("%s: recomputed %s differs from metrics.json by up to %.3g", ev.source, name,
                       comp.checks[name])


def add_evaluation(comparisons: list[Comparison], ev: EvalInput) -> None:
    """Score every method of ``ev`` and put it in the comparison of its protocol, split and users.

    A method already present with the same users and rankings is skipped; a different one
    with the same name is renamed ``name (folder)``."""
    users = frozenset(ev.frame["user_id"].to_list())
    comp = next((c for c in comparisons if (c.protocol, c.split, c.users) == (ev.protocol, ev.split, users)
                 and (c.dataset == ev.dataset or None in (c.dataset, ev.dataset))), None)
    if comp is None:
        same = [c for c in comparisons if (c.protocol, c.split, len(c.users)) == (ev.protocol, ev.split, len(users))]
        comp = Comparison(ev.protocol, ev.split, ev.dataset, users, index=len(same) + 1)
        comparisons.append(comp)
    comp.dataset = comp.dataset or ev.dataset
    comp.sources.append(ev.source)
    for raw in ev.frame["method"].unique(maintain_order=True).to_list():
        rows = ev.frame.filter(pl.col("method") == raw).sort("user_id")
        name = ev.rename.get(raw, raw)
        scores = MethodScores(name, ev.source, rows["user_id"].to_list(),
                              per_user_metrics(rows, ev.protocol), rows["ranked"].to_list())
        if name in comp.methods:
            if _same(comp.methods[name], scores):
                continue
            name = scores.name = f"{name} ({ev.source.name})"
        comp.methods[name] = scores
        _check(ev, raw, name, scores, comp)


def pick_reference(names: list[str], requested: str | None) -> str:
    """``requested`` if among ``names``, else ``fgrpo`` if present, else the first."""
    if requested and requested in names:
        return requested
    return "fgrpo" if "fgrpo" in names else names[0]


def summarise(comp: Comparison, reference: str | None, seed: int) -> dict:
    """JSON-ready summary: per-method mean [CI], best per metric, paired tests vs the reference,
    the slate-miss / rank-drop split."""
    names = list(comp.methods)
    ref = pick_reference(names, reference)
    methods = {}
    for name, s in comp.methods.items():
        cis = {m: bootstrap_ci(v, seed=seed) for m, v in s.per_user.items()}
        methods[name] = {"users": len(s.user_ids), "source": str(s.source),
                         "metrics": {m: {"mean": c.mean, "lo": c.lo, "hi": c.hi} for m, c in cis.items()}}
    paired: dict[str, dict] = {}
    for name, s in comp.methods.items():
        if name == ref:
            continue
        paired[name] = {}
        for metric in comp.metrics:
            # same user set by construction, each sorted by user id: values are aligned
            paired[name][metric] = paired_test(comp.methods[ref].per_user[metric], s.per_user[metric],
                                               seed=seed)._asdict()
    split = {name: {"ranked_first": 1.0 - m["metrics"]["slate_miss"]["mean"] - m["metrics"]["rank_drop"]["mean"],
                    "rank_drop": m["metrics"]["rank_drop"]["mean"],
                    "slate_miss": m["metrics"]["slate_miss"]["mean"]} for name, m in methods.items()}
    summaries = {name: m["metrics"] for name, m in methods.items()}
    return {"title": comp.title, "protocol": comp.protocol, "split": comp.split, "dataset": comp.dataset,
            "sources": [str(p) for p in comp.sources], "metrics": comp.metrics, "primary": comp.primary,
            "reference": ref, "methods": methods,
            "best": {m: sorted(v) for m, v in best_per_metric(summaries, comp.metrics).items()},
            "paired": paired, "error_split": split, "recompute_max_abs_diff": comp.checks}
