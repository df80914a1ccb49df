"""One training run end to end: data → pools → policy → SFT or RL → final model → evaluation.

``main(cfg)`` is what ``recgen train`` and the MLflow ``train`` entry point call.
Outputs under ``cfg.out_dir``: ``config.json``, ``metrics.jsonl`` (per step),
``checkpoints/`` (atomic, for ``--resume``), ``final/`` (a self-contained model folder:
LoRA merged into the weights, tokenizer, ``recgen.json``) and ``eval/`` (pool-protocol
metrics on a seeded subset of validation users).

With a tracker (``recgen.tracking.MlflowTracker``) the job is one run named
``METHOD-DATASET-PRESET`` (nested under the caller's active run, if any), tagged with method,
dataset, preset and model, holding the config (params and ``config.json``), per-step
metrics, a sample of training prompts and of validation outputs (``samples/``), the final
validation metrics (``valid_ndcg_at_5`` …) and the ``final/`` model folder.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recgen import runtime
from recgen.errors import ConfigError
from recgen.io import atomic_dir, atomic_write_json
from recgen.tracking import NullTracker, Tracker, dataset_label, run_name
from recgen.train.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    out_dir: Path
    final_dir: Path
    logs: list[dict[str, Any]]
    eval_metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def prompt_config(cfg: TrainConfig, ds=None):
    from recgen.policy.prompt import PromptConfig

    noun = "movie" if ds is None or str(ds.name).startswith("ml") else "product"
    return PromptConfig(history_len=cfg.history_len, max_title_tokens=cfg.max_title_tokens,
                        n_candidates=cfg.pool_size, slate_size=cfg.slate_size, rank_size=cfg.rank_size,
                        item_noun=noun)


def load_training_policy(cfg: TrainConfig):
    """The policy to train: the tiny test model, ``init_from`` (e.g. an SFT result) or ``model``."""
    from recgen.policy.models import LoraConfig, build_tiny_policy, load_policy

    lora = LoraConfig(rank=cfg.lora_rank, alpha=float(cfg.lora_alpha)) if cfg.lora else None
    source = cfg.init_from or cfg.model
    if source == "tiny":
        policy = build_tiny_policy(seed=cfg.seed, dtype=cfg.dtype, lora=lora)
    else:
        policy = load_policy(source, cfg.dtype, lora=lora, threads=cfg.threads or None)
    import torch

    if torch.cuda.is_available():
        policy.model.to("cuda")
    logger.info("policy %s: %d trainable of %d parameters", source,
                policy.num_parameters(trainable_only=True), policy.num_parameters())
    return policy


def export_policy(policy, folder: Path, meta: dict[str, Any]) -> Path:
    """Write a self-contained model folder (LoRA merged), atomically."""
    model = policy.model
    if policy.is_lora:
        model = model.merge_and_unload()
        policy.model = model
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        policy.tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "recgen.json", meta)
    return folder


SAMPLE_SIZE = 3  # prompts / outputs logged as samples


def main(cfg: TrainConfig, *, resume: bool = False, tracker: Tracker | None = None) -> TrainResult:
    """Run one training job as configured; see the module docstring for the outputs."""
    tracker = tracker or NullTracker()
    tags = {"method": cfg.method, "dataset": dataset_label(cfg.dataset), "preset": cfg.preset,
            "model": cfg.init_from or cfg.model, "out_dir": str(Path(cfg.out_dir).resolve()), "resume": resume}
    with tracker.start_run(run_name(cfg.method, cfg.dataset, cfg.preset), tags=tags):
        result = _main(cfg, resume, tracker)
        tracker.log_metrics({"train_seconds": result.seconds})
        for name in ("metrics.jsonl", "result.json"):
            if (result.out_dir / name).exists():
                tracker.log_artifact(result.out_dir / name)
        if (result.out_dir / "eval").is_dir():
            tracker.log_artifact(result.out_dir / "eval", artifact_path="eval")
        tracker.log_artifact(result.final_dir, artifact_path="final")
    return result


def _main(cfg: TrainConfig, resume: bool, tracker: Tracker) -> TrainResult:
    from recgen.data import load_dataset
    from recgen.examples import build_examples
    from recgen.pipeline import ensure_pools
    from recgen.policy.grammar import SlateRankGrammar
    from recgen.retrieval.sasrec import SASRecConfig

    start = time.perf_counter()
    ckpts = Path(cfg.out_dir) / "checkpoints"
    if not resume and ckpts.is_dir() and any(ckpts.iterdir()):
        raise ConfigError(f"{ckpts} already holds checkpoints of an earlier run: pass --resume to continue it, "
                          "or choose another --out-dir")
    runtime.configure(cfg.threads or None)
    runtime.seed_everything(cfg.seed)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", cfg.to_dict())
    tracker.log_params(cfg.to_dict())
    tracker.log_artifact(out / "config.json")

    ds = load_dataset(cfg.dataset, format=cfg.dataset_format)
    pools = ensure_pools(ds, dataset=cfg.dataset, dataset_format=cfg.dataset_format, size=cfg.pool_size,
                         train_examples_per_user=cfg.train_examples_per_user,
                         sasrec=SASRecConfig(epochs=cfg.retriever_epochs))  # one retriever for every seed
    policy = load_training_policy(cfg)
    grammar = SlateRankGrammar(policy.tokenizer, cfg.pool_size, cfg.slate_size, cfg.rank_size)
    pcfg = prompt_config(cfg, ds)
    examples = build_examples(ds, pools.inject["train"], policy.tokenizer, pcfg, seed=cfg.seed, desc="train prompts")
    logger.info("%d training examples; method %s; %d steps", len(examples), cfg.method, cfg.steps)
    tracker.log_dict(prompt_samples(examples[:SAMPLE_SIZE], cfg), "samples/train_prompts.json")

    if cfg.method == "sft":
        from recgen.train.sft import train_sft

        logs = train_sft(policy, examples, cfg, out, resume=resume)
        with (out / "metrics.jsonl").open("w") as fh:
            for i, h in enumerate(logs):
                fh.write(json.dumps(h) + "\n")
                tracker.log_metrics({k: v for k, v in h.items() if k != "step"}, step=int(h.get("step", i + 1)))
    else:
        from recgen.train.rl import train_rl

        logs = train_rl(policy, grammar, examples, cfg, out, resume=resume, tracker=tracker)

    final = export_policy(policy, out / "final", {
        "method": cfg.method, "base_model": cfg.model, "init_from": cfg.init_from,
        "dataset": cfg.dataset, "pool_size": cfg.pool_size, "slate_size": cfg.slate_size,
        "rank_size": cfg.rank_size, "pools": str(pools.folder), "prompt": pcfg.__dict__,
    })
    result = TrainResult(out, final, logs, seconds=time.perf_counter() - start)
    if cfg.eval_users:
        result.eval_metrics = evaluate_valid(policy, grammar, ds, pools, pcfg, cfg, out / "eval")
        tracker.log_metrics({f"valid_{k}": v["mean"] for k, v in result.eval_metrics.items()})
        tracker.log_dict(json.loads((out / "eval" / "samples.json").read_text()), "samples/valid_outputs.json")
    atomic_write_json(out / "result.json", {"seconds": result.seconds, "eval": result.eval_metrics,
                                            "steps": cfg.steps, "steps_this_session": len(logs),
                                            "final": str(final)})
    logger.info("done in %.0f s: %s", result.seconds, out)
    return result


def evaluate_valid(policy, grammar, ds, pools, pcfg, cfg: TrainConfig, out: Path) -> dict[str, Any]:
    """Pool-protocol metrics of the trained policy on a seeded subset of validation users."""
    from recgen.eval.protocols import llm_outputs, score
    from recgen.examples import build_examples, format_output
    from recgen.pipeline import user_subset

    rows = user_subset(pools.inject["valid"], cfg.eval_users, seed=cfg.seed)
    examples = build_examples(ds, rows, policy.tokenizer, pcfg, seed=cfg.seed, desc="valid prompts")
    outputs = llm_outputs(policy, grammar, examples, method=cfg.method, slate_size=cfg.slate_size,
                          forced_slate=cfg.method == "decoupled")
    res = score(examples, outputs, "pool", seed=cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    res.frame.write_parquet(out / "rankings.parquet")
    atomic_write_json(out / "metrics.json", res.summary)
    atomic_write_json(out / "samples.json", [
        {**s, "output": format_output(ex.positions_of(slate), ex.positions_of(ranking)),
         "slate": list(slate), "ranking": list(ranking)}
        for s, ex, slate, ranking in zip(prompt_samples(examples[:SAMPLE_SIZE], cfg), examples,
                                         outputs.slates, outputs.rankings, strict=False)])
    logger.info("valid (pool protocol, %d users): %s", len(examples),
                {k: round(v["mean"], 4) for k, v in res.summary.items()})
    return res.summary


def prompt_samples(examples, cfg: TrainConfig) -> list[dict[str, Any]]:
    """A few prompts with their target and the SFT target output, for the run's artifacts."""
    from recgen.examples import format_output, sft_target_positions

    return [{"user_id": ex.user_id, "target": ex.target, "prompt": ex.prompt_text,
             "sft_target": format_output(*sft_target_positions(ex, cfg.slate_size, cfg.rank_size))}
            for ex in examples]
