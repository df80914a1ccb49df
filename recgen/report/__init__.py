"""Comparison reports: ``recgen report`` and :func:`write_report`.

From evaluation folders (``recgen evaluate --out``) and training runs (``recgen train
--out-dir``), write ``OUT/report.html`` (self-contained), ``OUT/report.md`` with its PNG
figures next to it, and ``OUT/summary.json`` (the numbers behind both). Per-user metrics are
recomputed from ``rankings.parquet``, so every method can be tested against the reference
on the same users. Nothing is logged to MLflow here; a caller may log ``OUT`` as artifacts.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from recgen.errors import ConfigError
from recgen.report import document as d
from recgen.report.compute import Comparison, add_evaluation, summarise
from recgen.report.context import (
    DEFAULT_DATASET,
    datasets_of,
    describe_dataset,
    pool_recall,
    run_summary,
)
from recgen.report.inputs import load_inputs

__all__ = ["write_report"]

logger = logging.getLogger(__name__)


def _check_reference(comparisons: list[Comparison], reference: str | None) -> None:
    names = sorted({n for c in comparisons for n in c.methods})
    if reference and reference not in names:
        raise ConfigError(f"--reference {reference!r} is not among the methods of the inputs: {names}")


def _pool_rows(runs, comparisons, datasets) -> list[dict[str, Any]]:
    folders: list[Path] = [r.pools for r in runs if r.pools]
    for comp in comparisons:
        default = datasets.get(comp.dataset or DEFAULT_DATASET, {}).get("pools")
        if default:
            folders.append(Path(default))
    rows: list[dict[str, Any]] = []
    seen: set[Path] = set()
    for folder in folders:
        if folder.resolve() not in seen:
            seen.add(folder.resolve())
            rows.extend(pool_recall(folder))
    return rows


def _figures(summary: dict[str, Any], runs, out: Path) -> dict[str, Path]:
    from recgen.report import figures

    paths: dict[str, Path] = {}
    for i, comp in enumerate(summary["comparisons"], start=1):
        paths[f"split-{i}"] = figures.error_split_figure(
            comp["error_split"], comp["title"], out / f"fig-{i}-error-split.png")
        paths[f"ci-{i}"] = figures.ci_figure(comp["methods"], comp["primary"], comp["title"],
                                             out / f"fig-{i}-{comp['primary'].replace('@', '')}.png")
    rl = [r for r in runs if r.is_rl]
    sft = [r for r in runs if not r.is_rl and r.steps]
    if rl:
        paths["rewards"] = figures.reward_figure(rl, out / "fig-training-rewards.png")
        paths["diagnostics"] = figures.diagnostics_figure(rl, out / "fig-training-diagnostics.png")
    if sft:
        paths["loss"] = figures.loss_figure(sft, out / "fig-training-sft-loss.png")
    return paths


def _document(summary: dict[str, Any], figs: dict[str, Path]) -> d.Document:
    doc = d.Document("recgen comparison report")
    n_eval = sum(len(c["sources"]) for c in summary["comparisons"])
    doc.add(d.Para(f"{len(summary['inputs'])} input folder(s): {n_eval} set(s) of rankings, "
                   f"{len(summary['training'])} training run(s). Metrics are recomputed per user from "
                   "rankings.parquet; CIs are 95% percentile bootstraps over users (seed "
                   f"{summary['seed']})."))
    doc.add(*(d.Para(n, "note") for n in summary["notes"]))
    for i, comp in enumerate(summary["comparisons"], start=1):
        doc.add(d.Heading(2, f"Comparison: {comp['title']} ({comp['dataset']})"),
                d.Para(f"Reference: {comp['reference']}. Sources: {', '.join(comp['sources'])}."))
        doc.add(*d.comparison_blocks(comp))
        doc.add(d.Figure(figs[f"ci-{i}"], f"{comp['primary']} per method, 95% CI ({comp['title']})."))
        doc.add(d.Heading(3, "Slate miss vs rank drop"), *d.error_split_blocks(comp, figs.get(f"split-{i}")))
        doc.add(d.Heading(3, f"Paired tests against {comp['reference']}"), *d.paired_blocks(comp))
    doc.add(d.Heading(2, "Pool recall"), *d.pool_blocks(summary["pools"]))
    if summary["training"]:
        doc.add(d.Heading(2, "Training"), *d.training_blocks(summary["training"]))
        for key, caption in (("rewards", "Per-phase rewards per step (mean over the step's rollouts)."),
                             ("diagnostics", "Training diagnostics per step."),
                             ("loss", "SFT loss per step.")):
            if key in figs:
                doc.add(d.Figure(figs[key], caption))
    doc.add(d.Heading(2, "Dataset statistics"), *d.dataset_blocks(summary["datasets"]))
    return doc


def write_report(inputs: list[Path], out: Path, *, reference: str | None = None, seed: int = 0) -> dict:
    """Write ``out/report.html``, ``out/report.md`` (+ PNGs) and ``out/summary.json``.

    Args:
        inputs: evaluation folders, training run folders, or folders holding either.
        out: output folder (created; earlier ``fig-*.png`` there are replaced).
        reference: the method paired tests compare against; default ``fgrpo`` where present,
            else the first method of each comparison.
        seed: bootstrap seed.

    Returns:
        ``{"html", "markdown", "summary_json": Path, "figures": [Path], "summary": dict}``.

    Raises:
        DataFileNotFoundError: an input is neither kind; ConfigError: unknown ``reference``.
    """
    evals, runs = load_inputs([Path(p) for p in inputs])
    comparisons: list[Comparison] = []
    for ev in [*evals, *(r.evaluation for r in runs if r.evaluation is not None)]:
        add_evaluation(comparisons, ev)
    _check_reference(comparisons, reference)
    names, notes = datasets_of([c.dataset for c in comparisons] + [r.config.get("dataset") for r in runs])
    for comp in comparisons:
        comp.dataset = comp.dataset or DEFAULT_DATASET
    datasets = {name: describe_dataset(name) for name in names}
    comp_summaries = [summarise(c, reference, seed) for c in comparisons]
    for c in comp_summaries:
        bad = {m: v for m, v in c["recompute_max_abs_diff"].items() if v > 1e-9}
        if bad:
            notes.append(f"{c['title']}: recomputed means differ from metrics.json for {sorted(bad)} "
                         f"(max {max(bad.values()):.3g})")
    if not comparisons:
        notes.append("no rankings among the inputs (training runs without eval/): no comparison table")
    summary: dict[str, Any] = {
        "inputs": [str(p) for p in inputs], "seed": seed, "reference": reference, "notes": notes,
        "comparisons": comp_summaries, "training": [run_summary(r) for r in runs],
        "pools": _pool_rows(runs, comparisons, datasets), "datasets": datasets,
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("fig-*.png"):
        old.unlink()
    figs = _figures(summary, runs, out)
    doc = _document(summary, figs)
    from recgen.report import html, markdown

    paths = {"html": out / "report.html", "markdown": out / "report.md", "summary_json": out / "summary.json"}
    paths["markdown"].write_text(markdown.render(doc))
    paths["html"].write_text(html.render(doc))
    paths["summary_json"].write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    logger.info("wrote %s, %s and %d figure(s)", paths["html"], paths["markdown"], len(figs))
    return {**paths, "figures": list(figs.values()), "summary": summary}
