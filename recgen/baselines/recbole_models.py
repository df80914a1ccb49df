"""Train RecBole models on recgen's own leave-one-out split and rank the full catalogue.

How recgen's split reaches RecBole
----------------------------------
recgen's ``train``/``valid``/``test`` frames are written as RecBole *benchmark* atomic
files ``<name>.train.inter``, ``<name>.valid.inter``, ``<name>.test.inter`` and read with
``benchmark_filename: [train, valid, test]``. In that mode RecBole does no filtering and
no splitting: split ``i`` is exactly the rows of file ``i`` (``Dataset.build`` slices the
concatenated frame by the per-file row counts).

Test-time history of sequential models (measured in recbole 1.2.1 source)
-------------------------------------------------------------------------
``SequentialDataset`` only builds prefix sequences (``data_augmentation``) when
``benchmark_filename`` is *unset*; with benchmark files ``_change_feat_format`` returns
early and the ``item_id_list`` field is read verbatim from the files
(``_benchmark_presets`` only derives ``item_length``). A plain ``user_id item_id``
benchmark file therefore does not work for a sequential model (measured: ``create_dataset``
raises ``AttributeError: 'SequentialDataset' object has no attribute
'item_id_list_field'``), and whatever history the files hold is exactly the history the
model sees at test time. So, for sequential models, this module writes the sequences
itself:

- train: one row per prefix of the user's train sequence (``<i1> -> i2``,
  ``<i1 i2> -> i3`` ...), the same rows RecBole's own augmentation would make;
- valid: history = all train items, target = the valid item;
- test: history = train items **+ the valid item**, target = the test item;

each history cut to its last ``max_seq_len`` items (``MAX_ITEM_LIST_LENGTH``), and
``alias_of_item_id: [item_id_list]`` so that list and target share one id map.
General models (BPR ...) get plain ``user_id item_id`` rows; at test time RecBole's
full-sort loader treats train + valid items as the user's history.

Ranking
-------
Training uses RecBole's ``Trainer`` with early stopping on RecBole's valid metric
(``valid_metric``, NDCG@10 by default; note RecBole masks seen items for general models
but not for sequential ones during this validation). The best checkpoint is reloaded,
then every test user's scores over the full catalogue are computed with
``model.full_sort_predict``; the padding id and the user's seen items (recgen's
train + valid items for that user) are set to ``-inf`` here, independently of RecBole,
and the top ``top_n`` raw item ids are returned, for recgen's own metrics.
"Full catalogue" = every item that occurs in any of the three splits (RecBole cannot
know items without interactions).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import polars as pl

from recgen.baselines.popularity import id_sort_key
from recgen.baselines.recbole_compat import recbole_compat
from recgen.errors import ConfigError, DataError, MissingColumnError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")
_SUBMODULES = {"general": "general_recommender", "sequential": "sequential_recommender"}


class SplitFrames(Protocol):
    """Anything with recgen's split frames (``recgen.data.Dataset`` qualifies)."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame


@dataclass(frozen=True)
class Split:
    """A plain split holder (for tests and for callers without a full Dataset)."""

    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame


def recbole_model_kind(model: str) -> Literal["general", "sequential"] | None:
    """'general' / 'sequential' when RecBole ships ``model`` in that family, else None."""
    for kind, sub in _SUBMODULES.items():
        if importlib.util.find_spec(f"recbole.model.{sub}.{model.lower()}") is not None:
            return kind  # type: ignore[return-value]
    return None


@dataclass(frozen=True)
class RecBoleConfig:
    """One RecBole training + ranking run on recgen's split."""

    model: str = field(
        default="SASRec",
        metadata={
            "help": "RecBole model class name of a general or sequential model "
            "(SASRec, GRU4Rec, BPR, ...)."
        },
    )
    epochs: int = field(default=10, metadata={"help": "Maximum training epochs."})
    stopping_step: int = field(
        default=3, metadata={"help": "Early stopping: epochs without valid improvement."}
    )
    valid_metric: str = field(
        default="NDCG@10", metadata={"help": "RecBole metric for early stopping (Metric@k)."}
    )
    seed: int = field(default=2020, metadata={"help": "RecBole init_seed value."})
    threads: int = field(default=1, metadata={"help": "torch intra-op threads during the run."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Adam learning rate."})
    train_batch_size: int = field(default=2048, metadata={"help": "Training batch size."})
    eval_batch_size: int = field(default=4096, metadata={"help": "Evaluation batch size."})
    max_seq_len: int = field(
        default=50, metadata={"help": "MAX_ITEM_LIST_LENGTH for sequential models."}
    )
    top_n: int = field(default=100, metadata={"help": "Length of each returned test ranking."})
    max_train_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Training time limit in seconds: no new epoch starts once it would end "
            "past the limit (mean epoch time), and an epoch still running at the limit is "
            "cut short (the partial epoch is validated like a full one); None = no limit."
        },
    )
    dataset_name: str = field(
        default="recgen", metadata={"help": "Token of the benchmark files (<name>.train.inter)."}
    )
    work_dir: str | None = field(
        default=None,
        metadata={
            "help": "Folder for atomic files and checkpoints; a temporary folder "
            "(deleted afterwards) when None."
        },
    )
    extra: Mapping[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Further RecBole config keys (model hyper-parameters), applied last."},
    )

    def __post_init__(self) -> None:
        kind = recbole_model_kind(self.model) if self.model else None
        if kind is None:
            raise ConfigError(
                f"model {self.model!r} is not a RecBole general or sequential model "
                "(e.g. 'SASRec', 'GRU4Rec', 'BPR'; names are case-sensitive class names)."
            )
        for name in (
            "epochs",
            "threads",
            "train_batch_size",
            "eval_batch_size",
            "max_seq_len",
            "top_n",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.stopping_step < 1:
            raise ConfigError(f"stopping_step must be >= 1, got {self.stopping_step}.")
        if self.max_train_seconds is not None and not self.max_train_seconds > 0:
            raise ConfigError(
                f"max_train_seconds must be > 0 or None, got {self.max_train_seconds}."
            )
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}.")
        if "@" not in self.valid_metric:
            raise ConfigError(f"valid_metric must look like 'NDCG@10', got {self.valid_metric!r}.")
        if not self.dataset_name or any(c in self.dataset_name for c in "./\\ \t"):
            raise ConfigError(f"dataset_name must be a plain token, got {self.dataset_name!r}.")

    @property
    def kind(self) -> Literal["general", "sequential"]:
        return recbole_model_kind(self.model)  # type: ignore[return-value]


@dataclass
class RecBoleResult:
    """Rankings and bookkeeping of one run."""

    model: str
    rankings: dict[str, list[str]]  # test user id -> top_n raw item ids, best first
    train_seconds: float  # Trainer.fit wall time (includes per-epoch validation)
    epochs_run: int
    best_epoch: int | None  # 0-based
    valid_curve: list[float]  # RecBole valid_metric after each epoch
    best_valid: dict[str, float]
    catalogue_size: int = 0  # items RecBole ranks (every item of any split)
    stop_reason: str = ""  # "epochs" | "early_stopping" | "time_budget"
    last_epoch_cut_short: bool = False  # the time budget ended the last epoch early
    config: dict[str, Any] = dataclasses.field(default_factory=dict)


# --------------------------------------------------------------------------- files
def _check_frame(frame: pl.DataFrame, split: str) -> None:
    for col in ("user_id", "item_id", "timestamp"):
        if col not in frame.columns:
            raise MissingColumnError(f"{split} frame has no {col!r} column (has {frame.columns})")


def user_sequences(split: SplitFrames) -> dict[str, list[str]]:
    """Each user's chronological train items.

    With a ``recgen.data.Dataset`` (it has ``history``), ``ds.history(user, "valid")`` is
    used, so the order is exactly recgen's; otherwise rows are ordered by
    (timestamp, item id) as the data contract defines.
    """
    _check_frame(split.train, "train")
    history = getattr(split, "history", None)
    if callable(history):
        users = split.train["user_id"].unique().to_list()
        return {u: list(history(u, "valid")) for u in sorted(users)}
    key = id_sort_key(split.train["item_id"].unique().to_list())
    rows = sorted(
        zip(
            split.train["user_id"].to_list(),
            split.train["timestamp"].to_list(),
            split.train["item_id"].to_list(),
            strict=True,
        ),
        key=lambda r: (r[0], r[1], key(r[2])),
    )
    seqs: dict[str, list[str]] = {}
    for user, _, item in rows:
        seqs.setdefault(user, []).append(item)
    return seqs


def _one_per_user(frame: pl.DataFrame, split: str) -> dict[str, str]:
    _check_frame(frame, split)
    users = frame["user_id"].to_list()
    out = dict(zip(users, frame["item_id"].to_list(), strict=True))
    if len(out) != len(users):
        dup = frame.group_by("user_id").len().filter(pl.col("len") > 1)["user_id"][0]
        raise DataError(f"{split} split must have one row per user; user {dup!r} has several")
    return out


def seen_items(split: SplitFrames, target: Literal["valid", "test"]) -> dict[str, set[str]]:
    """Items each user has seen before ``target``: train items (+ the valid item for test)."""
    seen: dict[str, set[str]] = {u: set(s) for u, s in user_sequences(split).items()}
    if target == "test":
        for user, item in _one_per_user(split.valid, "valid").items():
            seen.setdefault(user, set()).add(item)
    return seen


def _check_token(value: str, what: str, forbid: str) -> None:
    if not value or any(c in value for c in forbid):
        raise DataError(
            f"{what} {value!r} cannot be written to a RecBole atomic file "
            f"(empty or contains one of {forbid!r})"
        )


def write_benchmark_files(
    split: SplitFrames,
    folder: str | os.PathLike[str],
    name: str = "recgen",
    sequential: bool = False,
    max_seq_len: int = 50,
) -> dict[str, int]:
    """Write ``<folder>/<name>.{train,valid,test}.inter``; return rows written per split.

    General: one ``user_id item_id timestamp`` row per interaction. Sequential: rows
    ``user_id item_id_list item_id`` as described in the module docstring.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seqs = user_sequences(split)
    valid = _one_per_user(split.valid, "valid")
    test = _one_per_user(split.test, "test")
    items = set(split.train["item_id"].to_list()) | set(valid.values()) | set(test.values())
    users = set(seqs) | set(valid) | set(test)
    for item in items:
        _check_token(item, "item id", "\t\n\r " if sequential else "\t\n\r")
    for user in users:
        _check_token(user, "user id", "\t\n\r")

    rows: dict[str, list[str]] = {s: [] for s in SPLITS}
    if not sequential:
        header = "user_id:token\titem_id:token\ttimestamp:float"
        for s in SPLITS:
            frame = getattr(split, s)
            _check_frame(frame, s)
            rows[s] = [
                f"{u}\t{i}\t{t}"
                for u, i, t in zip(
                    frame["user_id"].to_list(),
                    frame["item_id"].to_list(),
                    frame["timestamp"].to_list(),
                    strict=True,
                )
            ]
    else:
        header = "user_id:token\titem_id_list:token_seq\titem_id:token"
        for user in sorted(seqs):
            seq = seqs[user]
            for t in range(1, len(seq)):
                hist = seq[max(0, t - max_seq_len) : t]
                rows["train"].append(f"{user}\t{' '.join(hist)}\t{seq[t]}")
        for target, extra in (("valid", False), ("test", True)):
            for user, item in sorted((valid if target == "valid" else test).items()):
                hist = list(seqs.get(user, []))
                if extra:
                    if user not in valid:
                        raise DataError(f"test user {user!r} has no valid item")
                    hist.append(valid[user])
                if not hist:
                    raise DataError(
                        f"{target} user {user!r} has no earlier items: a sequential model "
                        "needs a non-empty history"
                    )
                rows[target].append(f"{user}\t{' '.join(hist[-max_seq_len:])}\t{item}")
    counts = {}
    for s in SPLITS:
        path = folder / f"{name}.{s}.inter"
        path.write_text(header + "\n" + "".join(r + "\n" for r in rows[s]), encoding="utf-8")
        counts[s] = len(rows[s])
    logger.info("wrote RecBole benchmark files in %s: %s", folder, counts)
    return counts


# --------------------------------------------------------------------------- RecBole
def recbole_config_dict(cfg: RecBoleConfig, data_path: str, checkpoint_dir: str) -> dict[str, Any]:
    """The RecBole config dict for ``cfg`` (benchmark files under ``data_path/<name>/``)."""
    seq = cfg.kind == "sequential"
    d: dict[str, Any] = {
        "data_path": data_path,
        "checkpoint_dir": checkpoint_dir,
        "benchmark_filename": list(SPLITS),
        "load_col": {
            "inter": ["user_id", "item_id_list", "item_id"] if seq else ["user_id", "item_id"]
        },
        "eval_args": {
            "split": {"LS": "valid_and_test"},
            "order": "TO",
            "group_by": "user",
            "mode": "full",
        },
        "metrics": ["Recall", "MRR", "NDCG"],
        "topk": [10],
        "valid_metric": cfg.valid_metric,
        "epochs": cfg.epochs,
        "stopping_step": cfg.stopping_step,
        "eval_step": 1,
        "seed": cfg.seed,
        "reproducibility": True,
        "learning_rate": cfg.learning_rate,
        "train_batch_size": cfg.train_batch_size,
        "eval_batch_size": cfg.eval_batch_size,
        "use_gpu": False,
        "show_progress": False,
        "save_dataset": False,
        "save_dataloaders": False,
        "log_wandb": False,
        "worker": 0,
    }
    if seq:
        d["alias_of_item_id"] = ["item_id_list"]
        d["MAX_ITEM_LIST_LENGTH"] = cfg.max_seq_len
        if cfg.extra.get("loss_type", "CE") == "CE":
            d["train_neg_sample_args"] = None
    d.update(cfg.extra)
    return d


def run_recbole(split: SplitFrames, cfg: RecBoleConfig) -> RecBoleResult:
    """Write the split, train ``cfg.model`` with early stopping, rank each test user's catalogue."""
    import torch

    own_tmp = cfg.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="recgen-recbole-")) if own_tmp else Path(cfg.work_dir)
    prev_threads = torch.get_num_threads()
    try:
        write_benchmark_files(
            split,
            work / cfg.dataset_name,
            cfg.dataset_name,
            sequential=cfg.kind == "sequential",
            max_seq_len=cfg.max_seq_len,
        )
        seen = seen_items(split, "test")
        torch.set_num_threads(cfg.threads)
        with recbole_compat():
            return _train_and_rank(cfg, str(work), str(work / "saved"), seen)
    finally:
        torch.set_num_threads(prev_threads)
        if own_tmp:
            shutil.rmtree(work, ignore_errors=True)


class _TimeBudgetReached(Exception):
    """Raised from the Trainer's epoch callback to end training at the time budget."""


class _BudgetedLoader:
    """Wraps RecBole's train loader; stops yielding batches once ``deadline`` has passed."""

    def __init__(self, loader: Any, deadline: float) -> None:
        self._loader = loader
        self._deadline = deadline
        self.cut_short = False
        self.batches_last_epoch = 0

    def __iter__(self) -> Any:
        self.batches_last_epoch = 0
        for batch in self._loader:
            yield batch
            self.batches_last_epoch += 1
            if time.perf_counter() > self._deadline:
                self.cut_short = self.batches_last_epoch < len(self._loader)
                return

    def __len__(self) -> int:
        return len(self._loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


def _train_and_rank(
    cfg: RecBoleConfig, data_path: str, checkpoint_dir: str, seen: dict[str, set[str]]
) -> RecBoleResult:
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    config_dict = recbole_config_dict(cfg, data_path, checkpoint_dir)
    config = Config(model=cfg.model, dataset=cfg.dataset_name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    curve: list[float] = []
    start = time.perf_counter()
    budget = cfg.max_train_seconds
    loader: Any = train_data if budget is None else _BudgetedLoader(train_data, start + budget)

    def on_epoch(epoch: int, score: float) -> None:  # runs after the best checkpoint is saved
        curve.append(float(score))
        elapsed = time.perf_counter() - start
        if budget is None or epoch + 1 >= cfg.epochs:
            return
        if loader.cut_short or elapsed * (1 + 1 / len(curve)) > budget:
            raise _TimeBudgetReached

    stop_reason = "epochs"
    try:
        trainer.fit(
            loader,
            valid_data,
            verbose=True,
            saved=True,
            show_progress=False,
            callback_fn=on_epoch,
        )
        if len(curve) < cfg.epochs:
            stop_reason = "early_stopping"
    except _TimeBudgetReached:
        stop_reason = "time_budget"
        logger.info(
            "%s: time budget %.0fs reached after %d epochs (last one cut short: %s)",
            cfg.model,
            budget,
            len(curve),
            loader.cut_short,
        )
    train_seconds = time.perf_counter() - start
    best_epoch = max(range(len(curve)), key=curve.__getitem__) if curve else None
    if os.path.isfile(trainer.saved_model_file):
        state = torch.load(trainer.saved_model_file, map_location="cpu")
        model.load_state_dict(state["state_dict"])
        model.load_other_parameter(state.get("other_parameter"))
    logger.info(
        "%s: %d epochs in %.1fs, best epoch %s, valid %s",
        cfg.model,
        len(curve),
        train_seconds,
        best_epoch,
        curve,
    )
    rankings = _rank_test_users(model, test_data, seen, cfg.top_n)
    return RecBoleResult(
        model=cfg.model,
        rankings=rankings,
        train_seconds=train_seconds,
        epochs_run=len(curve),
        best_epoch=best_epoch,
        valid_curve=curve,
        best_valid={k: float(v) for k, v in (trainer.best_valid_result or {}).items()},
        catalogue_size=int(test_data._dataset.item_num) - 1,  # minus the padding id
        stop_reason=stop_reason,
        last_epoch_cut_short=bool(getattr(loader, "cut_short", False)),
        config={k: v for k, v in config_dict.items() if k not in ("data_path", "checkpoint_dir")},
    )


def _rank_test_users(
    model: Any, test_data: Any, seen: dict[str, set[str]], n: int
) -> dict[str, list[str]]:
    """Full-catalogue top-``n`` raw item ids per test user, seen items and padding removed."""
    import numpy as np
    import torch

    ds = test_data._dataset
    uid, iid = ds.uid_field, ds.iid_field
    num_items = ds.item_num
    item_tokens = np.asarray(ds.field2id_token[iid])
    model.eval()
    rankings: dict[str, list[str]] = {}
    with torch.no_grad():
        for batch in test_data:
            interaction = batch[0]
            scores = model.full_sort_predict(interaction.to(model.device)).view(-1, num_items)
            scores = scores.detach().float().cpu().clone()
            users = ds.id2token(uid, interaction[uid].cpu().numpy())
            scores[:, 0] = -torch.inf
            for row, user in enumerate(users):
                hist = seen.get(str(user), set())
                if hist:
                    scores[row, ds.token2id(iid, sorted(hist))] = -torch.inf
            k = min(n, num_items)
            top_scores, top_idx = torch.topk(scores, k, dim=1)
            for row, user in enumerate(users):
                keep = top_idx[row][torch.isfinite(top_scores[row])].numpy()
                rankings[str(user)] = item_tokens[keep].tolist()
    return rankings
