"""MovieLens readers: RecBole atomic files (the default ml-100k), GroupLens ml-100k raw,
ml-1m (``::``-separated, latin-1) and ml-latest / ml-latest-small (csv, utf-8).

Titles are returned without the trailing "(year)"; the year is its own string column
(ml-100k's RecBole file already stores it apart, with dirty values such as 'V').
Genres are joined with "|".
"""

from __future__ import annotations

import csv
import importlib.resources
import io
import logging
from pathlib import Path

import polars as pl

from recgen.data.raw import RawData, items_frame, split_title_year
from recgen.data.readutil import ROW, collect_checked, decode_lines, first_line, require_file
from recgen.errors import DataFileNotFoundError, EmptyDatasetError, MissingColumnError, ParseError

logger = logging.getLogger(__name__)

ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)

_TYPES = {
    "timestamp": (pl.Int64, "a number of seconds"),
    "rating": (pl.Float64, "a number"),
}


def wheel_ml100k() -> Path:
    """The folder of RecBole's ml-100k atomic files inside the installed recbole wheel."""
    folder = Path(str(importlib.resources.files("recbole") / "dataset_example" / "ml-100k"))
    if not (folder / "ml-100k.inter").is_file():
        raise DataFileNotFoundError(
            f"RecBole's ml-100k example not found: expected {folder / 'ml-100k.inter'} "
            "(is recbole==1.2.1 installed?)"
        )
    return folder


def _fields(sep: str, n: int, what: str):
    def check(line: str) -> str | None:
        if not line.strip():
            return None
        k = len(line.split(sep))
        return None if k == n else f"expected {n} {what}-separated fields, found {k}"

    return check


def _check_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise EmptyDatasetError(f"{path} is empty: expected interactions")


# --- RecBole atomic ------------------------------------------------------------------
def read_recbole(folder: Path, name: str | None = None) -> RawData:
    """RecBole atomic files ``<name>.inter`` (+ optional ``<name>.item``) in ``folder``."""
    if name is None:
        inters = sorted(folder.glob("*.inter"))
        if not inters:
            raise DataFileNotFoundError(f"no *.inter file in {folder}")
        name = inters[0].stem
    inter = require_file(folder / f"{name}.inter", "RecBole interaction file")
    _check_empty(inter)
    header = [h.split(":", 1)[0] for h in first_line(inter).split("\t")]
    for col in ("user_id", "item_id", "timestamp"):
        if col not in header:
            raise MissingColumnError(
                f"{inter}: header has no {col!r} field (found {header}); "
                "expected e.g. 'user_id:token\\titem_id:token\\trating:float\\ttimestamp:float'"
            )
    lf = pl.scan_csv(
        inter,
        separator="\t",
        has_header=False,
        skip_rows=1,
        quote_char=None,
        new_columns=header,
        schema=dict.fromkeys(header, pl.String),
        row_index_name=ROW,
    )
    keep = ["user_id", "item_id", "timestamp"] + (["rating"] if "rating" in header else [])
    lf = lf.select([ROW, *keep])
    casts = {c: t for c, t in _TYPES.items() if c in keep}
    df = collect_checked(
        lf,
        path=inter,
        casts=casts,
        required=["user_id", "item_id"],
        line_offset=2,
        check_line=_fields("\t", len(header), "tab"),
    )
    files = [inter]
    item_path = folder / f"{name}.item"
    items = items_frame([], ["item_id", "title"])
    if item_path.is_file():
        files.append(item_path)
        items = _read_recbole_items(item_path)
    return RawData(df, items, "movielens", files)


def _read_recbole_items(path: Path) -> pl.DataFrame:
    lines = decode_lines(path, "utf-8")
    header = [h.split(":", 1)[0] for h in lines[0].split("\t")]
    rename = {
        "movie_title": "title",
        "title": "title",
        "item_name": "title",
        "release_year": "year",
        "year": "year",
        "class": "genres",
        "genre": "genres",
        "categories": "category",
        "category": "category",
    }
    if "item_id" not in header:
        raise MissingColumnError(f"{path}: header has no 'item_id' field (found {header})")
    out_cols = ["item_id"] + [rename[h] for h in header if h in rename]
    if "title" not in out_cols:
        raise MissingColumnError(
            f"{path}: header has no title field (expected one of movie_title, title, item_name)"
        )
    rows = []
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(header):
            raise ParseError(
                f"{path}, line {lineno}: expected {len(header)} tab-separated fields, found {len(parts)}"
            )
        row = {"item_id": None}
        for h, v in zip(header, parts, strict=True):
            if h == "item_id":
                row["item_id"] = v
            elif h in rename:
                key = rename[h]
                row[key] = "|".join(v.split()) if key == "genres" else (v or None)
        rows.append(row)
    return items_frame(rows, out_cols)


# --- GroupLens ml-100k raw -----------------------------------------------------------
def read_ml100k_raw(folder: Path) -> RawData:
    """``u.data`` (user item rating ts, tab) + ``u.item`` (pipe, latin-1, 19 genre flags)."""
    data = require_file(folder / "u.data", "ml-100k ratings file u.data")
    _check_empty(data)
    cols = ["user_id", "item_id", "rating", "timestamp"]
    lf = pl.scan_csv(
        data,
        separator="\t",
        has_header=False,
        quote_char=None,
        new_columns=cols,
        schema=dict.fromkeys(cols, pl.String),
        row_index_name=ROW,
    )
    df = collect_checked(
        lf,
        path=data,
        casts=_TYPES,
        required=["user_id", "item_id"],
        line_offset=1,
        check_line=_fields("\t", 4, "tab"),
    )
    item_path = require_file(folder / "u.item", "ml-100k item file u.item")
    rows = []
    for lineno, line in enumerate(decode_lines(item_path, "latin-1"), 1):
        if not line.strip():
            continue
        parts = line.split("|")
        if len(parts) != 5 + len(ML100K_GENRES):
            raise ParseError(
                f"{item_path}, line {lineno}: expected {5 + len(ML100K_GENRES)} "
                f"'|'-separated fields, found {len(parts)}"
            )
        title, year = split_title_year(parts[1])
        date = parts[2].strip()
        if year is None and len(date) >= 4 and date[-4:].isdigit():
            year = date[-4:]
        flags = parts[5:]
        genres = "|".join(g for g, f in zip(ML100K_GENRES, flags, strict=True) if f.strip() == "1")
        rows.append({"item_id": parts[0], "title": title or None, "year": year, "genres": genres})
    items = items_frame(rows, ["item_id", "title", "year", "genres"])
    return RawData(df, items, "movielens", [data, item_path])


# --- ml-1m ---------------------------------------------------------------------------
def read_ml1m(folder: Path) -> RawData:
    """``ratings.dat`` (UserID::MovieID::Rating::Timestamp) + ``movies.dat`` (latin-1)."""
    data = require_file(folder / "ratings.dat", "ml-1m ratings file ratings.dat")
    _check_empty(data)
    cols = ["user_id", "item_id", "rating", "timestamp"]
    lf = (
        pl.scan_csv(
            data,
            separator="\x1f",
            has_header=False,
            quote_char=None,
            new_columns=["line"],
            schema={"line": pl.String},
            row_index_name=ROW,
            encoding="utf8-lossy",
        )
        .filter(pl.col("line").is_not_null())
        .with_columns(
            pl.col("line").str.split_exact("::", 3).struct.rename_fields(cols).alias("f"),
            pl.col("line").str.count_matches("::", literal=True).alias("seps"),
        )
    )
    bad = lf.filter(pl.col("seps") != 3).select(ROW, "seps").head(1).collect()
    if bad.height:
        raise ParseError(
            f"{data}, line {bad[ROW][0] + 1}: expected 4 '::'-separated fields "
            f"(UserID::MovieID::Rating::Timestamp), found {bad['seps'][0] + 1}"
        )
    lf = lf.unnest("f").select(ROW, *cols)
    df = collect_checked(
        lf,
        path=data,
        casts=_TYPES,
        required=["user_id", "item_id"],
        line_offset=1,
        check_line=lambda s: None,
    )
    movies = require_file(folder / "movies.dat", "ml-1m movie file movies.dat")
    rows = []
    for lineno, line in enumerate(decode_lines(movies, "latin-1"), 1):
        if not line.strip():
            continue
        parts = line.split("::")
        if len(parts) != 3:
            raise ParseError(
                f"{movies}, line {lineno}: expected 3 '::'-separated fields "
                f"(MovieID::Title::Genres), found {len(parts)}"
            )
        title, year = split_title_year(parts[1])
        rows.append({"item_id": parts[0], "title": title or None, "year": year, "genres": parts[2]})
    items = items_frame(rows, ["item_id", "title", "year", "genres"])
    return RawData(df, items, "movielens", [data, movies])


# --- ml-latest / ml-latest-small ---------------------------------------------------------
def read_ml_latest(folder: Path) -> RawData:
    """``ratings.csv`` (userId,movieId,rating,timestamp) + ``movies.csv`` (quoted titles)."""
    data = require_file(folder / "ratings.csv", "MovieLens ratings file ratings.csv")
    _check_empty(data)
    header = first_line(data).split(",")
    want = {"userId": "user_id", "movieId": "item_id", "rating": "rating", "timestamp": "timestamp"}
    missing = [c for c in want if c not in header]
    if missing:
        raise MissingColumnError(
            f"{data}: header lacks column(s) {missing} (found {header}); "
            "expected userId,movieId,rating,timestamp"
        )
    lf = pl.scan_csv(data, has_header=True, infer_schema=False, row_index_name=ROW)
    df = collect_checked(
        lf.select(ROW, *want),
        path=data,
        casts=_TYPES,
        required=["userId", "movieId"],
        line_offset=2,
        check_line=lambda s: None,
    ).rename(want)
    movies = require_file(folder / "movies.csv", "MovieLens movie file movies.csv")
    text = "\n".join(decode_lines(movies, "utf-8"))
    reader = csv.reader(io.StringIO(text))
    head = next(reader, [])
    idx = {c: i for i, c in enumerate(head)}
    for col in ("movieId", "title"):
        if col not in idx:
            raise MissingColumnError(
                f"{movies}: header lacks column {col!r} (found {head}); expected movieId,title,genres"
            )
    rows = []
    for rec in reader:
        if not rec:
            continue
        if len(rec) != len(head):
            raise ParseError(
                f"{movies}, line {reader.line_num}: expected {len(head)} comma-separated "
                f"fields (quote titles that contain commas), found {len(rec)}"
            )
        title, year = split_title_year(rec[idx["title"]])
        genres = rec[idx["genres"]] if "genres" in idx else ""
        genres = "" if genres == "(no genres listed)" else genres
        rows.append(
            {"item_id": rec[idx["movieId"]], "title": title or None, "year": year, "genres": genres}
        )
    items = items_frame(rows, ["item_id", "title", "year", "genres"])
    return RawData(df, items, "movielens", [data, movies])
