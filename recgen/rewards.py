r"""Per-rollout rewards of F-GRPO (../shared/FGRPO.md, "Rewards"). Plain Python functions.

A rollout writes a slate ``S`` (m ids) and a ranking ``R`` (k ids taken from ``S``).
Relevance is binary: ``Rel`` is the set of relevant ids (the held-out target, or every
held-out relevant item). ``S``, ``R`` and ``Rel`` must be in the SAME id space: either all
1-based pool positions (map the target to its position with the prompt's ``order``), or
all item ids (pass ``order`` to :func:`rollout_rewards` to map positions to items).

- generation reward (order-invariant)  ``R_gen  = coverage(S, Rel) = |S ∩ Rel| / |Rel|``
- ranking reward (position-aware)      ``R_rank = NDCG@k(R, Rel)`` (``recgen.eval.metrics.ndcg_at_k``,
  binary gains, ``log2`` discount, ideal DCG over ``min(k, |Rel|)`` positions)
- format reward                        ``0`` if the rollout parses, else ``penalty`` (< 0)

Decision for an unparseable rollout (reachable only in unconstrained decoding): both
phase rewards are the penalty, ``R_gen = R_rank = penalty`` (coverage and NDCG count as 0).
Reason: in F-GRPO each phase's tokens see only that phase's advantage, so the penalty must
be in both rewards to reach every token of the broken output. The GRPO baseline's joint
reward ``R_gen + lambda * R_rank`` is then ``(1 + lambda) * penalty`` for such a rollout.
A parseable rollout gets format reward 0, i.e. ``R_gen``/``R_rank`` are coverage/NDCG alone.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from typing import Any, NamedTuple

from recgen.eval.metrics import _check_ranked, _check_relevant, ndcg_at_k

__all__ = [
    "DEFAULT_FORMAT_PENALTY",
    "RolloutRewards",
    "coverage",
    "format_penalty",
    "joint_reward",
    "ndcg_reward",
    "rollout_rewards",
]

#: Default format reward of an unparseable rollout.
DEFAULT_FORMAT_PENALTY: float = -1.0


class RolloutRewards(NamedTuple):
    """The two phase rewards of one rollout (unpacks as ``r_gen, r_rank``)."""

    r_gen: float
    r_rank: float


def coverage(slate: Collection[Hashable], relevant: Collection[Hashable]) -> float:
    """``|S ∩ Rel| / |Rel|``; independent of the order of ``slate``.

    Raises ValueError for an id repeated in the slate or an empty ``relevant``.
    """
    items = _check_ranked(slate, " (slate)")
    rel = _check_relevant(relevant)
    return len(rel.intersection(items)) / len(rel)


def ndcg_reward(
    ranking: Sequence[Hashable], relevant: Collection[Hashable], k: int | None = None
) -> float:
    """NDCG@k of ``ranking`` against ``relevant``; ``k=None`` means ``k = len(ranking)``."""
    if k is None:
        k = len(ranking)
        if k == 0:
            raise ValueError("ranking is empty and k is None: cannot choose a cut-off")
    return ndcg_at_k(ranking, relevant, k)


def format_penalty(parsed_ok: bool, penalty: float = DEFAULT_FORMAT_PENALTY) -> float:
    """Format reward: ``0.0`` for a parseable rollout, ``penalty`` (must be <= 0) otherwise."""
    _check_penalty(penalty)
    return 0.0 if parsed_ok else float(penalty)


def joint_reward(r_gen: float, r_rank: float, lam: float = 1.0) -> float:
    """The GRPO baseline's single reward ``R_gen + lambda * R_rank``."""
    return float(r_gen) + float(lam) * float(r_rank)


def _check_penalty(penalty: float) -> None:
    if not penalty <= 0.0:  # also rejects NaN
        raise ValueError(f"the format penalty must be <= 0 (a negative reward), got {penalty!r}")


def rollout_rewards(
    parsed: Any,
    relevant: Collection[Hashable],
    *,
    k: int | None = None,
    penalty: float = DEFAULT_FORMAT_PENALTY,
    order: Sequence[Hashable] | None = None,
) -> RolloutRewards:
    """``(R_gen, R_rank)`` of one rollout.

    Args:
        parsed: an object with ``slate``, ``ranking`` (1-based positions, or ``None``) and
            ``error`` (``None`` when it parsed), e.g. ``recgen.policy.grammar.ParsedOutput``.
            It counts as parsed iff ``error is None`` and both lists are present.
        relevant: relevant ids, in positions (``order=None``) or item ids (``order`` given).
        k: NDCG cut-off; ``None`` → the ranking's length (the rank size).
        penalty: format reward (<= 0) of an unparseable rollout.
        order: if given, ``order[p - 1]`` is the item shown at position ``p``; slate and
            ranking are mapped to items before scoring.

    Returns:
        ``(coverage(S, Rel), ndcg@k(R, Rel))`` if parsed, else ``(penalty, penalty)``.
    """
    _check_penalty(penalty)
    slate = getattr(parsed, "slate", None)
    ranking = getattr(parsed, "ranking", None)
    if getattr(parsed, "error", None) is not None or slate is None or ranking is None:
        return RolloutRewards(float(penalty), float(penalty))
    if order is not None:
        slate = [_position_to_item(p, order) for p in slate]
        ranking = [_position_to_item(p, order) for p in ranking]
    return RolloutRewards(coverage(slate, relevant), ndcg_reward(ranking, relevant, k))


def _position_to_item(p: int, order: Sequence[Hashable]) -> Hashable:
    if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= len(order):
        raise ValueError(f"position {p!r} is not a 1-based position of a pool of {len(order)}")
    return order[p - 1]
