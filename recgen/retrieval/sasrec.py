"""SASRec-style sequential retriever: causal self-attention over the last ``max_len`` items.

Training sees whole sequences at once (every position of a window predicts the next item
under a causal mask, cross-entropy over the full catalogue), not one row per prefix, so an
epoch on ml-100k takes seconds. Only the train split is used for fitting; the valid split
drives early stopping on full-catalogue NDCG@10 with the user's train items excluded.

Vectors: ``item_vectors()`` is the (tied) item embedding table in dataset integer-id order
(internal index 0 is padding and is not returned); ``encode(histories)`` is the last hidden
state; the score of an item for a history is their inner product.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import torch
from torch import nn
from tqdm.auto import tqdm

import recgen.runtime as runtime
from recgen.errors import (
    ConfigError,
    ModelNotFoundError,
    RetrievalError,
    UnknownItemError,
)
from recgen.io import atomic_dir, atomic_write_json

logger = logging.getLogger(__name__)

_WEIGHTS, _CONFIG, _ITEMS, _META = "weights.pt", "config.json", "item_ids.json", "meta.json"


class SequenceDataset(Protocol):
    """What the retriever needs from ``recgen.data.Dataset``."""

    name: str
    item_ids: list[str]
    item_index: dict[str, int]
    train: pl.DataFrame
    valid: pl.DataFrame

    def sequence(self, user_id: str) -> list[str]: ...


@dataclass(frozen=True)
class SASRecConfig:
    """Hyper-parameters of the SASRec retriever (defaults tuned on ml-100k, CPU)."""

    hidden: int = field(default=64, metadata={"help": "embedding / hidden size"})
    heads: int = field(default=2, metadata={"help": "attention heads (must divide hidden)"})
    layers: int = field(default=2, metadata={"help": "transformer blocks"})
    ffn: int = field(default=256, metadata={"help": "feed-forward inner size"})
    dropout: float = field(default=0.3, metadata={"help": "dropout on embeddings, attention, FFN"})
    max_len: int = field(default=50, metadata={"help": "L: how many latest items are encoded"})
    lr: float = field(default=3e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    epochs: int = field(default=200, metadata={"help": "maximum training epochs"})
    patience: int = field(
        default=10,
        metadata={
            "help": "stop after this many epochs without "
            "a better valid NDCG@10 (0 = never stop early)"
        },
    )
    batch_size: int = field(default=256, metadata={"help": "training windows per batch"})
    seed: int = field(default=0, metadata={"help": "random seed (init, dropout, batch order)"})
    threads: int = field(
        default=0, metadata={"help": "torch threads while fitting (0 = free cores)"}
    )

    def __post_init__(self) -> None:
        positive = ("hidden", "heads", "layers", "ffn", "max_len", "epochs", "batch_size")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"SASRecConfig.{name} must be a positive integer, got {value!r}")
        if self.hidden % self.heads:
            raise ConfigError(
                f"SASRecConfig.heads={self.heads} must divide SASRecConfig.hidden={self.hidden}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"SASRecConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            raise ConfigError(f"SASRecConfig.lr must be a positive finite number, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"SASRecConfig.weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.patience < 0:
            raise ConfigError(f"SASRecConfig.patience must be >= 0, got {self.patience!r}")
        if self.threads < 0:
            raise ConfigError(f"SASRecConfig.threads must be >= 0 (0 = all), got {self.threads!r}")


@dataclass
class FitReport:
    """What ``SASRec.fit`` measured."""

    best_epoch: int = 0
    best_valid_ndcg10: float = 0.0
    epochs_run: int = 0
    train_seconds: float = 0.0
    valid_ndcg10: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)


class _Block(nn.Module):
    """Post-LN transformer block (as RecBole's SASRec): attention, then GELU feed-forward."""

    def __init__(self, d: int, heads: int, ffn: int, dropout: float) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ln1 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, ffn), nn.GELU(), nn.Linear(ffn, d))
        self.ln2 = nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a, _ = self.attn(x, x, x, attn_mask=mask, need_weights=False)
        x = self.ln1(x + self.drop(a))
        return self.ln2(x + self.drop(self.ff(x)))


class _Net(nn.Module):
    def __init__(self, num_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.item = nn.Embedding(num_items + 1, cfg.hidden, padding_idx=0)
        self.pos = nn.Embedding(cfg.max_len, cfg.hidden)
        self.ln = nn.LayerNorm(cfg.hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            _Block(cfg.hidden, cfg.heads, cfg.ffn, cfg.dropout) for _ in range(cfg.layers)
        )
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """seq: (B, L) internal ids, left-padded with 0 -> hidden states (B, L, d)."""
        b, n = seq.shape
        pos = torch.arange(n, device=seq.device)
        x = self.drop(self.ln(self.item(seq) + self.pos(pos)[None]))
        # key j visible from query i iff j <= i and j is an item; each position sees itself,
        # so rows of padding never become all -inf (no NaN).
        causal = torch.ones(n, n, dtype=torch.bool, device=seq.device).triu(1)
        pad = (seq == 0)[:, None, :] & ~torch.eye(n, dtype=torch.bool, device=seq.device)[None]
        mask = (causal[None] | pad).repeat_interleave(self.heads, dim=0)
        for block in self.blocks:
            x = block(x, mask)
        return x


def _left_pad(rows: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    out = torch.zeros(len(rows), length, dtype=torch.long)
    for r, row in enumerate(rows):
        row = row[-length:]
        if row:
            out[r, length - len(row) :] = torch.as_tensor(row, dtype=torch.long)
    return out


def _windows(seqs: Sequence[Sequence[int]], length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sequence into next-item windows of ``length`` inputs, from the end backwards.

    Every position t >= 1 of every sequence is a target exactly once; the window ending at
    the sequence's end always exists (the most recent context is never split).
    """
    inputs: list[list[int]] = []
    targets: list[list[int]] = []
    for s in seqs:
        end = len(s)
        while end > 1:
            start = max(0, end - length - 1)
            w = list(s[start:end])
            inputs.append(w[:-1])
            targets.append(w[1:])
            end = start + 1
    return _left_pad(inputs, length), _left_pad(targets, length)


class _Settings:
    """Temporarily set torch threads and deterministic mode; restore on exit."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> None:
        self._threads = torch.get_num_threads()
        self._det = torch.are_deterministic_algorithms_enabled()
        runtime.configure(self.threads or None)
        torch.use_deterministic_algorithms(True)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self._threads)
        torch.use_deterministic_algorithms(self._det)


class SASRec:
    """A trained (or loaded) SASRec retriever over a fixed catalogue of item ids."""

    def __init__(self, item_ids: Sequence[str], cfg: SASRecConfig | None = None) -> None:
        self.cfg = cfg or SASRecConfig()
        self.item_ids: list[str] = list(item_ids)
        if not self.item_ids:
            raise RetrievalError("SASRec needs a non-empty catalogue, got 0 item ids")
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}
        if len(self.item_index) != len(self.item_ids):
            raise RetrievalError("SASRec item ids must be unique")
        with torch.random.fork_rng(devices=[]):  # seeded init, global RNG untouched
            torch.manual_seed(self.cfg.seed)
            self.net = _Net(len(self.item_ids), self.cfg)
        self.net.eval()
        self.report = FitReport()

    # ------------------------------------------------------------------ training
    @classmethod
    def fit(cls, ds: SequenceDataset, cfg: SASRecConfig | None = None) -> SASRec:
        """Train on ``ds.train``; early-stop on valid NDCG@10; keep the best epoch's weights."""
        cfg = cfg or SASRecConfig()
        with _Settings(cfg.threads):
            runtime.seed_everything(cfg.seed)
            model = cls(ds.item_ids, cfg)
            model._fit(ds)
        return model

    def _fit(self, ds: SequenceDataset) -> None:
        cfg = self.cfg
        train_seqs, valid_users = _train_sequences(ds)
        seqs_int = [
            self._to_internal(s, f"train sequence of user {u!r}") for u, s in train_seqs.items()
        ]
        inp, tgt = _windows(seqs_int, cfg.max_len)
        if inp.shape[0] == 0:
            raise RetrievalError(f"dataset {ds.name!r}: no train sequence has 2 or more items")
        v_hist = [train_seqs[u] for u, _ in valid_users]
        if not v_hist:
            logger.warning(
                "dataset %r has no valid users: no early stopping, last epoch kept", ds.name
            )
        v_tgt = np.array(
            [self.item_index[t] if t in self.item_index else -1 for _, t in valid_users]
        )
        if (v_tgt < 0).any():
            bad = valid_users[int(np.argmin(v_tgt))][1]
            raise UnknownItemError(f"valid target item {bad!r} is not in the catalogue")

        logger.info(
            "SASRec: %d train windows, %d targets, %d valid users, %d items",
            inp.shape[0],
            int((tgt > 0).sum()),
            len(v_hist),
            len(self.item_ids),
        )
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.seed)
        rep = FitReport()
        best_state: dict[str, torch.Tensor] | None = None
        start = time.perf_counter()
        bar = tqdm(range(1, cfg.epochs + 1), desc="sasrec", unit="epoch", leave=False)
        for epoch in bar:
            self.net.train()
            order = torch.as_tensor(rng.permutation(inp.shape[0]))
            total, count = 0.0, 0
            for b in range(0, len(order), cfg.batch_size):
                idx = order[b : b + cfg.batch_size]
                x, y = inp[idx], tgt[idx]
                h = self.net(x)
                keep = y > 0
                logits = h[keep] @ self.net.item.weight[1:].T
                loss = nn.functional.cross_entropy(logits, y[keep] - 1)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * int(keep.sum())
                count += int(keep.sum())
            rep.train_loss.append(total / max(count, 1))
            ndcg = self._valid_ndcg10(v_hist, v_tgt)
            rep.valid_ndcg10.append(ndcg)
            rep.epochs_run = epoch
            if ndcg > rep.best_valid_ndcg10 or best_state is None or not v_hist:
                rep.best_valid_ndcg10, rep.best_epoch = ndcg, epoch
                best_state = copy.deepcopy(self.net.state_dict())
            bar.set_postfix(
                loss=f"{rep.train_loss[-1]:.3f}",
                ndcg=f"{ndcg:.4f}",
                best=f"{rep.best_valid_ndcg10:.4f}@{rep.best_epoch}",
            )
            logger.debug("epoch %d loss %.4f valid NDCG@10 %.4f", epoch, rep.train_loss[-1], ndcg)
            if cfg.patience and v_hist and epoch - rep.best_epoch >= cfg.patience:
                break
        bar.close()
        assert best_state is not None
        self.net.load_state_dict(best_state)
        self.net.eval()
        rep.train_seconds = time.perf_counter() - start
        self.report = rep
        logger.info(
            "SASRec fitted in %.1f s (%d epochs): best valid NDCG@10 %.4f at epoch %d",
            rep.train_seconds,
            rep.epochs_run,
            rep.best_valid_ndcg10,
            rep.best_epoch,
        )

    def _valid_ndcg10(self, histories: list[list[str]], targets: np.ndarray) -> float:
        if not histories:
            return 0.0
        scores = self.score(histories)
        for r, h in enumerate(histories):
            scores[r, [self.item_index[i] for i in h]] = -np.inf
        tgt = scores[np.arange(len(targets)), targets]
        rank = (scores > tgt[:, None]).sum(axis=1)
        gains = np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)
        return float(gains.mean())

    # ------------------------------------------------------------------ inference
    def _to_internal(self, items: Sequence[str], what: str) -> list[int]:
        out = []
        for it in items:
            idx = self.item_index.get(it)
            if idx is None:
                raise UnknownItemError(
                    f"item {it!r} in {what} is not in the retriever's "
                    f"catalogue of {len(self.item_ids)} items"
                )
            out.append(idx + 1)
        return out

    @property
    def dim(self) -> int:
        return self.cfg.hidden

    def item_vectors(self) -> np.ndarray:
        """(num_items, d) float32 item vectors in dataset integer-id order."""
        return self.net.item.weight[1:].detach().numpy().astype(np.float32, copy=True)

    @torch.no_grad()
    def encode(self, histories: Sequence[Sequence[str]], batch_size: int = 1024) -> np.ndarray:
        """(B, d) float32 history vectors: the last hidden state over each history's last L items."""
        rows = []
        for r, h in enumerate(histories):
            if len(h) == 0:
                raise RetrievalError(f"history #{r} is empty: SASRec needs at least one item")
            rows.append(self._to_internal(h[-self.cfg.max_len :], f"history #{r}"))
        out = np.empty((len(rows), self.cfg.hidden), dtype=np.float32)
        self.net.eval()
        for b in range(0, len(rows), batch_size):
            x = _left_pad(rows[b : b + batch_size], self.cfg.max_len)
            out[b : b + len(x)] = self.net(x)[:, -1].numpy()
        return out

    def score(self, histories: Sequence[Sequence[str]]) -> np.ndarray:
        """(B, num_items) inner-product scores of every catalogue item for each history."""
        return self.encode(histories) @ self.item_vectors().T

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write weights, config, item ids and the fit report to folder ``path`` atomically."""
        path = Path(path)
        with atomic_dir(path) as tmp:
            torch.save(self.net.state_dict(), tmp / _WEIGHTS)
            atomic_write_json(tmp / _CONFIG, asdict(self.cfg))
            atomic_write_json(tmp / _ITEMS, self.item_ids)
            atomic_write_json(tmp / _META, {"kind": "sasrec", "report": asdict(self.report)})
        logger.info("saved SASRec retriever to %s", path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SASRec:
        """Load a retriever written by :meth:`save`."""
        path = Path(path)
        missing = [f for f in (_WEIGHTS, _CONFIG, _ITEMS) if not (path / f).is_file()]
        if missing:
            raise ModelNotFoundError(f"{path} is not a saved SASRec retriever: missing {missing}")
        cfg_dict: dict[str, Any] = json.loads((path / _CONFIG).read_text())
        known = set(SASRecConfig.__dataclass_fields__)
        cfg = SASRecConfig(**{k: v for k, v in cfg_dict.items() if k in known})
        model = cls(json.loads((path / _ITEMS).read_text()), cfg)
        state = torch.load(path / _WEIGHTS, map_location="cpu", weights_only=True)
        model.net.load_state_dict(state)
        model.net.eval()
        if (path / _META).is_file():
            rep = json.loads((path / _META).read_text()).get("report", {})
            model.report = FitReport(
                **{k: v for k, v in rep.items() if k in FitReport.__dataclass_fields__}
            )
        return model


def _train_sequences(ds: SequenceDataset) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Per-user train sequences (chronological) and the (user, valid target) pairs."""
    counts = dict(ds.train.group_by("user_id").len().iter_rows())
    seqs = {}
    for u in sorted(counts, key=lambda x: ds.user_index[x] if hasattr(ds, "user_index") else x):
        seqs[u] = ds.sequence(u)[: counts[u]]
    valid = [
        (u, t) for u, t in ds.valid.select("user_id", "item_id").iter_rows() if counts.get(u, 0) > 0
    ]
    return seqs, valid
