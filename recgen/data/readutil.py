"""Shared helpers for the raw-format readers: files, gzip, decoding, checked casts.

Memory strategy (for multi-GB Amazon dumps): every large file is read with polars'
lazy scanners (``scan_csv`` / ``scan_ndjson``) projected to the 4-6 needed fields, all
read as strings, cast inside the lazy query, and collected once with the streaming
engine, so only the typed needed columns are ever materialised. polars cannot *scan*
a gzip file (only read it eagerly, holding the decompressed text and the frame at the
same time), so a ``.gz`` input is first stream-decompressed (1 MiB chunks) into a
temporary file under the cache root and scanned from there; the temporary file is
deleted right after. This costs disk (the decompressed size) instead of RAM.
When a cast fails, the (rare) error path scans again to report the first bad line.
Small files (MovieLens item tables, latin-1) are decoded and parsed in Python.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl

from recgen.errors import (
    DataFileNotFoundError,
    EncodingError,
    MissingColumnError,
    ParseError,
)

logger = logging.getLogger(__name__)

ROW = "__row"


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else DataFileNotFoundError saying what was expected."""
    if not path.is_file():
        raise DataFileNotFoundError(f"{what} not found: expected a file at {path}")
    return path


@contextlib.contextmanager
def plain_path(path: Path, tmp_root: Path | None = None) -> Iterator[Path]:
    """Yield ``path``, or for ``*.gz`` a stream-decompressed temporary copy of it."""
    if path.suffix != ".gz":
        yield path
        return
    if tmp_root is not None:
        tmp_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="recgen-gunzip-", dir=tmp_root) as tmp:
        out = Path(tmp) / path.name[: -len(".gz")]
        logger.info("decompressing %s to %s", path, out)
        try:
            with gzip.open(path, "rb") as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as e:
            raise ParseError(f"{path}: not a readable gzip file ({e})") from e
        yield out


def open_bytes(path: Path):
    """Open a file (gzip-transparent) for binary reading."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def first_line(path: Path) -> str:
    """The first line of a (possibly gzipped) text file, decoded leniently."""
    try:
        with open_bytes(path) as fh:
            return fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    except (OSError, EOFError) as e:
        raise ParseError(f"{path}: cannot read the first line ({e})") from e


def decode_lines(path: Path, encoding: str) -> list[str]:
    """All lines of a small text file decoded with ``encoding`` (EncodingError names the line)."""
    lines = []
    with open_bytes(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                lines.append(raw.decode(encoding).rstrip("\r\n"))
            except UnicodeDecodeError as e:
                raise EncodingError(
                    f"{path}, line {lineno}: not valid {encoding} ({e.reason} at byte {e.start})"
                ) from e
    return lines


def locate_bad_line(path: Path, check: Callable[[str], str | None]) -> tuple[int, str] | None:
    """First (line number, reason) for which ``check(decoded_line)`` returns a reason.

    Lines that are not UTF-8 give the reason "not valid UTF-8". Used on error paths only.
    """
    with open_bytes(path) as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return lineno, f"not valid UTF-8 ({e.reason} at byte {e.start})"
            reason = check(text.rstrip("\r\n"))
            if reason:
                return lineno, reason
    return None


def raise_read_error(path: Path, err: Exception, check: Callable[[str], str | None]) -> None:
    """Turn a polars read failure into EncodingError/ParseError naming the file and line."""
    found = locate_bad_line(path, check)
    if found is None:
        raise ParseError(f"{path}: cannot be parsed ({err})") from err
    lineno, reason = found
    kind = EncodingError if "UTF-8" in reason else ParseError
    raise kind(f"{path}, line {lineno}: {reason}") from err


def collect_checked(
    lf: pl.LazyFrame,
    *,
    path: Path,
    casts: dict[str, tuple[pl.DataType, str]],
    required: list[str],
    line_offset: int,
    check_line: Callable[[str], str | None],
    field_word: str = "column",
) -> pl.DataFrame:
    """Collect ``lf`` (string columns + a ``__row`` index) with checked casts.

    ``casts`` maps column -> (dtype, description of what was expected); ``required`` are
    columns that must be non-null. Float columns are cast via Float64 (so "3" and "3.0"
    both parse); Int64 via Float64 too (timestamps written as floats), then rounded.
    A failing value raises ParseError naming file, line (``__row + line_offset``), column,
    value and the expected type; a read failure is located with ``check_line``.
    """
    exprs = []
    for col, (dtype, _) in casts.items():
        as_float = pl.col(col).str.strip_chars().cast(pl.Float64, strict=False)
        exprs.append((as_float.round(0) if dtype == pl.Int64 else as_float).cast(dtype).alias(col))
    typed = lf.with_columns(exprs)
    try:
        df = typed.collect(engine="streaming")
    except pl.exceptions.PolarsError as e:
        raise_read_error(path, e, check_line)
        raise  # unreachable
    if df.height == 0:
        return df.drop(ROW)
    for col in required + list(casts):
        nulls = df[col].null_count()
        if nulls == 0:
            continue
        if nulls == df.height and lf.select(pl.col(col).is_null().all()).collect().item():
            raise MissingColumnError(
                f"{path}: {field_word} {col!r} is missing (absent or null in every record)"
            )
        row = df.filter(pl.col(col).is_null())[ROW][0]
        raw = lf.filter(pl.col(ROW) == row).select(col).collect()[col][0]
        lineno = row + line_offset
        if raw is None or raw.strip() == "":
            raise ParseError(f"{path}, line {lineno}: {field_word} {col!r} is missing or empty")
        _, expected = casts[col]
        raise ParseError(
            f"{path}, line {lineno}: {field_word} {col!r} has value {raw!r}, expected {expected}"
        )
    return df.drop(ROW)
