"""Candidate pools: per (user, target) example, the retriever's top-N items from the history.

One row per example: ``user_id, target, position, candidates, scores, mode, injected``.
``position`` is the index of the target in ``ds.sequence(user_id)``; the example's history
is ``ds.sequence(user_id)[:position]`` (valid: the train items; test: train + valid), and
the pool is built from that history only and never contains one of its items.

Modes: ``retrieve`` = the top N by inner product (the target may be missing: the end-to-end
protocol); ``inject`` = the top N-1 plus the target when it is missing: it replaces the
lowest-scored candidate and keeps its own retriever score (the paper's pool protocol).
``injected`` says whether the target had to be added, so ``pool_recall`` of inject pools is
the recall of the matching retrieve pools.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from recgen.errors import ConfigError, IndexMismatchError, RetrievalError, UnknownUserError
from recgen.io import atomic_dir, atomic_write_json
from recgen.retrieval.index import IndexKind, ItemIndex
from recgen.retrieval.sasrec import SASRec, SASRecConfig

logger = logging.getLogger(__name__)

PoolMode = Literal["inject", "retrieve"]
SPLITS = ("train", "valid", "test")

POOL_SCHEMA = {
    "user_id": pl.String,
    "target": pl.String,
    "position": pl.Int64,
    "candidates": pl.List(pl.String),
    "scores": pl.List(pl.Float32),
    "mode": pl.String,
    "injected": pl.Boolean,
}


class Retriever(Protocol):
    """What pools need from a retriever (``recgen.retrieval.SASRec`` is one)."""

    item_ids: list[str]

    def encode(self, histories: Sequence[Sequence[str]]) -> np.ndarray: ...

    def item_vectors(self) -> np.ndarray: ...


class PoolDataset(Protocol):
    name: str
    user_ids: list[str]
    item_ids: list[str]
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame

    def sequence(self, user_id: str) -> list[str]: ...


@dataclass(frozen=True)
class PoolConfig:
    """How candidate pools are built."""

    size: int = field(default=20, metadata={"help": "N: candidates per pool"})
    mode: PoolMode = field(
        default="inject",
        metadata={"help": "inject: top N-1 + the target when missing; retrieve: the plain top N"},
    )
    train_examples_per_user: int = field(
        default=5,
        metadata={
            "help": "how many of each user's latest train positions become training examples "
            "(0 = every train position with a non-empty history)"
        },
    )
    seed: int = field(
        default=0, metadata={"help": "recorded for provenance; building is deterministic"}
    )
    batch_size: int = field(default=1024, metadata={"help": "histories encoded per batch"})

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise ConfigError(f"PoolConfig.size must be a positive integer, got {self.size!r}")
        if self.mode not in ("inject", "retrieve"):
            raise ConfigError(f"PoolConfig.mode must be 'inject' or 'retrieve', got {self.mode!r}")
        if self.mode == "inject" and self.size < 2:
            raise ConfigError(
                "PoolConfig.size must be >= 2 in inject mode (N-1 retrieved + target)"
            )
        if not isinstance(self.train_examples_per_user, int) or self.train_examples_per_user < 0:
            raise ConfigError(
                "PoolConfig.train_examples_per_user must be an integer >= 0, got "
                f"{self.train_examples_per_user!r}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"PoolConfig.batch_size must be >= 1, got {self.batch_size!r}")


def examples(
    ds: PoolDataset, split: str, train_examples_per_user: int = 5
) -> list[tuple[str, int]]:
    """(user_id, position) pairs of a split, in user order then position order.

    train: each user's latest ``train_examples_per_user`` train positions (0 = all) that have
    a non-empty history; valid / test: the one held-out position per user.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    counts = {s: dict(getattr(ds, s).group_by("user_id").len().iter_rows()) for s in SPLITS}
    out: list[tuple[str, int]] = []
    for u in ds.user_ids:
        n_train = counts["train"].get(u, 0)
        if split == "train":
            first = 1 if train_examples_per_user == 0 else max(1, n_train - train_examples_per_user)
            out.extend((u, p) for p in range(first, n_train))
        elif u in counts[split]:
            pos = n_train + (counts["valid"].get(u, 0) if split == "test" else 0)
            out.append((u, pos))
    return out


def build_pools(
    ds: PoolDataset,
    retriever: Retriever,
    index: ItemIndex,
    cfg: PoolConfig | None = None,
    splits: Iterable[str] = SPLITS,
) -> dict[str, pl.DataFrame]:
    """Build the pools of each split (see the module docstring for the row layout)."""
    cfg = cfg or PoolConfig()
    if list(retriever.item_ids) != list(index.item_ids):
        raise IndexMismatchError(
            f"retriever ({len(retriever.item_ids)} items) and index "
            f"({index.size} items) do not share the same item id list"
        )
    if list(ds.item_ids) != list(index.item_ids):
        raise IndexMismatchError(
            f"dataset {ds.name!r} ({len(ds.item_ids)} items) and index "
            f"({index.size} items) do not share the same item id list"
        )
    vectors = retriever.item_vectors()
    out = {}
    for split in splits:
        rows = examples(ds, split, cfg.train_examples_per_user)
        out[split] = _pools_for(ds, retriever, index, vectors, rows, cfg, split)
        logger.info(
            "%s pools: %d rows, N=%d, mode=%s, retrieve recall@%d %.4f",
            split,
            out[split].height,
            cfg.size,
            cfg.mode,
            cfg.size,
            pool_recall(out[split]),
        )
    return out


def _pools_for(
    ds: PoolDataset,
    retriever: Retriever,
    index: ItemIndex,
    vectors: np.ndarray,
    rows: list[tuple[str, int]],
    cfg: PoolConfig,
    split: str,
) -> pl.DataFrame:
    cols: dict[str, list] = {k: [] for k in POOL_SCHEMA}
    seq_cache: dict[str, list[str]] = {}
    bar = tqdm(total=len(rows), desc=f"pools[{split}]", unit="ex", leave=False)
    for b in range(0, len(rows), cfg.batch_size):
        batch = rows[b : b + cfg.batch_size]
        histories, targets = [], []
        for u, pos in batch:
            if u not in seq_cache:
                try:
                    seq_cache[u] = ds.sequence(u)
                except KeyError as e:
                    raise UnknownUserError(f"user {u!r} has no sequence in {ds.name!r}") from e
            seq = seq_cache[u]
            if pos <= 0:
                raise RetrievalError(
                    f"user {u!r} has an empty history before the {split} "
                    f"target (position {pos}): cannot retrieve a pool"
                )
            histories.append(seq[:pos])
            targets.append(seq[pos])
        queries = retriever.encode(histories)
        exclude = [set(h) for h in histories]
        ids, scores = index.search(queries, cfg.size, exclude)
        for r, (u, pos) in enumerate(batch):
            cand, sc = ids[r], scores[r]
            injected = cfg.mode == "inject" and targets[r] not in cand
            if injected:  # replace the lowest-scored candidate, keep the target's own score
                t_score = float(vectors[index.item_index[targets[r]]] @ queries[r])
                cand, sc = cand[:-1] + [targets[r]], sc[:-1] + [t_score]
                order = sorted(range(len(cand)), key=lambda j: -sc[j])
                cand, sc = [cand[j] for j in order], [sc[j] for j in order]
            cols["user_id"].append(u)
            cols["target"].append(targets[r])
            cols["position"].append(pos)
            cols["candidates"].append(cand)
            cols["scores"].append(sc)
            cols["mode"].append(cfg.mode)
            cols["injected"].append(injected)
        bar.update(len(batch))
    bar.close()
    return pl.DataFrame(cols, schema=POOL_SCHEMA)


def pool_recall(pools: pl.DataFrame) -> float:
    """Fraction of rows whose target the retriever put in the pool (retrieve-mode recall@N).

    For inject pools, rows whose target had to be injected count as misses, so the value is
    the recall of the equivalent retrieve-mode pools (the target is always present there).
    """
    if pools.height == 0:
        return 0.0
    hit = pools.select(
        pl.col("candidates").list.contains(pl.col("target")) & ~pl.col("injected")
        if "injected" in pools.columns
        else pl.col("candidates").list.contains(pl.col("target"))
    ).to_series()
    return float(hit.mean())


@dataclass(frozen=True)
class PoolBuildJob:
    """``recgen pools build``: load a dataset, train or load a retriever, write the pools."""

    out: str = field(metadata={"help": "output folder: {train,valid,test}.parquet + retriever/"})
    dataset: str = field(default="ml-100k", metadata={"help": "dataset name or path"})
    dataset_format: str | None = field(default=None, metadata={"help": "file format (default: detected)"})
    pools: PoolConfig = field(default_factory=PoolConfig)
    retriever: str | None = field(
        default=None,
        metadata={"help": "folder of a saved SASRec retriever to load (default: train one)"},
    )
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    index_kind: IndexKind = field(default="auto", metadata={"help": "FAISS index kind"})
    splits: tuple[str, ...] = field(default=SPLITS, metadata={"help": "splits to build"})

    def __post_init__(self) -> None:
        if not self.out:
            raise ConfigError("PoolBuildJob.out must name an output folder")
        bad = [s for s in self.splits if s not in SPLITS]
        if bad or not self.splits:
            raise ConfigError(
                f"PoolBuildJob.splits must be a non-empty subset of {SPLITS}, got {self.splits!r}"
            )


def build_pool_files(job: PoolBuildJob) -> dict:
    """Run a :class:`PoolBuildJob`; returns a summary (also written to ``out/summary.json``)."""
    from recgen.data import load_dataset

    ds = load_dataset(job.dataset, format=job.dataset_format)
    if job.retriever:
        retriever = SASRec.load(job.retriever)
        logger.info("loaded retriever from %s", job.retriever)
    else:
        retriever = SASRec.fit(ds, job.sasrec)
    index = ItemIndex(retriever.item_vectors(), retriever.item_ids, kind=job.index_kind)
    pools = build_pools(ds, retriever, index, job.pools, splits=job.splits)
    summary = {
        "dataset": ds.name,
        "size": job.pools.size,
        "mode": job.pools.mode,
        "rows": {s: df.height for s, df in pools.items()},
        "pool_recall": {s: pool_recall(df) for s, df in pools.items()},
        "retriever": {
            "config": asdict(retriever.cfg),
            "report": asdict(retriever.report),
            "loaded_from": job.retriever,
        },
        "index_kind": index.kind,
    }
    with atomic_dir(job.out) as tmp:
        for s, df in pools.items():
            df.write_parquet(tmp / f"{s}.parquet")
        retriever.save(tmp / "retriever")
        index.save(tmp / "retriever" / "index")
        atomic_write_json(tmp / "summary.json", summary)
    logger.info("wrote pools to %s", job.out)
    return summary
