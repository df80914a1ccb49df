r"""Top-k ranking metrics with binary relevance (pure functions, numpy only).

One user: a ranked list ``ranked`` of item ids (best first) and a set ``relevant`` of
relevant ids. Ids are any hashable values (raw ``str`` ids, 1-based pool positions, ...);
the two arguments must use the same id space. Let ``rel_i = 1`` if ``ranked[i]`` (0-based)
is relevant, ``|Rel|`` the number of relevant ids and ``top_k = ranked[:k]`` (a list shorter
than ``k`` is simply shorter; missing positions count as non-relevant).

- ``recall@k = |top_k ∩ Rel| / |Rel|``                (RecBole's convention: denominator
  ``|Rel|``, not ``min(k, |Rel|)``; with one relevant item it equals ``hit@k``)
- ``hit@k    = 1[ |top_k ∩ Rel| > 0 ]``
- ``mrr@k    = 1 / (i* + 1)`` with ``i*`` the first 0-based position ``< k`` holding a
  relevant id, 0 if none
- ``ndcg@k   = DCG@k / IDCG@k`` with ``DCG@k = sum_{i<k} rel_i / log2(i + 2)`` and
  ``IDCG@k = sum_{i < min(k, |Rel|)} 1 / log2(i + 2)`` (the DCG of a perfect ranking)

All four lie in ``[0, 1]`` and equal 1 for a perfect ranking (every relevant id in the
first ``|Rel|`` positions; for recall this needs ``k >= |Rel|``).

Errors (``ValueError``): an id repeated in ``ranked`` (the message names it), ``k <= 0`` or a
non-integer ``k``, an empty ``relevant`` set (every metric would be 0/0; evaluation callers
must drop users without a relevant item explicitly rather than silently score them 0).

Batched: :func:`evaluate_rankings` returns per-user arrays keyed ``"<metric>@<k>"``, e.g.
``"ndcg@5"``, computed in a vectorised way from a boolean hit matrix (the same layout as
RecBole's ``pos_index`` / ``pos_len``; the test suite cross-checks against RecBole).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Sequence

import numpy as np

__all__ = [
    "METRICS",
    "evaluate_rankings",
    "hit_at_k",
    "hit_matrix",
    "mrr_at_k",
    "ndcg_at_k",
    "recall_at_k",
]

#: Metric names understood by :func:`evaluate_rankings`.
METRICS: tuple[str, ...] = ("recall", "ndcg", "mrr", "hit")


# --- validation ------------------------------------------------------------------------
def _check_k(k: int, what: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ValueError(f"{what} must be a positive integer, got {k!r}")
    if k <= 0:
        raise ValueError(f"{what} must be a positive integer, got {k}")
    return int(k)


def _check_ranked(ranked: Iterable[Hashable], where: str = "") -> list[Hashable]:
    if isinstance(ranked, str | bytes):
        raise ValueError(
            f"the ranked list{where} must be a sequence of ids, got the string {ranked!r}"
        )
    items = list(ranked)
    seen: set[Hashable] = set()
    for pos, item in enumerate(items):
        if item in seen:
            raise ValueError(
                f"duplicate id {item!r} in the ranked list{where} "
                f"(first repeated at 0-based position {pos}); a ranking must list each id once"
            )
        seen.add(item)
    return items


def _check_relevant(relevant: Collection[Hashable], where: str = "") -> frozenset[Hashable]:
    if isinstance(relevant, str | bytes):
        raise ValueError(
            f"relevant{where} must be a set of ids, got the string {relevant!r}; wrap it: {{id}}"
        )
    rel = frozenset(relevant)
    if not rel:
        raise ValueError(
            f"relevant{where} is empty: the metrics are undefined without a relevant item "
            "(drop such users before evaluating)"
        )
    return rel


def _hits(
    ranked: Iterable[Hashable], relevant: Collection[Hashable], k: int
) -> tuple[list[bool], int]:
    """Validated ``[rel_0, ..., rel_{min(k,len)-1}]`` and ``|Rel|``."""
    k = _check_k(k)
    items = _check_ranked(ranked)
    rel = _check_relevant(relevant)
    return [item in rel for item in items[:k]], len(rel)


# --- one user --------------------------------------------------------------------------
def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """``|ranked[:k] ∩ relevant| / |relevant|`` (order inside the top k does not matter)."""
    hits, n_rel = _hits(ranked, relevant, k)
    return sum(hits) / n_rel


def hit_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """``1.0`` if any of the first ``k`` ids is relevant, else ``0.0``."""
    hits, _ = _hits(ranked, relevant, k)
    return 1.0 if any(hits) else 0.0


def mrr_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Reciprocal rank ``1 / (i + 1)`` of the first relevant id at 0-based position ``i < k``; 0 if none."""
    hits, _ = _hits(ranked, relevant, k)
    for i, hit in enumerate(hits):
        if hit:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Binary-relevance NDCG@k: ``sum_{i<k} rel_i / log2(i+2)`` over the ideal ``sum_{i<min(k,|Rel|)} 1/log2(i+2)``."""
    hits, n_rel = _hits(ranked, relevant, k)
    dcg = sum(1.0 / np.log2(i + 2) for i, hit in enumerate(hits) if hit)
    idcg = sum(1.0 / np.log2(i + 2) for i in range(min(k, n_rel)))
    return float(dcg / idcg)


# --- many users ------------------------------------------------------------------------
def hit_matrix(
    rankings: Sequence[Sequence[Hashable]],
    relevant: Sequence[Collection[Hashable]],
    max_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean ``(n_users, max_k)`` matrix ``H[u, i] = ranked_u[i] in Rel_u`` and ``|Rel_u|``.

    Positions past the end of a short ranking are ``False``. This is RecBole's
    ``(pos_index, pos_len)`` layout. Validates every user (duplicates, empty relevant set,
    length mismatch); messages name the 0-based user index.
    """
    max_k = _check_k(max_k, "max_k")
    if len(rankings) != len(relevant):
        raise ValueError(
            f"rankings has {len(rankings)} users but relevant has {len(relevant)}; "
            "they must be aligned user by user"
        )
    n = len(rankings)
    hits = np.zeros((n, max_k), dtype=bool)
    pos_len = np.zeros(n, dtype=np.int64)
    for u, (ranked, rel_u) in enumerate(zip(rankings, relevant, strict=True)):
        where = f" of user {u}"
        items = _check_ranked(ranked, where)
        rel = _check_relevant(rel_u, where)
        pos_len[u] = len(rel)
        for i, item in enumerate(items[:max_k]):
            if item in rel:
                hits[u, i] = True
    return hits, pos_len


def evaluate_rankings(
    rankings: Sequence[Sequence[Hashable]],
    relevant: Sequence[Collection[Hashable]],
    ks: Sequence[int] = (1, 3, 5, 10),
    metrics: Sequence[str] = METRICS,
) -> dict[str, np.ndarray]:
    """Per-user metric values for many users at once.

    Args:
        rankings: one ranked id list per user (best first).
        relevant: one non-empty set of relevant ids per user, aligned with ``rankings``.
        ks: cut-offs (positive integers).
        metrics: any of :data:`METRICS`.

    Returns:
        ``{"<metric>@<k>": float64 array of shape (n_users,)}`` in the order
        ``metrics`` × ``ks``; the same values as the one-user functions (vectorised).
        Average with ``.mean()``; feed to :mod:`recgen.eval.significance` for CIs/tests.
    """
    ks = [_check_k(k, "each k in ks") for k in ks]
    if not ks:
        raise ValueError("ks is empty; give at least one cut-off, e.g. ks=(1, 3, 5)")
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {list(METRICS)}")
    max_k = max(ks)
    hits, pos_len = hit_matrix(rankings, relevant, max_k)
    n = hits.shape[0]

    disc = 1.0 / np.log2(np.arange(2, max_k + 2, dtype=np.float64))  # 1/log2(i+2), i = 0..K-1
    cum_hits = np.cumsum(hits, axis=1, dtype=np.float64)  # |top_k ∩ Rel| for k = 1..K
    dcg = np.cumsum(np.where(hits, disc, 0.0), axis=1)
    ideal = np.cumsum(disc)  # ideal[j] = IDCG with j+1 relevant ids at the top
    any_hit = hits.any(axis=1)
    first = np.where(any_hit, hits.argmax(axis=1), max_k)  # 0-based first hit, K if none

    out: dict[str, np.ndarray] = {}
    for metric in metrics:
        for k in ks:
            if n == 0:
                out[f"{metric}@{k}"] = np.zeros(0, dtype=np.float64)
                continue
            if metric == "recall":
                val = cum_hits[:, k - 1] / pos_len
            elif metric == "hit":
                val = (cum_hits[:, k - 1] > 0).astype(np.float64)
            elif metric == "mrr":
                val = np.where(first < k, 1.0 / (first + 1.0), 0.0)
            else:  # ndcg
                val = dcg[:, k - 1] / ideal[np.minimum(k, pos_len) - 1]
            out[f"{metric}@{k}"] = val.astype(np.float64)
    return out
