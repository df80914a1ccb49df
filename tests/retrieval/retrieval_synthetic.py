"""A tiny stand-in for ``recgen.data.Dataset`` exposing the attributes retrieval uses.

Built from explicit per-user sequences with the leave-one-out split of the contract
(last item = test, second last = valid, the rest = train).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl


def _sort_key(ids: list[str]) -> list[str]:
    if all(i.isdigit() for i in ids):
        return sorted(ids, key=int)
    return sorted(ids)


class SyntheticDataset:
    def __init__(
        self,
        sequences: dict[str, list[str]],
        name: str = "synthetic",
        catalogue: list[str] | None = None,
    ) -> None:
        self.name = name
        self._seq = {u: list(s) for u, s in sequences.items()}
        self.user_ids = _sort_key(list(self._seq))
        items = set(catalogue or [])
        for s in self._seq.values():
            items.update(s)
        self.item_ids = _sort_key(list(items))
        self.user_index = {u: i for i, u in enumerate(self.user_ids)}
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}
        rows: dict[str, list[dict]] = {"train": [], "valid": [], "test": []}
        for u in self.user_ids:
            s = self._seq[u]
            for t, it in enumerate(s):
                split = "test" if t == len(s) - 1 else "valid" if t == len(s) - 2 else "train"
                rows[split].append({"user_id": u, "item_id": it, "timestamp": 1000 + t})
        schema = {"user_id": pl.String, "item_id": pl.String, "timestamp": pl.Int64}
        self.train = pl.DataFrame(rows["train"], schema=schema)
        self.valid = pl.DataFrame(rows["valid"], schema=schema)
        self.test = pl.DataFrame(rows["test"], schema=schema)
        self.interactions = pl.concat([self.train, self.valid, self.test]).sort(
            "user_id", "timestamp"
        )
        self.items = pl.DataFrame(
            {"item_id": self.item_ids, "title": [f"item {i}" for i in self.item_ids]}
        )

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.item_ids)

    def sequence(self, user_id: str) -> list[str]:
        return list(self._seq[user_id])

    def history(self, user_id: str, split: str) -> list[str]:
        s = self._seq[user_id]
        return s[: len(s) - (1 if split == "test" else 2)]

    def title(self, item_id: str) -> str:
        return f"item {item_id}"


def successor_dataset(
    num_users: int = 60, num_items: int = 30, length: int = 12, seed: int = 0
) -> SyntheticDataset:
    """Users walk the catalogue in order: item i is always followed by item i+1 (mod n)."""
    import random

    rng = random.Random(seed)
    seqs = {}
    for u in range(num_users):
        start = rng.randrange(num_items)
        seqs[str(u)] = [str((start + t) % num_items) for t in range(length)]
    return SyntheticDataset(seqs, catalogue=[str(i) for i in range(num_items)])


def ml100k_from_recbole() -> SyntheticDataset:
    """Dev fallback: ml-100k from the recbole wheel, chronological by (timestamp, item id)."""
    import recbole

    path = Path(recbole.__file__).parent / "dataset_example/ml-100k/ml-100k.inter"
    df = pl.read_csv(
        path,
        separator="\t",
        schema_overrides={"user_id:token": pl.String, "item_id:token": pl.String},
    )
    df = df.rename({c: c.split(":")[0] for c in df.columns}).with_columns(
        pl.col("timestamp").cast(pl.Int64), pl.col("item_id").cast(pl.Int64).alias("_i")
    )
    df = df.sort("user_id", "timestamp", "_i")
    seqs = {u: g["item_id"].to_list() for (u,), g in df.group_by("user_id", maintain_order=True)}
    return SyntheticDataset(seqs, name="ml-100k")


def tiny_config(**overrides):
    """A SASRec config small enough to train on ``successor_dataset`` in about a second."""
    from recgen.retrieval import SASRecConfig

    base = dict(
        hidden=32,
        heads=2,
        layers=1,
        ffn=64,
        dropout=0.0,
        max_len=8,
        lr=1e-2,
        epochs=3,
        patience=0,
        batch_size=32,
        threads=1,
        seed=0,
    )
    return SASRecConfig(**{**base, **overrides})
