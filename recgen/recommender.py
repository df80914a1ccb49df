"""``Recommender``: history → candidate pool → one greedy constrained rollout → a list.

For a user the steps are: the SASRec retriever encodes the history and the FAISS index
returns the top items (history excluded), the first N of which are the pool; the prompt
lists the last L history titles and the shuffled pool; the LLM writes
``<slate>…</slate><rank>…</rank>`` under the grammar, greedily (the same user always gets
the same list). The list is the ranking (``source="ranking"``), then the rest of the slate
(``"slate"``), then every other retrieved item (``"retriever"``), each remainder by retriever
score, so ``k`` may exceed the slate and even the pool, up to the catalogue minus the history.
``score`` is the retriever's inner-product score of the item for this history; the order of
the LLM's items comes from the LLM, not from the score.

Calls are thread-safe: decoding is serialised by a lock (torch already uses every core).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recgen.errors import (
    ModelNotFoundError,
    RequestError,
    RequestTypeError,
    UnknownItemError,
    UnknownUserError,
)
from recgen.serving.bundle import BundleConfig, read_bundle, write_tables

logger = logging.getLogger(__name__)

SOURCES = ("ranking", "slate", "retriever")


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    title: str
    rank: int  # 1-based position in the returned list
    score: float  # retriever score for this history (higher = closer)
    source: str  # "ranking" | "slate" | "retriever"


class Recommender:
    """A trained (or zero-shot) policy with its retriever, index, item table and known users.

    Build one with :meth:`build` / :meth:`from_training_run`, keep it with :meth:`save`,
    get it back with :meth:`load` or :meth:`from_mlflow`.
    """

    def __init__(self, policy: Any, retriever: Any, index: Any, titles: dict[str, str],
                 histories: dict[str, list[str]], config: BundleConfig) -> None:
        from recgen.policy.grammar import SlateRankGrammar
        from recgen.policy.prompt import PromptConfig

        if list(retriever.item_ids) != list(index.item_ids):
            from recgen.errors import IndexMismatchError

            raise IndexMismatchError("the retriever and the index hold different item ids")
        missing = [i for i in index.item_ids if i not in titles]
        if missing:
            raise UnknownItemError(f"{len(missing)} indexed items have no title, e.g. {missing[0]!r}")
        import torch

        if torch.cuda.is_available() and policy.device.type == "cpu":
            policy.model.to("cuda")  # the retriever and the index stay on the CPU
        self.policy, self.retriever, self.index = policy, retriever, index
        self.titles, self.histories, self.config = titles, histories, config
        self.grammar = SlateRankGrammar(policy.tokenizer, config.pool_size, config.slate_size, config.rank_size)
        self.prompt_config = PromptConfig(
            history_len=config.history_len, max_title_tokens=config.max_title_tokens,
            n_candidates=config.pool_size, slate_size=config.slate_size, rank_size=config.rank_size,
            item_noun=config.item_noun)
        self._lock = threading.Lock()
        self.last_timings: dict[str, float] = {}  # seconds per stage of the last call
        # serving decode path: score only allowed tokens, jump over grammar-forced tokens
        # (False: the step-by-step path evaluation uses; for benchmarks/recommend_latency.py)
        self.fast_decode = True
        # decoded (slate, ranking) per (user, history, exclude_seen): a repeated request skips
        # the LLM (the output is deterministic); 0 turns the cache off
        self.cache_size = 4096
        self._decoded: OrderedDict[tuple, tuple[list[str], list[str]]] = OrderedDict()

    # ------------------------------------------------------------------ construction
    @classmethod
    def build(cls, model: str = "smollm2-135m", dataset: str = "ml-100k", *, dataset_format: str | None = None,
              retriever_dir: str | os.PathLike[str] | None = None, config: BundleConfig | None = None,
              threads: int | None = None) -> Recommender:
        """A recommender from a policy (a model name/folder, e.g. a run's ``final/``, or
        ``"tiny"`` for tests) and a dataset. Settings come from ``model/recgen.json`` when the
        policy was trained by recgen; the retriever from the pools it was trained on, else the
        default pools of ``dataset`` (built and cached on first use)."""
        import json

        from recgen.data import load_dataset
        from recgen.eval.runner import load_named_policy
        from recgen.examples import display_titles
        from recgen.retrieval.index import ItemIndex
        from recgen.retrieval.sasrec import SASRec

        meta_path = Path(model) / "recgen.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        ds = load_dataset(dataset, format=dataset_format)
        if config is None:
            prompt = meta.get("prompt", {})
            config = BundleConfig(
                dataset=str(dataset), method=meta.get("method", "zero-shot"),
                pool_size=meta.get("pool_size", 20), slate_size=meta.get("slate_size", 10),
                rank_size=meta.get("rank_size", 5), history_len=prompt.get("history_len", 10),
                max_title_tokens=prompt.get("max_title_tokens", 16),
                item_noun=prompt.get("item_noun", "movie" if str(ds.name).startswith("ml") else "product"),
                dtype="fp32" if str(model) == "tiny" else "bf16")
        if retriever_dir is None:
            trained_on = Path(meta["pools"]) / "inject" / "retriever" if meta.get("pools") else None
            if trained_on is not None and trained_on.is_dir():
                retriever_dir = trained_on
            else:
                from recgen.pipeline import ensure_pools

                if trained_on is not None:
                    logger.warning("the retriever %s that %s was trained with is gone: using the default pools "
                                   "of %s instead", trained_on, model, dataset)
                retriever_dir = ensure_pools(ds, dataset=str(dataset), size=config.pool_size,
                                             dataset_format=dataset_format).retriever_dir
        retriever = SASRec.load(retriever_dir)
        index = ItemIndex.load(Path(retriever_dir) / "index")
        if threads:
            from recgen.runtime import configure

            configure(threads)
        policy = load_named_policy(str(model), config.dtype)
        histories = {u: ds.sequence(u) for u in ds.user_ids}
        return cls(policy, retriever, index, display_titles(ds), histories, config)

    @classmethod
    def from_training_run(cls, run_dir: str | os.PathLike[str], **kwargs: Any) -> Recommender:
        """The model a ``recgen train --out-dir RUN_DIR`` run exported (``RUN_DIR/final``)."""
        import json

        run = Path(run_dir)
        if not (run / "final").is_dir() or not (run / "config.json").is_file():
            raise ModelNotFoundError(f"{run} is not a finished recgen training run: expected config.json and final/")
        cfg = json.loads((run / "config.json").read_text())
        return cls.build(str(run / "final"), cfg.get("dataset", "ml-100k"),
                         dataset_format=cfg.get("dataset_format"), **kwargs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write a self-contained folder (see :mod:`recgen.serving.bundle`), atomically."""
        import json

        from recgen.io import atomic_dir

        path = Path(path)
        with self._lock, atomic_dir(path) as tmp:
            self.policy.model.save_pretrained(tmp / "policy", safe_serialization=True)
            self.policy.tokenizer.save_pretrained(tmp / "policy")
            (tmp / "policy" / "recgen.json").write_text(json.dumps({
                "method": self.config.method, "dataset": self.config.dataset, "pool_size": self.config.pool_size,
                "slate_size": self.config.slate_size, "rank_size": self.config.rank_size,
                "prompt": self.prompt_config.__dict__}, indent=2))
            self.retriever.save(tmp / "retriever")
            self.index.save(tmp / "retriever" / "index")
            write_tables(tmp, titles=self.titles, histories=self.histories, config=self.config)
        logger.info("saved recommender to %s", path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, threads: int | None = None) -> Recommender:
        """Load a folder written by :meth:`save` (offline: nothing outside the folder is read)."""
        from recgen.policy.models import load_policy
        from recgen.retrieval.index import ItemIndex
        from recgen.retrieval.sasrec import SASRec
        from recgen.runtime import configure

        parts = read_bundle(path)
        configure(threads)
        policy = load_policy(str(parts.root / "policy"), parts.config.dtype)
        return cls(policy, SASRec.load(parts.root / "retriever"), ItemIndex.load(parts.root / "retriever" / "index"),
                   parts.titles, parts.histories, parts.config)

    @classmethod
    def from_mlflow(cls, uri: str, **kwargs: Any) -> Recommender:
        """Load from an MLflow model URI, e.g. ``models:/recgen-ml-100k@champion`` or ``runs:/ID/model``
        (downloaded once into the model cache; an alias is resolved to its current version)."""
        from recgen.registry import is_model_uri, resolve_model

        if not is_model_uri(uri):
            raise ModelNotFoundError(f"{uri!r} is not an MLflow model URI (models:/NAME@ALIAS, models:/NAME/VERSION, "
                                     "runs:/ID/model); use Recommender.load for a folder")
        return cls.load(resolve_model(uri), **kwargs)

    # ------------------------------------------------------------------ requests
    @property
    def num_items(self) -> int:
        return len(self.index.item_ids)

    def recommend(self, user_id: str, k: int = 10, *, exclude_seen: bool = True) -> list[Recommendation]:
        """The top ``k`` for a known user (history = everything the dataset holds for them)."""
        return self.recommend_batch([user_id], k, exclude_seen=exclude_seen)[0]

    def recommend_batch(self, user_ids: Sequence[str], k: int = 10, *, exclude_seen: bool = True,
                        batch_size: int = 8) -> list[list[Recommendation]]:
        """:meth:`recommend` for several users; prompts are decoded ``batch_size`` at a time."""
        if isinstance(user_ids, str | bytes) or not isinstance(user_ids, Sequence):
            raise RequestTypeError(f"user_ids must be a list of user ids, got {type(user_ids).__name__}")
        keys = [self._user_key(u) for u in user_ids]
        return self._serve(keys, [self.histories[u] for u in keys], k, exclude_seen, batch_size)

    def recommend_for_history(self, item_ids: Sequence[str], k: int = 10, *,
                              exclude_seen: bool = True) -> list[Recommendation]:
        """The top ``k`` for a history the model never saw (item ids, oldest first)."""
        if isinstance(item_ids, str | bytes) or not isinstance(item_ids, Sequence):
            raise RequestTypeError(f"item_ids must be a list of item ids (oldest first), got {type(item_ids).__name__}")
        if not item_ids:
            raise RequestError("the history is empty: recgen needs at least one item the user interacted with")
        history = []
        for n, item in enumerate(item_ids):
            item = self._id(item, f"item_ids[{n}]")
            if item not in self.titles:
                raise UnknownItemError(f"item_ids[{n}] = {item!r} is not in the catalogue of {self.num_items} items")
            history.append(item)
        return self._serve(["history:" + " ".join(history)], [history], k, exclude_seen, 1)[0]

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _id(value: Any, what: str) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise RequestTypeError(f"{what} must be a string id (or an int), got {type(value).__name__} {value!r}")
        return str(value)

    def _user_key(self, user_id: Any) -> str:
        key = self._id(user_id, "user_id")
        if key not in self.histories:
            raise UnknownUserError(f"user {key!r} is not known to this model ({len(self.histories)} users; "
                                   "use recommend_for_history for a new user)")
        return key

    def _check_k(self, k: Any, histories: list[list[str]], exclude_seen: bool) -> None:
        if isinstance(k, bool) or not isinstance(k, int):
            raise RequestTypeError(f"k must be an int, got {type(k).__name__} {k!r}")
        if k <= 0:
            raise RequestError(f"k must be >= 1, got {k}")
        for h in histories:
            most = self.num_items - (len(set(h)) if exclude_seen else 0)
            if k > most:
                raise RequestError(f"k = {k} is more than can be returned: {self.num_items} items minus "
                                   f"{len(set(h))} seen = {most}")

    def _serve(self, keys: list[str], histories: list[list[str]], k: Any, exclude_seen: bool,
               batch_size: int) -> list[list[Recommendation]]:
        self._check_k(k, histories, exclude_seen)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise RequestError(f"batch_size must be an int >= 1, got {batch_size!r}")
        out: list[list[Recommendation]] = []
        with self._lock:
            timings = dict.fromkeys(("pool", "prompt", "decode", "backfill"), 0.0)
            for s in range(0, len(keys), batch_size):
                out += self._serve_chunk(keys[s: s + batch_size], histories[s: s + batch_size], k,
                                         exclude_seen, timings)
            self.last_timings = timings
        return out

    def _serve_chunk(self, keys: list[str], histories: list[list[str]], k: int, exclude_seen: bool,
                     timings: dict[str, float]) -> list[list[Recommendation]]:
        from recgen.examples import example_seed
        from recgen.policy.prompt import build_prompt
        from recgen.policy.rollout import sample_groups

        cfg = self.config
        t0 = time.perf_counter()
        queries = self.retriever.encode(histories)
        most = min(self.num_items - (len(set(h)) if exclude_seen else 0) for h in histories)
        ids, scores = self.index.search(queries, min(max(cfg.pool_size, k), most),
                                        [set(h) for h in histories] if exclude_seen else None)
        t1 = time.perf_counter()
        full = [r for r in range(len(keys)) if len(ids[r]) >= cfg.pool_size]
        cache_keys = {r: (keys[r], len(histories[r]), exclude_seen, tuple(ids[r][: cfg.pool_size])) for r in full}
        decoded = {r: self._decoded[cache_keys[r]] for r in full if cache_keys[r] in self._decoded}
        for r in decoded:
            self._decoded.move_to_end(cache_keys[r])
        llm_rows = [r for r in full if r not in decoded]
        prompts = {r: build_prompt(self.policy.tokenizer, [self.titles[i] for i in histories[r]],
                                   ids[r][: cfg.pool_size], [self.titles[i] for i in ids[r][: cfg.pool_size]],
                                   self.prompt_config, seed=example_seed(cfg.seed, keys[r], len(histories[r])))
                   for r in llm_rows}
        t2 = time.perf_counter()
        if llm_rows:
            forced = ([sorted(prompts[r].order.index(i) + 1 for i in ids[r][: cfg.slate_size]) for r in llm_rows]
                      if cfg.method == "decoupled" else None)
            rb = sample_groups(self.policy, [prompts[r].input_ids for r in llm_rows], self.grammar, group_size=1,
                               greedy=True, logprobs=not self.fast_decode, forced_slates=forced,
                               max_rows=len(llm_rows))
            for r, parsed in zip(llm_rows, rb.parsed, strict=True):
                decoded[r] = (prompts[r].to_item_ids(parsed.slate), prompts[r].to_item_ids(parsed.ranking))
                if self.cache_size > 0:
                    self._decoded[cache_keys[r]] = decoded[r]
            while len(self._decoded) > self.cache_size:
                self._decoded.popitem(last=False)
        t3 = time.perf_counter()
        lists = [self._assemble(ids[r], scores[r], *decoded.get(r, ([], [])), k) for r in range(len(keys))]
        t4 = time.perf_counter()
        for name, a, b in (("pool", t0, t1), ("prompt", t1, t2), ("decode", t2, t3), ("backfill", t3, t4)):
            timings[name] += b - a
        return lists

    def _assemble(self, retrieved: list[str], scores: list[float], slate: list[str], ranking: list[str],
                  k: int) -> list[Recommendation]:
        """Ranking, then the rest of the slate, then the rest of the retrieved list (by score)."""
        score = dict(zip(retrieved, scores, strict=True))
        in_ranking = set(ranking)
        rest_slate = sorted((i for i in slate if i not in in_ranking), key=lambda i: -score[i])
        taken = in_ranking | set(rest_slate)
        order = ([(i, "ranking") for i in ranking] + [(i, "slate") for i in rest_slate]
                 + [(i, "retriever") for i in retrieved if i not in taken])
        return [Recommendation(i, self.titles[i], n, float(score[i]), src)
                for n, (i, src) in enumerate(order[:k], start=1)]
