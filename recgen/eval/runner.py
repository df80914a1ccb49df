"""Evaluate several methods on the same users, pools and prompts.

A method is named by a spec:
- ``retriever`` / ``popularity``: the classic baselines, ordering the pool;
- ``zero-shot``: the untrained base model (``model``), constrained greedy decoding;
- ``NAME=FOLDER``: a trained model folder (a run's ``final/``), e.g. ``fgrpo=runs/fgrpo/final``;
  a ``recgen.json`` in the folder saying ``"method": "decoupled"`` makes its slate fixed to the
  retriever's top m, as in training;
- ``NAME=URI_OR_BUNDLE``: a registered or logged model (``models:/recgen-ml-100k@champion``,
  ``runs:/…``) or a recommender bundle folder: its ``policy/`` folder is evaluated
  (:func:`recgen.registry.resolve_policy_folder`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recgen.errors import ConfigError
from recgen.eval.protocols import (
    EvalResult,
    llm_outputs,
    popularity_outputs,
    retriever_outputs,
    score,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalSetup:
    protocol: str = "pool"  # pool | end-to-end
    split: str = "test"
    users: int = 300
    seed: int = 0
    pool_size: int = 20
    slate_size: int = 10
    rank_size: int = 5
    history_len: int = 10
    max_title_tokens: int = 16
    dtype: str = "bf16"
    batch_size: int = 8


def load_named_policy(source: str, dtype: str = "bf16"):
    """``tiny`` (the random test model) or anything :func:`recgen.policy.models.load_policy` takes;
    on the GPU when one is present (decoding is the cost of an evaluation)."""
    import torch

    from recgen.policy.models import build_tiny_policy, load_policy

    policy = build_tiny_policy() if source == "tiny" else load_policy(source, dtype)
    if torch.cuda.is_available():
        policy.model.to("cuda")
    return policy


def _check_trained_like_evaluated(spec: str, meta: dict, pcfg, pools) -> None:
    """A trained model must be scored on the prompt format (and ideally pools) it was trained on."""
    trained = meta.get("prompt")
    if trained:
        diff = {k: (v, getattr(pcfg, k)) for k, v in trained.items() if hasattr(pcfg, k) and getattr(pcfg, k) != v}
        if diff:
            raise ConfigError(f"method {spec!r} was trained with other prompt settings than this evaluation "
                              f"uses (field: (trained, evaluated)): {diff}")
    if meta.get("pools") and Path(meta["pools"]) != Path(pools.folder):
        logger.warning("method %r was trained on pools %s, evaluated on %s", spec, meta["pools"], pools.folder)


def parse_method(spec: str) -> tuple[str, str | None]:
    name, sep, folder = spec.partition("=")
    return (name, folder) if sep else (name, None)


def model_spec(source: str) -> str:
    """``NAME=SOURCE`` for a ``--model`` value: kept if it names itself, else named after the
    alias (``models:/m@champion`` → ``champion``), version (``m-v3``), run or folder."""
    import re

    name, sep, rest = source.partition("=")
    if sep and not re.match(r"^[a-z-]+:/", source):
        return source
    m = re.fullmatch(r"models:/([^/@]+)(?:@(.+)|/(.+))", source)
    if m:
        return f"{m.group(2) or f'{m.group(1)}-v{m.group(3)}'}={source}"
    m = re.fullmatch(r"runs:/([^/]+)(/.*)?", source)
    if m:
        return f"run-{m.group(1)[:8]}={source}"
    path = Path(source).resolve()
    label = path.parent.name if path.name in ("final", "policy", "bundle") else path.name
    return f"{label}={source}"


def resolve_specs(specs: Sequence[str]) -> list[str]:
    """Specs with every model URI or bundle folder replaced by its local policy folder (model
    folders and Hugging Face ids stay as they are)."""
    from recgen.registry import BUNDLE_MANIFEST, is_model_uri, resolve_policy_folder

    out = []
    for spec in specs:
        name, source = parse_method(spec)
        if source is not None and (is_model_uri(source) or (Path(source) / BUNDLE_MANIFEST).is_file()):
            spec = f"{name}={resolve_policy_folder(source)}"
        out.append(spec)
    return out


def trained_folder(specs: Sequence[str]) -> Path | None:
    """The folder of the first trained model (one holding recgen.json) among resolved ``specs``."""
    for spec in specs:
        _, folder = parse_method(spec)
        if folder and (Path(folder) / "recgen.json").is_file():
            return Path(folder)
    return None


def trained_meta(specs: Sequence[str]) -> dict:
    """The ``recgen.json`` of the first trained model among resolved ``specs`` ({} if none)."""
    folder = trained_folder(specs)
    return json.loads((folder / "recgen.json").read_text()) if folder else {}


def bundle_pools(ds, dataset: str, bundle: Path, size: int):
    """Pools built with a recommender bundle's own retriever (the one its model was trained
    with), cached under the recgen cache by the retriever's content."""
    import hashlib

    from recgen.pipeline import cache_root, ensure_pools
    from recgen.retrieval.pools import PoolBuildJob, PoolConfig, build_pool_files

    digest = hashlib.sha256()
    for f in sorted(p for p in (bundle / "retriever").rglob("*") if p.is_file()):
        digest.update(f.relative_to(bundle).as_posix().encode())
        digest.update(f.read_bytes())
    folder = cache_root() / "pools" / f"{Path(str(ds.name)).name}-N{size}-bundle-{digest.hexdigest()[:12]}"
    inject, retrieve = folder / "inject", folder / "retrieve"
    if not (inject / "summary.json").exists():
        logger.info("building pools with the retriever of %s in %s", bundle, folder)
        build_pool_files(PoolBuildJob(out=str(inject), dataset=dataset, retriever=str(bundle / "retriever"),
                                      pools=PoolConfig(size=size, mode="inject", train_examples_per_user=1)))
    if not (retrieve / "summary.json").exists():
        build_pool_files(PoolBuildJob(out=str(retrieve), dataset=dataset, retriever=str(inject / "retriever"),
                                      splits=("valid", "test"), pools=PoolConfig(size=size, mode="retrieve")))
    return ensure_pools(ds, dataset=dataset, size=size, folder=folder)


def evaluate_methods(ds, pools, specs: Sequence[str], setup: EvalSetup, *, base_model: str = "smollm2-135m"
                     ) -> dict[str, EvalResult]:
    """Score every method of ``specs`` on one seeded subset of users (same prompts for all)."""
    from recgen.examples import build_examples
    from recgen.pipeline import user_subset
    from recgen.policy.grammar import SlateRankGrammar
    from recgen.policy.models import load_default_tokenizer
    from recgen.policy.prompt import PromptConfig

    specs = resolve_specs(specs)
    frames = pools.inject if setup.protocol == "pool" else pools.retrieve
    if setup.split not in frames:
        raise ConfigError(f"split {setup.split!r} has no {setup.protocol} pools: expected one of {sorted(frames)}")
    rows = user_subset(frames[setup.split], setup.users, seed=setup.seed)
    pcfg = PromptConfig(history_len=setup.history_len, max_title_tokens=setup.max_title_tokens,
                        n_candidates=setup.pool_size, slate_size=setup.slate_size, rank_size=setup.rank_size,
                        item_noun="movie" if str(ds.name).startswith("ml") else "product")
    tokenizer = load_default_tokenizer() if base_model in ("smollm2-135m", "tiny") else None
    examples = None
    results: dict[str, EvalResult] = {}
    counts = dict(ds.train.group_by("item_id").len().iter_rows())
    for spec in specs:
        name, folder = parse_method(spec)
        if name in ("retriever", "popularity"):
            if examples is None:
                tok = tokenizer or load_named_policy(base_model, setup.dtype).tokenizer
                examples = build_examples(ds, rows, tok, pcfg, seed=setup.seed)
            out = (retriever_outputs(examples, slate_size=setup.slate_size, rank_size=setup.rank_size)
                   if name == "retriever" else
                   popularity_outputs(examples, counts, slate_size=setup.slate_size, rank_size=setup.rank_size))
        else:
            if folder is None and name != "zero-shot":
                raise ConfigError(f"method {spec!r}: expected 'retriever', 'popularity', 'zero-shot' or "
                                  "NAME=FOLDER (a trained run's final/ folder)")
            source = folder or base_model
            policy = load_named_policy(source, setup.dtype)
            meta_path = Path(source) / "recgen.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            _check_trained_like_evaluated(spec, meta, pcfg, pools)
            ex = build_examples(ds, rows, policy.tokenizer, pcfg, seed=setup.seed)
            if examples is None:
                examples = ex
            grammar = SlateRankGrammar(policy.tokenizer, setup.pool_size, setup.slate_size, setup.rank_size)
            out = llm_outputs(policy, grammar, ex, method=name, slate_size=setup.slate_size,
                              batch_size=setup.batch_size, forced_slate=meta.get("method") == "decoupled")
        results[name] = score(examples, out, setup.protocol, seed=setup.seed)
        logger.info("%s: %s", name, {k: round(v["mean"], 4) for k, v in results[name].summary.items()})
    return results


@dataclass(frozen=True)
class EvalJob:
    """One ``recgen evaluate`` run: methods (+ models) scored on one dataset, written to ``out``."""

    out: str
    methods: tuple[str, ...] = ()
    models: tuple[str, ...] = ()  # URIs / bundle folders, each optionally NAME=…
    dataset: str | None = None  # default: the first trained model's dataset, else ml-100k
    pools: str | None = None  # default: the first trained model's pools folder if present
    base_model: str = "smollm2-135m"
    protocol: str = "pool"
    split: str = "test"
    users: int = 300
    seed: int = 0
    dtype: str = "bf16"
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.protocol not in ("pool", "end-to-end"):
            raise ConfigError(f"protocol must be 'pool' or 'end-to-end', got {self.protocol!r}")
        if self.split not in ("valid", "test"):
            raise ConfigError(f"split must be 'valid' or 'test', got {self.split!r}")
        if self.users < 0:
            raise ConfigError(f"users must be >= 0, got {self.users}")


def run_evaluation(job: EvalJob) -> dict:
    """Score ``job`` and write OUT/rankings.parquet, metrics.json and table.md; returns
    ``{"out", "dataset", "methods" (resolved specs), "results", "table"}``."""
    import polars as pl

    from recgen.data import load_dataset
    from recgen.eval.tables import comparison_table
    from recgen.io import atomic_write_json
    from recgen.pipeline import ensure_pools

    default = ["retriever", "popularity"] if job.models else ["retriever", "popularity", "zero-shot"]
    methods = resolve_specs([*(job.methods or default), *(model_spec(m) for m in job.models)])
    from recgen.registry import BUNDLE_MANIFEST

    model_dir = trained_folder(methods)
    meta = trained_meta(methods)
    dataset = job.dataset or meta.get("dataset") or "ml-100k"
    ds = load_dataset(dataset)
    size = meta.get("pool_size", 20)
    pools_dir = job.pools or (meta["pools"] if meta.get("pools") and Path(meta["pools"]).is_dir() else None)
    if pools_dir is None and model_dir is not None and (model_dir.parent / BUNDLE_MANIFEST).is_file():
        pools = bundle_pools(ds, dataset, model_dir.parent, size)  # a bundle: its own retriever
    else:  # the pools the model was trained on, else the default (cached) pools
        pools = ensure_pools(ds, dataset=dataset, size=size, folder=pools_dir)
    prompt = meta.get("prompt", {})
    setup = EvalSetup(protocol=job.protocol, split=job.split, users=job.users, seed=job.seed, dtype=job.dtype,
                      **{k: meta[k] for k in ("pool_size", "slate_size", "rank_size") if k in meta},
                      **{k: prompt[k] for k in ("history_len", "max_title_tokens") if k in prompt})
    results = evaluate_methods(ds, pools, methods, setup, base_model=job.base_model)
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    pl.concat([r.frame for r in results.values()]).write_parquet(out / "rankings.parquet")
    atomic_write_json(out / "metrics.json", {
        "protocol": job.protocol, "split": job.split, "users": job.users, "seed": job.seed, "dataset": dataset,
        "pools": str(pools.folder), "methods": {name: r.summary for name, r in results.items()}})
    metrics = list(next(iter(results.values())).summary)
    reference = job.reference or parse_method(methods[-1])[0]
    table = comparison_table(results, metrics, reference=reference,
                             test_metric="ndcg@5" if job.protocol == "pool" else "ndcg@10", seed=job.seed)
    (out / "table.md").write_text(table)
    return {"out": out, "dataset": dataset, "methods": methods, "results": results, "table": table}
