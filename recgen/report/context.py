"""What surrounds a comparison: dataset statistics, the pools' recall, training-run summaries."""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Any

from recgen.report.inputs import TrainingRun

logger = logging.getLogger(__name__)

DEFAULT_DATASET = "ml-100k"


def describe_dataset(name: str) -> dict[str, Any]:
    """``{"stats": ds.stats(), "pools": default pool folder or None}`` or ``{"error": msg}``.

    The pool folder is the one ``recgen evaluate`` uses (``ensure_pools`` with its defaults:
    N = 20, one training example per user, the default retriever settings)."""
    try:
        from recgen.data import load_dataset

        ds = load_dataset(name)
    except Exception as e:  # any failure becomes a note in the report, not a crash
        logger.warning("dataset %s: %s", name, e)
        return {"error": f"{type(e).__name__}: {e}"}
    info: dict[str, Any] = {"stats": ds.stats(), "pools": None}
    try:
        from recgen.pipeline import pools_folder

        folder = pools_folder(ds)
        info["pools"] = str(folder) if folder.is_dir() else None
    except Exception as e:  # the default pool folder is a convenience only
        logger.warning("default pools of %s: %s", name, e)
    return info


def pool_recall(folder: Path) -> list[dict[str, Any]]:
    """One row per pool mode found under ``folder`` ({inject,retrieve}/summary.json, or the
    folder's own summary.json): mode, size, and recall@N per split."""
    rows = []
    candidates = [folder / "inject", folder / "retrieve"] if (folder / "inject").is_dir() else [folder]
    for sub in candidates:
        path = sub / "summary.json"
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            logger.warning("%s: not valid JSON (%s)", path, e)
            continue
        rows.append({"folder": str(folder), "mode": data.get("mode", sub.name), "size": data.get("size"),
                     "pool_recall": data.get("pool_recall", {})})
    return rows


def _mean(values: list[float]) -> float | None:
    return float(statistics.fmean(values)) if values else None


def _series(steps: list[dict[str, Any]], key: str) -> list[float]:
    return [float(s[key]) for s in steps if isinstance(s.get(key), int | float)]


def run_summary(run: TrainingRun) -> dict[str, Any]:
    """Config essentials and per-phase rewards: mean over all steps, the first and the last
    quarter of steps (RL), or the first and last loss (SFT)."""
    cfg = run.config
    out: dict[str, Any] = {
        "label": run.label, "method": run.method, "source": str(run.source), "dataset": cfg.get("dataset"),
        "preset": cfg.get("preset"), "model": cfg.get("model"), "init_from": cfg.get("init_from"),
        "steps": len(run.steps), "seconds": run.result.get("seconds"), "kind": "rl" if run.is_rl else "sft",
        "pools": str(run.pools) if run.pools else None,
    }
    step_s = _series(run.steps, "step_s")
    out["median_step_s"] = float(statistics.median(step_s)) if step_s else None
    if run.is_rl:
        n = len(run.steps)
        w = max(1, n // 4)
        for key in ("reward_gen", "reward_rank", "frac_zero_adv_gen", "frac_zero_adv_rank"):
            vals = _series(run.steps, key)
            out[key] = {"mean": _mean(vals), "first": _mean(vals[:w]), "last": _mean(vals[-w:]), "window": w}
    else:
        loss = _series(run.steps, "loss")
        out["loss"] = {"first": loss[0] if loss else None, "last": loss[-1] if loss else None}
    return out


def datasets_of(names: list[str | None]) -> tuple[list[str], list[str]]:
    """Distinct dataset names (missing ones default to ml-100k) and the notes that says so."""
    notes, out = [], []
    for name in names:
        if name is None:
            name = DEFAULT_DATASET
            note = (f"an input does not name its dataset (metrics.json of an older `recgen evaluate`); "
                    f"assumed {DEFAULT_DATASET}")
            if note not in notes:
                notes.append(note)
        if name not in out:
            out.append(name)
    return out, notes
