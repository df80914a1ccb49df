"""Evaluation protocols of FGRPO.md: the pool protocol and the end-to-end protocol.

- pool protocol (the paper's): pools hold N-1 retrieved candidates plus the target
  (``inject`` pools). Reported: Recall/NDCG @1/@3/@5, slate coverage, and the error split
  slate miss (target not in the slate) vs rank drop (in the slate, not ranked first).
- end-to-end protocol (what a user gets): pools are the retriever's top N (``retrieve``),
  the target may be missing. Reported: Recall/NDCG @5/@10 and the pool's own recall@N.

Both turn an output into one final list: the ranking, then the rest of the slate, then the
rest of the pool, each remainder ordered by retriever score. Decoding is greedy and
grammar-constrained, so a method's output for a user is deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from recgen.eval.metrics import evaluate_rankings
from recgen.eval.significance import bootstrap_ci, paired_test
from recgen.examples import Example

logger = logging.getLogger(__name__)

POOL_KS = (1, 3, 5)
E2E_KS = (5, 10)


@dataclass
class MethodOutput:
    """What one method produced for each example (aligned with the examples)."""

    method: str
    slates: list[list[str]]  # item ids; for non-LLM methods the first m of the ranked pool
    rankings: list[list[str]]  # item ids, best first (k items)
    final: list[list[str]]  # the whole final list, best first


@dataclass
class EvalResult:
    method: str
    protocol: str
    per_user: dict[str, np.ndarray]
    frame: pl.DataFrame  # user_id, method, ranked, target, slate, ranking
    summary: dict[str, dict[str, float]] = field(default_factory=dict)  # metric -> mean/lo/hi

    def means(self) -> dict[str, float]:
        return {k: float(v.mean()) for k, v in self.per_user.items()}


def final_list(ex: Example, slate: Sequence[str], ranking: Sequence[str]) -> list[str]:
    """Ranking, then the rest of the slate, then the rest of the pool (both by retriever score)."""
    rank = {item: i for i, item in enumerate(ex.candidates)}
    seen = set(ranking)
    rest_slate = sorted((i for i in slate if i not in seen), key=rank.__getitem__)
    seen.update(rest_slate)
    rest_pool = [i for i in ex.candidates if i not in seen]
    return [*ranking, *rest_slate, *rest_pool]


def llm_outputs(policy, grammar, examples: list[Example], *, method: str, slate_size: int,
                batch_size: int = 8, forced_slate: bool = False) -> MethodOutput:
    """Greedy constrained decoding for every example (``forced_slate``: the decoupled baseline)."""
    from recgen.policy.rollout import sample_groups

    slates, rankings, finals = [], [], []
    for s in tqdm(range(0, len(examples), batch_size), desc=f"decode {method}", leave=False):
        batch = examples[s: s + batch_size]
        forced = [ex.retriever_slate(slate_size) for ex in batch] if forced_slate else None
        rb = sample_groups(policy, [list(ex.input_ids) for ex in batch], grammar, group_size=1,
                           greedy=True, forced_slates=forced)
        for ex, out in zip(batch, rb.parsed, strict=True):
            if out.error is not None:  # only possible in unconstrained mode
                slate, ranking = [], []
            else:
                slate, ranking = ex.items_at(out.slate), ex.items_at(out.ranking)
            slates.append(slate)
            rankings.append(ranking)
            finals.append(final_list(ex, slate, ranking))
    return MethodOutput(method, slates, rankings, finals)


def retriever_outputs(examples: list[Example], *, slate_size: int, rank_size: int) -> MethodOutput:
    """Baseline 1: the pool in retriever order."""
    finals = [list(ex.candidates) for ex in examples]
    return MethodOutput("retriever", [f[:slate_size] for f in finals], [f[:rank_size] for f in finals], finals)


def popularity_outputs(examples: list[Example], counts: dict[str, int], *, slate_size: int,
                       rank_size: int) -> MethodOutput:
    """Baseline 2: the pool ordered by training-set popularity (ties: retriever order)."""
    finals = [sorted(ex.candidates, key=lambda i: -counts.get(i, 0)) for ex in examples]
    return MethodOutput("popularity", [f[:slate_size] for f in finals], [f[:rank_size] for f in finals], finals)


def score(examples: list[Example], out: MethodOutput, protocol: str, *, seed: int = 0) -> EvalResult:
    """Per-user metrics of one method under ``protocol`` ('pool' or 'end-to-end')."""
    if protocol not in ("pool", "end-to-end"):
        raise ValueError(f"unknown protocol {protocol!r}: expected 'pool' or 'end-to-end'")
    relevant = [ex.relevant for ex in examples]
    ks = POOL_KS if protocol == "pool" else E2E_KS
    per_user = evaluate_rankings(out.final, relevant, ks=ks, metrics=("recall", "ndcg"))
    in_slate = np.array([ex.target in set(s) for ex, s in zip(examples, out.slates, strict=True)], dtype=float)
    first = np.array([bool(r) and r[0] == ex.target for ex, r in zip(examples, out.rankings, strict=True)],
                     dtype=float)
    in_pool = np.array([ex.target in set(ex.candidates) for ex in examples], dtype=float)
    per_user["coverage"] = in_slate
    per_user["slate_miss"] = 1.0 - in_slate
    per_user["rank_drop"] = in_slate * (1.0 - first)
    if protocol == "end-to-end":
        per_user[f"pool_recall@{len(examples[0].candidates) if examples else 0}"] = in_pool
    frame = pl.DataFrame({
        "user_id": [ex.user_id for ex in examples],
        "method": [out.method] * len(examples),
        "ranked": out.final,
        "target": [ex.target for ex in examples],
        "slate": out.slates,
        "ranking": out.rankings,
    }, schema={"user_id": pl.String, "method": pl.String, "ranked": pl.List(pl.String),
               "target": pl.String, "slate": pl.List(pl.String), "ranking": pl.List(pl.String)})
    summary = {}
    for name, values in per_user.items():
        ci = bootstrap_ci(values, seed=seed)
        summary[name] = {"mean": float(ci.mean), "lo": float(ci.lo), "hi": float(ci.hi)}
    return EvalResult(out.method, protocol, per_user, frame, summary)


def compare(results: dict[str, EvalResult], reference: str, metric: str, *, seed: int = 0) -> dict[str, dict]:
    """Paired tests of every method against ``reference`` on ``metric`` (same users, same order)."""
    if reference not in results:
        raise ValueError(f"reference method {reference!r} is not among the evaluated: {sorted(results)}")
    ref = results[reference]
    out = {}
    for name, res in results.items():
        if name == reference:
            continue
        if list(res.frame["user_id"]) != list(ref.frame["user_id"]):
            raise ValueError(f"{name} and {reference} were evaluated on different users")
        p = paired_test(ref.per_user[metric], res.per_user[metric], seed=seed)
        out[name] = p._asdict()
    return out


def format_failures(policy, grammar, examples: list[Example], *, batch_size: int = 8,
                    max_new_tokens: int = 80) -> dict[str, object]:
    """Unconstrained greedy decoding: how often the model fails the output format on its own,
    and why (the parser's reasons, counted)."""
    from collections import Counter

    from recgen.policy.rollout import sample_groups

    reasons: Counter[str] = Counter()
    samples: list[str] = []
    for s in tqdm(range(0, len(examples), batch_size), desc="decode unconstrained", leave=False):
        batch = examples[s: s + batch_size]
        rb = sample_groups(policy, [list(ex.input_ids) for ex in batch], grammar, group_size=1, greedy=True,
                           constrained=False, max_new_tokens=max_new_tokens)
        for text, out in zip(rb.texts, rb.parsed, strict=True):
            if out.error is not None:
                reasons[out.error.split(":")[0]] += 1
            if len(samples) < 5:
                samples.append(text)
    n = len(examples)
    failed = sum(reasons.values())
    return {"users": n, "failures": failed, "failure_rate": failed / n if n else 0.0,
            "reasons": dict(reasons.most_common()), "sample_outputs": samples}
