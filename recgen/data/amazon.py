"""Amazon review readers: 2018 (McAuley lab) json lines, 2023 (Amazon Reviews'23) jsonl,
and the 2023 benchmark csv files; each plain or ``.gz``.

* 2018 reviews: ``reviewerID, asin, overall, unixReviewTime`` (seconds);
  metadata ``meta_<Category>.json[.gz]``: ``asin, title, category`` (a list: the
  category path, joined here with " > ").
* 2023 reviews: ``user_id, parent_asin, rating, timestamp`` (MILLISECONDS);
  metadata ``meta_<Category>.jsonl[.gz]``: ``parent_asin, title, main_category``.
  Items are parent asins (as in the Amazon Reviews'23 benchmark).
* 2023 benchmark csv (``<Category>.csv[.gz]`` or ``<Category>.{train,valid,test}.csv[.gz]``;
  a folder's csv files are concatenated, recgen re-splits): ``user_id,parent_asin,rating,
  timestamp[,history]``; timestamps are milliseconds, as in the reviews jsonl
  (e.g. 1566007063476 = 2019-08-17). Guard: if every timestamp of a file declared in ms
  is below 1e11 (i.e. the values already look like seconds), they are kept as seconds
  with a warning.

Metadata is optional: items without metadata (or without a title) get their asin as
title, unless ``DataConfig.drop_untitled`` drops them.
See :mod:`recgen.data.readutil` for the memory strategy (lazy scans, gzip to temp file).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from recgen.data.raw import RawData
from recgen.data.readutil import ROW, collect_checked, first_line, plain_path
from recgen.errors import DataFileNotFoundError, EmptyDatasetError, MissingColumnError

logger = logging.getLogger(__name__)

MS_THRESHOLD = 100_000_000_000  # 1e11: as seconds that is year 5138; as ms, 1973


@dataclass(frozen=True)
class _Spec:
    user: str
    item: str
    rating: str
    timestamp: str
    millis: bool
    exts: tuple[str, ...]
    meta_item: str
    meta_category: str


SPECS = {
    "amazon-2018": _Spec(
        "reviewerID",
        "asin",
        "overall",
        "unixReviewTime",
        False,
        (".json", ".json.gz", ".jsonl", ".jsonl.gz"),
        "asin",
        "category",
    ),
    "amazon-2023": _Spec(
        "user_id",
        "parent_asin",
        "rating",
        "timestamp",
        True,
        (".jsonl", ".jsonl.gz", ".json", ".json.gz"),
        "parent_asin",
        "main_category",
    ),
    "amazon-2023-csv": _Spec(
        "user_id",
        "parent_asin",
        "rating",
        "timestamp",
        True,
        (".csv", ".csv.gz"),
        "parent_asin",
        "main_category",
    ),
}


def _has_ext(p: Path, exts: tuple[str, ...]) -> bool:
    return any(p.name.endswith(e) for e in exts)


def review_files(path: Path, fmt: str) -> list[Path]:
    """The review files of ``path`` (a file, or a folder's non-``meta_`` files of the format)."""
    spec = SPECS[fmt]
    if path.is_file():
        return [path]
    files = sorted(
        p
        for p in path.iterdir()
        if p.is_file() and not p.name.startswith("meta_") and _has_ext(p, spec.exts)
    )
    if not files:
        raise DataFileNotFoundError(
            f"no {fmt} review file in {path}: expected a file ending in one of {list(spec.exts)}"
        )
    return files


def _category_stem(p: Path) -> str:
    stem = p.name.split(".", 1)[0]
    return stem[: -len("_5")] if stem.endswith("_5") else stem


def find_meta(reviews: list[Path], meta_path: str | None) -> Path | None:
    """The metadata file: ``meta_path`` if given, else ``meta_<Category>.*json*`` nearby."""
    if meta_path is not None:
        p = Path(meta_path).expanduser()
        if not p.is_file():
            raise DataFileNotFoundError(f"Amazon metadata file not found: {p}")
        return p
    for r in reviews:
        for cand in sorted(r.parent.glob(f"meta_{_category_stem(r)}.*")):
            if _has_ext(cand, (".json", ".json.gz", ".jsonl", ".jsonl.gz")):
                return cand
    return None


def _json_check(line: str) -> str | None:
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return f"not valid JSON ({e.msg} at column {e.colno})"
    return None if isinstance(obj, dict) else "expected a JSON object"


def _read_reviews(path: Path, fmt: str, tmp_root: Path | None) -> pl.DataFrame:
    spec = SPECS[fmt]
    names = {
        spec.user: "user_id",
        spec.item: "item_id",
        spec.rating: "rating",
        spec.timestamp: "timestamp",
    }
    casts = {
        spec.rating: (pl.Float64, "a number"),
        spec.timestamp: (pl.Int64, "an integer " + ("(ms)" if spec.millis else "(s)")),
    }
    if path.stat().st_size == 0:
        raise EmptyDatasetError(f"{path} is empty: expected {fmt} reviews")
    with plain_path(path, tmp_root) as plain:
        if fmt == "amazon-2023-csv":
            header = first_line(plain).split(",")
            missing = [c for c in names if c not in header]
            if missing:
                raise MissingColumnError(
                    f"{path}: header lacks column(s) {missing} (found {header}); "
                    "expected user_id,parent_asin,rating,timestamp"
                )
            lf = pl.scan_csv(plain, has_header=True, infer_schema=False, row_index_name=ROW)
            offset, word, check = 2, "column", (lambda s: None)
        else:
            lf = pl.scan_ndjson(plain, schema=dict.fromkeys(names, pl.String), row_index_name=ROW)
            offset, word, check = 1, "field", _json_check
        lf = lf.select(ROW, *names)
        df = collect_checked(
            lf,
            path=path,
            casts=casts,
            required=[spec.user, spec.item],
            line_offset=offset,
            check_line=check,
            field_word=word,
        ).rename(names)
    if spec.millis and df.height:
        if df["timestamp"].max() < MS_THRESHOLD:
            logger.warning(
                "%s: timestamps should be milliseconds but all are < 1e11; keeping them as seconds",
                path,
            )
        else:
            df = df.with_columns(pl.col("timestamp") // 1000)
    logger.info("%s: %d reviews", path, df.height)
    return df


def _read_meta(path: Path, fmt: str, wanted: pl.DataFrame, tmp_root: Path | None) -> pl.DataFrame:
    spec = SPECS[fmt]
    schema = {spec.meta_item: pl.String, "title": pl.String, spec.meta_category: pl.String}
    with plain_path(path, tmp_root) as plain:
        lf = (
            pl.scan_ndjson(plain, schema=schema, row_index_name=ROW)
            .rename({spec.meta_item: "item_id", spec.meta_category: "category"})
            .join(wanted.lazy(), on="item_id", how="semi")
        )
        df = collect_checked(
            lf,
            path=path,
            casts={},
            required=[],
            line_offset=1,
            check_line=_json_check,
            field_word="field",
        )
    cat = pl.col("category")
    listed = (
        cat.str.extract_all(r'"((?:[^"\\]|\\.)*)"')
        .list.eval(pl.element().str.strip_chars('"'))
        .list.join(" > ")
    )
    df = df.filter(pl.col("item_id").is_not_null()).with_columns(
        pl.col("title").str.strip_chars().replace("", None),
        pl.when(cat.str.starts_with("["))
        .then(listed)
        .otherwise(cat)
        .replace("", None)
        .alias("category"),
    )
    logger.info("%s: metadata for %d of %d items", path, df["item_id"].n_unique(), wanted.height)
    return df.unique("item_id", keep="first", maintain_order=True)


def read_amazon(path: Path, fmt: str, meta_path: str | None, tmp_root: Path | None) -> RawData:
    """Reviews (+ optional metadata) of ``path`` (file or folder) in format ``fmt``."""
    reviews = review_files(path, fmt)
    frames = [_read_reviews(p, fmt, tmp_root) for p in reviews]
    inter = pl.concat(frames) if len(frames) > 1 else frames[0]
    wanted = inter.select("item_id").unique()
    meta = find_meta(reviews, meta_path)
    files = list(reviews)
    if meta is None:
        logger.warning("no metadata file for %s: titles fall back to asins", path)
        items = wanted.with_columns(pl.lit(None, pl.String).alias("title"))
    else:
        files.append(meta)
        items = wanted.join(_read_meta(meta, fmt, wanted, tmp_root), on="item_id", how="left")
    items = items.sort("item_id")
    return RawData(inter, items, "amazon", files)
