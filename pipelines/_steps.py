"""The steps the MLproject entry points chain, each one MLflow run (nested under the entry
point's run when there is one). Entry scripts parse their arguments and call these.

Run the entry points with the active virtualenv's python (no environment is built):

    mlflow run . -e train --env-manager local -P preset=smoke -P steps=1
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import recgen.runtime  # noqa: F401  (OMP policy + offline HF before torch starts)
from recgen.errors import ConfigError, RecgenError
from recgen.tracking import MlflowTracker, Tracker, dataset_label, run_name
from recgen.train.config import METHODS, TrainConfig, preset

logger = logging.getLogger("recgen.pipelines")

CHAIN_SEP = "+"  # method "sft+fgrpo": SFT, then F-GRPO from the SFT model


def opt(value: str | None) -> str | None:
    """MLproject parameters are strings; '' (and 'none') mean "not given"."""
    return None if value is None or value.strip().lower() in ("", "none") else value.strip()


def opt_int(value: str | None, name: str) -> int | None:
    text = opt(value)
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"parameter {name}={value!r}: expected an integer") from None


def as_bool(value: str | bool, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value.strip().lower() in ("true", "1", "yes"):
        return True
    if value.strip().lower() in ("false", "0", "no", ""):
        return False
    raise ConfigError(f"parameter {name}={value!r}: expected true or false")


def words(value: str | None) -> list[str]:
    """'a b,c' → ['a', 'b', 'c']."""
    return [w for w in re.split(r"[\s,]+", value or "") if w]


def entry(fn: Callable[[], Any]) -> None:
    """Run an entry point: INFO logging; a recgen error is one line on stderr and exit status 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        fn()
    except RecgenError as e:
        sys.stderr.write(f"recgen: error: {e}\n")
        sys.exit(2)


# --- configs -------------------------------------------------------------------------------
def train_configs(method: str, preset_name: str, *, dataset: str = "ml-100k", model: str | None = None,
                  out_dir: str | None = None, init_from: str | None = None, steps: int | None = None,
                  overrides: Sequence[str] = ()) -> list[TrainConfig]:
    """One config per stage of ``method`` ('fgrpo', or a chain such as 'sft+fgrpo' whose later
    stages start from the previous stage's final/). Out dirs: ``runs/STAGE-PRESET`` (as
    ``recgen train``), or ``OUT/STAGE`` for a chain given ``out_dir``."""
    from recgen.commands.train import _parse_sets

    stages = [s.strip() for s in method.split(CHAIN_SEP)]
    for s in stages:
        if s not in METHODS:
            raise ConfigError(f"unknown method {s!r} in {method!r}: expected one of {', '.join(METHODS)} "
                              f"or a chain such as sft{CHAIN_SEP}fgrpo")
    extra = _parse_sets(list(overrides))
    cfgs: list[TrainConfig] = []
    for i, stage in enumerate(stages):
        if out_dir is None:
            out = f"runs/{stage}-{preset_name}"
        else:
            out = str(Path(out_dir) / stage) if len(stages) > 1 else out_dir
        start = init_from if i == 0 else str(Path(cfgs[-1].out_dir) / "final")
        cfgs.append(preset(preset_name, stage, dataset=dataset, model=model, out_dir=out, init_from=start,
                           steps=steps, **extra))
    return cfgs


def tracker() -> Tracker:
    """The MLflow tracker ($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db)."""
    return MlflowTracker()


# --- steps -------------------------------------------------------------------------------
def prepare_step(t: Tracker, dataset: str, dataset_format: str | None = None):
    """Load, preprocess, split and cache a dataset; log its statistics."""
    from recgen.data import load_dataset

    with t.start_run(f"prepare-{dataset_label(dataset)}", tags={"stage": "prepare", "dataset": dataset_label(dataset)}):
        ds = load_dataset(dataset, format=dataset_format)
        stats = ds.stats()
        t.log_params({"dataset": dataset, "format": ds.info.get("format") if hasattr(ds, "info") else dataset_format})
        t.log_metrics({k: v for k, v in stats.items() if isinstance(v, (int, float))})
        t.log_dict({"stats": stats, "cache": str(ds.cache_path)}, "dataset.json")
        logger.info("dataset %s: %s", ds.name, stats)
    return ds


def pools_step(t: Tracker, cfg: TrainConfig):
    """Train the retriever and build the candidate pools ``cfg``'s training will use (cached)."""
    from recgen.data import load_dataset
    from recgen.pipeline import ensure_pools
    from recgen.retrieval.sasrec import SASRecConfig

    label = dataset_label(cfg.dataset)
    with t.start_run(f"pools-{label}-N{cfg.pool_size}", tags={"stage": "pools", "dataset": label}):
        ds = load_dataset(cfg.dataset, format=cfg.dataset_format)
        pools = ensure_pools(ds, dataset=cfg.dataset, dataset_format=cfg.dataset_format, size=cfg.pool_size,
                             train_examples_per_user=cfg.train_examples_per_user,
                             sasrec=SASRecConfig(epochs=cfg.retriever_epochs))
        t.log_params({"pool_size": cfg.pool_size, "retriever_epochs": cfg.retriever_epochs,
                      "train_examples_per_user": cfg.train_examples_per_user})
        t.set_tags({"pools_folder": str(pools.folder)})
        t.log_metrics({f"rows_{s}": df.height for s, df in pools.inject.items()})
        for mode in ("inject", "retrieve"):
            summary = pools.folder / mode / "summary.json"
            if summary.exists():
                t.log_artifact(summary, artifact_path=f"pools/{mode}")
    return pools


def train_step(t: Tracker, cfgs: list[TrainConfig], *, resume: bool = False) -> list:
    """Train every stage; a chain gets a parent run unless one is already active."""
    from recgen.train.run import main

    if len(cfgs) == 1:
        return [main(cfgs[0], resume=resume, tracker=t)]
    chain = CHAIN_SEP.join(c.method for c in cfgs)
    parent = t.run_id is None  # else the stages nest directly under the active run
    ctx = t.start_run(run_name(chain, cfgs[0].dataset, cfgs[0].preset),
                      tags={"method": chain, "dataset": dataset_label(cfgs[0].dataset), "preset": cfgs[0].preset,
                            "stage": "train"}) if parent else contextlib.nullcontext()
    with ctx:
        results = [main(cfg, resume=resume, tracker=t) for cfg in cfgs]
        if parent:
            last = results[-1]
            t.log_metrics({f"valid_{k}": v["mean"] for k, v in last.eval_metrics.items()})
            t.set_tags({"final_dir": str(last.final_dir.resolve())})
    return results


def evaluate_step(t: Tracker, job, name: str | None = None) -> dict:
    """``recgen evaluate`` in a run: per-method metrics (``METHOD/ndcg_at_5`` …) and the output files."""
    from dataclasses import asdict

    from recgen.eval.runner import run_evaluation

    with t.start_run(name or f"evaluate-{job.split}", tags={"stage": "evaluate", "protocol": job.protocol}):
        t.log_params({k: v for k, v in asdict(job).items() if v not in (None, ())})
        res = run_evaluation(job)
        t.set_tags({"dataset": dataset_label(res["dataset"])})
        for method, r in res["results"].items():
            t.log_metrics({f"{method}/{k}": v["mean"] for k, v in r.summary.items()})
        t.log_artifact(res["out"], artifact_path="evaluation")
    return res


def register_step(t: Tracker, run_dir: str | Path, *, name: str | None = None, metric: str = "ndcg@5"):
    """Package, register and maybe promote a training run (see recgen.registry)."""
    from recgen.registry import RegisterConfig
    from recgen.registry import main as register

    reg = register(RegisterConfig(run_dir=str(run_dir), name=name, metric=metric), tracker=t)
    logger.info("registered %s v%d: %s (%s)", reg.name, reg.version, "promoted" if reg.promoted else "kept",
                reg.reason)
    return reg


def report_step(t: Tracker, inputs: Sequence[str | Path], out: str | Path, *, reference: str | None = None) -> dict:
    """``recgen report`` over evaluation and training folders, logged as the run's artifacts."""
    from recgen.report import write_report

    with t.start_run("report", tags={"stage": "report"}):
        res = write_report([Path(p) for p in inputs], Path(out), reference=reference)
        t.log_artifact(out, artifact_path="report")
    return res
