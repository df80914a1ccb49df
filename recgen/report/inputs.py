"""Find and read the inputs of a report: evaluation folders and training run folders.

An input is recognised by its content, not its name:

- evaluation folder (``recgen evaluate --out DIR``): ``rankings.parquet`` and usually
  ``metrics.json`` ({"protocol", "split", "users", "seed", "dataset"?, "methods": {...}});
- training run folder (``recgen train --out-dir DIR``): ``metrics.jsonl`` (one JSON object
  per step) and ``config.json``, optionally ``result.json``, ``final/recgen.json`` and
  ``eval/`` (rankings.parquet + a flat metrics.json of validation users, pool protocol);
- a folder holding such folders (e.g. ``runs/cmp40``): its direct subfolders, sorted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from recgen.errors import DataFileNotFoundError, MissingColumnError, ParseError

logger = logging.getLogger(__name__)

RANKING_COLUMNS = ("user_id", "method", "ranked", "target", "slate", "ranking")
INPUT_FILES = ("rankings.parquet", "metrics.json", "metrics.jsonl")


@dataclass
class EvalInput:
    """Rankings of one or more methods on one set of users, under one protocol and split."""

    source: Path
    protocol: str
    split: str
    frame: pl.DataFrame  # RANKING_COLUMNS
    reported: dict[str, dict[str, dict[str, float]]]  # method -> metric -> {mean, lo, hi}
    dataset: str | None = None
    pools: Path | None = None
    seed: int = 0
    rename: dict[str, str] = field(default_factory=dict)  # method column value -> display name


@dataclass
class TrainingRun:
    """One ``recgen train`` output folder."""

    source: Path
    config: dict[str, Any]
    steps: list[dict[str, Any]]
    result: dict[str, Any]
    pools: Path | None
    evaluation: EvalInput | None
    label: str = ""

    @property
    def method(self) -> str:
        return str(self.config.get("method") or self.source.name)

    @property
    def is_rl(self) -> bool:
        return any("reward_gen" in s for s in self.steps)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ParseError(f"{path}: line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from e


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ParseError(f"{path}: line {n}, column {e.colno}: not valid JSON ({e.msg})") from e
    return rows


def _read_rankings(path: Path) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    missing = [c for c in RANKING_COLUMNS if c not in frame.columns]
    if missing:
        raise MissingColumnError(f"{path}: missing column(s) {missing}; expected {list(RANKING_COLUMNS)} "
                                 "(the output of `recgen evaluate`)")
    return frame.select(RANKING_COLUMNS)


def read_evaluation(folder: Path) -> EvalInput:
    """An evaluation folder of ``recgen evaluate`` (metrics.json with "methods")."""
    frame = _read_rankings(folder / "rankings.parquet")
    meta = _read_json(folder / "metrics.json") if (folder / "metrics.json").exists() else {}
    if "methods" not in meta:
        logger.warning("%s: no metrics.json with a protocol; assuming the pool protocol", folder)
    pools = meta.get("pools")
    return EvalInput(source=folder, protocol=str(meta.get("protocol", "pool")),
                     split=str(meta.get("split", "test")), frame=frame,
                     reported=meta.get("methods", {}), dataset=meta.get("dataset"),
                     pools=Path(pools) if pools else None, seed=int(meta.get("seed", 0)))


def read_training_run(folder: Path) -> TrainingRun:
    """A training run folder; its ``eval/`` (validation users, pool protocol) when present."""
    config = _read_json(folder / "config.json") if (folder / "config.json").exists() else {}
    steps = _read_jsonl(folder / "metrics.jsonl") if (folder / "metrics.jsonl").exists() else []
    result = _read_json(folder / "result.json") if (folder / "result.json").exists() else {}
    meta_path = folder / "final" / "recgen.json"
    meta = _read_json(meta_path) if meta_path.exists() else {}
    pools = Path(meta["pools"]) if meta.get("pools") else None
    evaluation = None
    if (folder / "eval" / "rankings.parquet").exists():
        reported = {}
        if (folder / "eval" / "metrics.json").exists():
            flat = _read_json(folder / "eval" / "metrics.json")
            reported = {str(config.get("method", folder.name)): flat}
        evaluation = EvalInput(source=folder / "eval", protocol="pool", split="valid",
                               frame=_read_rankings(folder / "eval" / "rankings.parquet"),
                               reported=reported, dataset=config.get("dataset"), pools=pools,
                               seed=int(config.get("seed", 0)))
    return TrainingRun(folder, config, steps, result, pools, evaluation)


def _kind(folder: Path) -> str | None:
    if (folder / "rankings.parquet").is_file():
        return "evaluation"
    if (folder / "metrics.jsonl").is_file() or (folder / "config.json").is_file() and (
            folder / "result.json").is_file():
        return "training"
    return None


def discover(paths: list[Path]) -> list[tuple[str, Path]]:
    """``(kind, folder)`` for every input; a folder of inputs expands to its direct subfolders."""
    found: list[tuple[str, Path]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file() and path.name in INPUT_FILES:
            path = path.parent
        if not path.exists():
            raise DataFileNotFoundError(f"{path}: no such file or folder")
        kind = _kind(path) if path.is_dir() else None
        if kind:
            found.append((kind, path))
            continue
        children = [(k, c) for c in sorted(path.iterdir()) if c.is_dir() and (k := _kind(c))] \
            if path.is_dir() else []
        if not children:
            raise DataFileNotFoundError(
                f"{path}: not a report input: expected rankings.parquet (an evaluation folder of "
                "`recgen evaluate --out`) or metrics.jsonl (a training run of `recgen train "
                "--out-dir`), or a folder holding such folders")
        found.extend(children)
    unique: list[tuple[str, Path]] = []
    for kind, folder in found:
        if all(folder.resolve() != f.resolve() for _, f in unique):
            unique.append((kind, folder))
    return unique


def _label_runs(runs: list[TrainingRun]) -> None:
    """Display names: the method; ``parent/folder`` where two runs share a method."""
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.method] = counts.get(run.method, 0) + 1
    used: set[str] = set()
    for run in runs:
        label = run.method if counts[run.method] == 1 else f"{run.source.parent.name}/{run.source.name}"
        base, n = label, 2
        while label in used:
            label, n = f"{base} #{n}", n + 1
        used.add(label)
        run.label = label
        if run.evaluation is not None:
            for method in run.evaluation.frame["method"].unique().to_list():
                run.evaluation.rename[method] = label


def load_inputs(paths: list[Path]) -> tuple[list[EvalInput], list[TrainingRun]]:
    """Read every input (see the module docstring); raises DataFileNotFoundError for a path
    that is neither kind."""
    evals: list[EvalInput] = []
    runs: list[TrainingRun] = []
    for kind, folder in discover(paths):
        if kind == "evaluation":
            evals.append(read_evaluation(folder))
        else:
            runs.append(read_training_run(folder))
        logger.info("report input: %s (%s)", folder, kind)
    _label_runs(runs)
    return evals, runs
