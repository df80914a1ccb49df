"""Evaluate several methods on the same users, pools and prompts.

A method is named by a spec:
- ``retriever`` / ``popularity``: the classic baselines, ordering the pool;
- ``zero-shot``: the untrained base model (``model``), constrained greedy decoding;
- ``NAME=FOLDER``: a trained model folder (a run's ``final/``), e.g. ``fgrpo=runs/fgrpo/final``;
  a ``recgen.json`` in the folder saying ``"method": "decoupled"`` makes its slate fixed to the
  retriever's top m, as in training.
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
    """``tiny`` (the random test model) or anything :func:`recgen.policy.models.load_policy` takes."""
    from recgen.policy.models import build_tiny_policy, load_policy

    return build_tiny_policy() if source == "tiny" else load_policy(source, dtype)


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


def evaluate_methods(ds, pools, specs: Sequence[str], setup: EvalSetup, *, base_model: str = "smollm2-135m"
                     ) -> dict[str, EvalResult]:
    """Score every method of ``specs`` on one seeded subset of users (same prompts for all)."""
    from recgen.examples import build_examples
    from recgen.pipeline import user_subset
    from recgen.policy.grammar import SlateRankGrammar
    from recgen.policy.models import load_default_tokenizer
    from recgen.policy.prompt import PromptConfig

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
