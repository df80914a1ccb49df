"""Preprocessing: dedupe, min rating, untitled items, iterative k-core, min user length,
chronological sort and the leave-one-out split. Pure functions of polars frames."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import polars as pl

from recgen.data.config import DataConfig
from recgen.data.ids import sort_ids
from recgen.data.raw import RawData
from recgen.errors import ConfigError, EmptyDatasetError

logger = logging.getLogger(__name__)

SPLIT_COLUMNS = ["user_id", "item_id", "timestamp"]


@dataclass
class Prepared:
    """The prepared tables (what the cache stores) and counts of what each step dropped."""

    interactions: pl.DataFrame
    items: pl.DataFrame
    train: pl.DataFrame
    valid: pl.DataFrame
    test: pl.DataFrame
    report: dict[str, int] = field(default_factory=dict)


def dedupe(inter: pl.DataFrame) -> pl.DataFrame:
    """Keep the earliest event of each (user, item) pair (ties: first in file order)."""
    return (
        inter.with_row_index("__order")
        .sort(["timestamp", "__order"])
        .unique(["user_id", "item_id"], keep="first", maintain_order=True)
        .sort("__order")
        .drop("__order")
    )


def kcore(inter: pl.DataFrame, k: int) -> pl.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` events until none remain."""
    if k <= 1:
        return inter
    rounds = 0
    while True:
        rounds += 1
        before = inter.height
        for col in ("user_id", "item_id"):
            inter = inter.filter(pl.len().over(col) >= k)
        if inter.height == before:
            logger.info("%d-core reached after %d round(s): %d events", k, rounds, inter.height)
            return inter


def complete_items(items: pl.DataFrame, inter: pl.DataFrame) -> pl.DataFrame:
    """One row per interacted item (unique ids, missing items added with a null title)."""
    items = items.unique("item_id", keep="first", maintain_order=True)
    present = inter.select(pl.col("item_id").unique())
    out = present.join(items, on="item_id", how="left")
    return out.with_columns(pl.col("title").cast(pl.String).str.strip_chars().replace("", None))


def prepare(raw: RawData, cfg: DataConfig, source: str) -> Prepared:
    """Apply the :class:`DataConfig` steps to ``raw`` (``cfg`` already resolved)."""
    report: dict[str, int] = {}
    inter = raw.interactions
    if inter.height == 0:
        raise EmptyDatasetError(f"{source}: no interactions were read")
    report["read"] = inter.height

    inter = dedupe(inter)
    report["duplicates_dropped"] = report["read"] - inter.height

    if cfg.min_rating is not None:
        if "rating" not in inter.columns:
            raise ConfigError(f"min_rating={cfg.min_rating} but {source} has no rating column.")
        n = inter.height
        inter = inter.filter(pl.col("rating") >= cfg.min_rating)
        report["low_rating_dropped"] = n - inter.height

    items = complete_items(raw.items, inter)
    untitled = items.filter(pl.col("title").is_null())
    if cfg.drop_untitled and untitled.height:
        n = inter.height
        inter = inter.join(untitled.select("item_id"), on="item_id", how="anti")
        report["untitled_items_dropped"] = untitled.height
        report["untitled_events_dropped"] = n - inter.height
        logger.info(
            "dropped %d items without a title (%d events)", untitled.height, n - inter.height
        )
    elif untitled.height:
        logger.info("%d items have no title: using the item id as title", untitled.height)
    items = items.with_columns(pl.col("title").fill_null(pl.col("item_id")))

    n = inter.height
    inter = kcore(inter, cfg.kcore or 0)
    report["kcore_dropped"] = n - inter.height

    n_users = inter["user_id"].n_unique()
    inter = inter.filter(pl.len().over("user_id") >= cfg.min_user_interactions)
    report["short_users_dropped"] = n_users - inter["user_id"].n_unique()
    logger.info(
        "dropped %d users with fewer than %d interactions",
        report["short_users_dropped"],
        cfg.min_user_interactions,
    )
    if inter.height == 0:
        raise EmptyDatasetError(
            f"{source}: no interactions left after filtering ({report}); "
            "relax min_rating / kcore / drop_untitled"
        )

    user_ids = sort_ids(inter["user_id"].to_list())
    item_ids = sort_ids(inter["item_id"].unique().to_list())
    uidx = pl.DataFrame(
        {"user_id": user_ids, "__u": range(len(user_ids))},
        schema={"user_id": pl.String, "__u": pl.Int64},
    )
    iidx = pl.DataFrame(
        {"item_id": item_ids, "__i": range(len(item_ids))},
        schema={"item_id": pl.String, "__i": pl.Int64},
    )
    inter = (
        inter.join(uidx, on="user_id").join(iidx, on="item_id").sort(["__u", "timestamp", "__i"])
    )
    from_end = (pl.len().over("__u") - 1 - pl.int_range(pl.len()).over("__u")).alias("__e")
    inter = inter.with_columns(from_end)
    cols = ["user_id", "item_id", "timestamp"] + (["rating"] if "rating" in inter.columns else [])
    train = inter.filter(pl.col("__e") >= 2).select(SPLIT_COLUMNS)
    valid = inter.filter(pl.col("__e") == 1).select(SPLIT_COLUMNS)
    test = inter.filter(pl.col("__e") == 0).select(SPLIT_COLUMNS)
    items = items.join(iidx, on="item_id").sort("__i").drop("__i")
    report.update(users=len(user_ids), items=len(item_ids), interactions=inter.height)
    return Prepared(inter.select(cols), items, train, valid, test, report)
