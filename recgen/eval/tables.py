"""Markdown comparison tables: mean [95% CI] per metric, best per column in bold, and a
paired test of every method against a reference method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from recgen.eval.protocols import EvalResult, compare

LOWER_IS_BETTER = {"slate_miss", "rank_drop"}
TIE_TOLERANCE = 1e-12


def format_ci(s: Mapping[str, float], digits: int = 3) -> str:
    """``mean [lo, hi]`` of a ``{"mean", "lo", "hi"}`` summary."""
    return f"{s['mean']:.{digits}f} [{s['lo']:.{digits}f}, {s['hi']:.{digits}f}]"


def best_per_metric(summaries: Mapping[str, Mapping[str, Mapping[str, float]]],
                    metrics: Sequence[str]) -> dict[str, set[str]]:
    """``{metric: methods with the best mean}`` (lowest for :data:`LOWER_IS_BETTER`, else
    highest; ties within 1e-12 all count). A metric on which every method ties (e.g. the pool's
    own recall, the same for every method) has no best and is left out."""
    best: dict[str, set[str]] = {}
    for m in metrics:
        vals = {name: s[m]["mean"] for name, s in summaries.items() if m in s}
        if not vals:
            continue
        top = min(vals.values()) if m in LOWER_IS_BETTER else max(vals.values())
        winners = {name for name, v in vals.items() if abs(v - top) < TIE_TOLERANCE}
        if len(vals) == 1 or len(winners) < len(vals):
            best[m] = winners
    return best


def comparison_table(results: dict[str, EvalResult], metrics: Sequence[str], *,
                     reference: str | None = None, test_metric: str | None = None, seed: int = 0) -> str:
    """A markdown table; with ``reference``, a column with the paired difference on
    ``test_metric`` (reference minus method) and its bootstrap and Wilcoxon p-values."""
    best: dict[str, float] = {}
    for m in metrics:
        vals = [r.summary[m]["mean"] for r in results.values() if m in r.summary]
        if vals:
            best[m] = min(vals) if m in LOWER_IS_BETTER else max(vals)
    tests = compare(results, reference, test_metric, seed=seed) if reference and test_metric else {}
    head = ["method", "users", *metrics]
    if tests:
        head.append(f"{reference} − method on {test_metric} [95% CI], p (bootstrap / Wilcoxon)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in results.items():
        cells = [name, str(res.frame.height)]
        for m in metrics:
            s = res.summary.get(m)
            if s is None:
                cells.append("—")
                continue
            text = f"{s['mean']:.3f} [{s['lo']:.3f}, {s['hi']:.3f}]"
            cells.append(f"**{text}**" if abs(s["mean"] - best[m]) < 1e-12 else text)
        if tests:
            t = tests.get(name)
            cells.append("(reference)" if t is None else
                         f"{t['mean_diff']:+.3f} [{t['ci_lo']:+.3f}, {t['ci_hi']:+.3f}], "
                         f"p = {t['p_bootstrap']:.3f} / {t['p_wilcoxon']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
