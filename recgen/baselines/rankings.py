"""Full-catalogue rankings of the classic baselines, written as ``recgen evaluate --out`` writes.

``benchmarks/classic_baselines.py --rankings-out DIR`` ranks the whole catalogue per test user
(train + valid items excluded) with popularity, RecBole models and recgen's SASRec retriever.
:func:`write_rankings` turns those lists into the files of an evaluation folder, so that
``recgen report DIR`` reads them like any other:

- ``DIR/rankings.parquet``: ``user_id, method, ranked, target, slate, ranking``; ``ranked`` is
  the model's top-n list (best first); ``slate`` / ``ranking`` are its first m / k items, as
  for the pool baselines (:func:`recgen.eval.protocols.retriever_outputs`);
- ``DIR/metrics.json``: ``{"protocol", "split", "users", "seed", "dataset", "methods": {name:
  {metric: {mean, lo, hi}}}}`` plus ``catalogue`` (what was ranked) and ``details`` (per method:
  training facts given by the caller);
- ``DIR/table.md``: the comparison table of :func:`recgen.eval.tables.comparison_table`.

Scoring is :func:`recgen.eval.protocols.score` under the end-to-end protocol (Recall/NDCG @5
and @10 of ``ranked`` via :func:`recgen.eval.metrics.evaluate_rankings`, 95% CIs from
:func:`recgen.eval.significance.bootstrap_ci`): the report only knows the "pool" and
"end-to-end" protocols, and a full-catalogue list is the end-to-end case with the whole
catalogue as the pool (its ``pool_recall@N`` is then recall@N of the top-n list).

A folder is updated method by method: methods already in ``DIR`` and not re-written are kept
when the folder holds the same dataset, split and test users; anything else is refused.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from recgen.errors import ConfigError
from recgen.eval.protocols import EvalResult, MethodOutput, score

logger = logging.getLogger(__name__)

PROTOCOL = "end-to-end"
SLATE_SIZE = 10
RANK_SIZE = 5


@dataclass(frozen=True)
class RankedUser:
    """The part of a :class:`recgen.examples.Example` that scoring reads: here the "pool"
    (``candidates``) is the model's own full-catalogue top-n list."""

    user_id: str
    target: str
    candidates: tuple[str, ...]

    @property
    def relevant(self) -> frozenset[str]:
        return frozenset((self.target,))


def score_method(
    method: str,
    users: Sequence[str],
    targets: Mapping[str, str],
    rankings: Mapping[str, Sequence[str]],
    *,
    seed: int = 0,
    slate_size: int = SLATE_SIZE,
    rank_size: int = RANK_SIZE,
) -> EvalResult:
    """One method's full-catalogue lists scored like ``recgen evaluate`` (end-to-end protocol)."""
    missing = [u for u in users if u not in rankings]
    if missing:
        raise ValueError(
            f"method {method!r}: {len(missing)} user(s) have no ranking, e.g. {missing[:3]}"
        )
    points = [
        RankedUser(str(u), str(targets[u]), tuple(str(i) for i in rankings[u])) for u in users
    ]
    finals = [list(p.candidates) for p in points]
    out = MethodOutput(
        method, [f[:slate_size] for f in finals], [f[:rank_size] for f in finals], finals
    )
    return score(points, out, PROTOCOL, seed=seed)  # type: ignore[arg-type]  # duck-typed examples


def _existing(
    out: Path, dataset: str, split: str, users: Sequence[str], targets: Mapping[str, str]
) -> tuple[dict[str, dict[str, list[str]]], dict[str, Any]]:
    """Rankings and details of the methods already in ``out`` (checked to be the same setting)."""
    frame_path, meta_path = out / "rankings.parquet", out / "metrics.json"
    if not frame_path.is_file():
        return {}, {}
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    frame = pl.read_parquet(frame_path)
    setting = (meta.get("protocol"), meta.get("split"), meta.get("dataset"), meta.get("catalogue"))
    if setting[:3] != (PROTOCOL, split, dataset) or not setting[3]:
        raise ConfigError(
            f"{out} holds another evaluation (protocol, split, dataset = {setting[:3]}, "
            f"full-catalogue: {bool(setting[3])}); write the rankings to another folder"
        )
    old: dict[str, dict[str, list[str]]] = {}
    for method in frame["method"].unique(maintain_order=True).to_list():
        rows = frame.filter(pl.col("method") == method)
        if set(rows["user_id"].to_list()) != set(users) or any(
            targets[u] != t for u, t in zip(rows["user_id"], rows["target"], strict=True)
        ):
            raise ConfigError(
                f"{out}: method {method!r} was scored on other users or targets than "
                "this run; write the rankings to another folder"
            )
        old[method] = dict(zip(rows["user_id"].to_list(), rows["ranked"].to_list(), strict=True))
    return old, dict(meta.get("details", {}))


def write_rankings(
    out: str | Path,
    rankings: Mapping[str, Mapping[str, Sequence[str]]],
    users: Sequence[str],
    targets: Mapping[str, str],
    *,
    dataset: str,
    split: str = "test",
    seed: int = 0,
    catalogue: str = "full catalogue, the user's earlier items excluded",
    details: Mapping[str, Mapping[str, Any]] | None = None,
    reference: str | None = None,
) -> dict[str, EvalResult]:
    """Write ``out/rankings.parquet``, ``metrics.json`` and ``table.md`` (see the module doc).

    Args:
        out: the evaluation folder (created); methods already there are kept unless re-written.
        rankings: method name -> user -> ranked item ids (best first, seen items excluded).
        users: the evaluated users, in output order; targets: user -> the held-out item.
        dataset, split: as in ``recgen evaluate``'s metrics.json; seed: the bootstrap seed.
        catalogue: what the lists rank (recorded as ``catalogue`` in metrics.json).
        details: method -> JSON-ready facts (training time, epochs, ...) for ``details``.
        reference: the table's reference method (default: the last method written).

    Returns:
        method -> :class:`EvalResult` of every method now in the folder.
    """
    from recgen.eval.tables import comparison_table
    from recgen.io import atomic_write_bytes, atomic_write_json

    out = Path(out)
    users = [str(u) for u in users]
    targets = {str(u): str(t) for u, t in targets.items()}
    old, old_details = _existing(out, dataset, split, users, targets)
    merged = {m: rankings.get(m, r) for m, r in old.items()} | dict(rankings)  # in place
    kept = sorted(set(old) - set(rankings))
    if kept:
        logger.info("%s: keeping earlier method(s) %s", out, kept)
    results = {m: score_method(m, users, targets, r, seed=seed) for m, r in merged.items()}
    out.mkdir(parents=True, exist_ok=True)
    frame = pl.concat([r.frame for r in results.values()])
    tmp = out / ".rankings.parquet.tmp"
    frame.write_parquet(tmp)
    tmp.replace(out / "rankings.parquet")
    all_details = {m: d for m, d in old_details.items() if m in merged} | dict(details or {})
    atomic_write_json(
        out / "metrics.json",
        {
            "protocol": PROTOCOL,
            "split": split,
            "users": len(users),
            "seed": seed,
            "dataset": dataset,
            "catalogue": catalogue,
            "methods": {m: r.summary for m, r in results.items()},
            "details": all_details,
        },
    )
    ref = (
        reference
        if reference in results
        else list(rankings)[-1]
        if rankings
        else next(iter(results))
    )
    metrics = list(next(iter(results.values())).summary)
    table = comparison_table(
        results,
        metrics,
        reference=ref if len(results) > 1 else None,
        test_metric="ndcg@10",
        seed=seed,
    )
    atomic_write_bytes(out / "table.md", table.encode())
    logger.info("wrote %s (%d methods, %d users)", out, len(results), len(users))
    return results
