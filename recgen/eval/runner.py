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
            source = folder or base_model
            policy = load_named_policy(source, setup.dtype)
            meta_path = Path(source) / "recgen.json"
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            ex = build_examples(ds, rows, policy.tokenizer, pcfg, seed=setup.seed)
            if examples is None:
                examples = ex
            grammar = SlateRankGrammar(policy.tokenizer, setup.pool_size, setup.slate_size, setup.rank_size)
            out = llm_outputs(policy, grammar, ex, method=name, slate_size=setup.slate_size,
                              batch_size=setup.batch_size, forced_slate=meta.get("method") == "decoupled")
        results[name] = score(examples, out, setup.protocol, seed=setup.seed)
        logger.info("%s: %s", name, {k: round(v["mean"], 4) for k, v in results[name].summary.items()})
    return results
