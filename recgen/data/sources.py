"""Known formats, format auto-detection from file/folder names, and dispatch to readers."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from recgen.data import amazon, movielens
from recgen.data.raw import RawData
from recgen.data.readutil import first_line
from recgen.errors import DataFileNotFoundError, UnknownFormatError

logger = logging.getLogger(__name__)

#: format name -> what it reads
KNOWN_FORMATS: dict[str, str] = {
    "recbole": "RecBole atomic files <name>.inter (+ <name>.item), tab-separated, typed header",
    "ml-100k-raw": "GroupLens ml-100k: u.data (tab) + u.item (pipe, latin-1)",
    "ml-1m": "GroupLens ml-1m: ratings.dat + movies.dat ('::', latin-1)",
    "ml-latest": "GroupLens ml-latest(-small): ratings.csv + movies.csv (utf-8)",
    "amazon-2018": "Amazon 2018 reviews json lines (+ meta_<Category>.json), plain or .gz",
    "amazon-2023": "Amazon Reviews'23 jsonl, ms timestamps (+ meta_<Category>.jsonl), plain or .gz",
    "amazon-2023-csv": "Amazon Reviews'23 benchmark csv (user_id,parent_asin,rating,timestamp ms)",
}
ALIASES = {"ml-latest-small": "ml-latest", "ml-100k": "ml-100k-raw", "atomic": "recbole"}
#: dataset names that need no path
BUILTIN_NAMES = ("ml-100k",)


@dataclass(frozen=True)
class Source:
    """A resolved input: dataset name, format and the file or folder to read."""

    name: str
    format: str
    path: Path
    builtin: bool = False


def _known() -> str:
    return ", ".join(KNOWN_FORMATS) + f" (aliases: {', '.join(ALIASES)})"


def _peek_json_format(path: Path) -> str | None:
    try:
        obj = json.loads(first_line(path))
    except (json.JSONDecodeError, ValueError):
        return None
    if not isinstance(obj, dict):
        return None
    if "reviewerID" in obj:
        return "amazon-2018"
    if "parent_asin" in obj or "user_id" in obj:
        return "amazon-2023"
    return None


def _detect_file(p: Path) -> str | None:
    n = p.name
    if n == "u.data":
        return "ml-100k-raw"
    if n == "ratings.dat":
        return "ml-1m"
    if n == "ratings.csv":
        return "ml-latest"
    if n.endswith(".inter"):
        return "recbole"
    if n.endswith((".csv", ".csv.gz")):
        return "amazon-2023-csv"
    if n.endswith((".json", ".json.gz", ".jsonl", ".jsonl.gz")):
        peeked = _peek_json_format(p)
        if peeked:
            return peeked
        return "amazon-2023" if ".jsonl" in n else "amazon-2018"
    return None


def detect_format(path: Path) -> str:
    """The format of a file or folder from its names (json: also the first record's keys)."""
    if path.is_file():
        fmt = _detect_file(path)
    else:
        names = {p.name for p in path.iterdir()}
        fmt = next(
            (
                f
                for n, f in (
                    ("u.data", "ml-100k-raw"),
                    ("ratings.dat", "ml-1m"),
                    ("ratings.csv", "ml-latest"),
                )
                if n in names
            ),
            None,
        )
        if fmt is None and any(n.endswith(".inter") for n in names):
            fmt = "recbole"
        if fmt is None:
            for p in sorted(path.iterdir()):
                if p.is_file() and not p.name.startswith("meta_"):
                    fmt = _detect_file(p)
                    if fmt and fmt.startswith("amazon"):
                        break
                    fmt = None
    if fmt is None:
        raise UnknownFormatError(
            f"cannot detect the dataset format of {path}; pass format= one of: {_known()}"
        )
    logger.info("detected format %s for %s", fmt, path)
    return fmt


def resolve(name_or_path: str | Path, format: str | None = None) -> Source:
    """Map a dataset name or path (+ optional format) to a :class:`Source`."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text in BUILTIN_NAMES and not path.exists() and format in (None, text, "recbole"):
        return Source(text, "recbole", movielens.wheel_ml100k(), builtin=True)
    if format is not None:
        format = ALIASES.get(format, format)
        if format not in KNOWN_FORMATS:
            raise UnknownFormatError(f"unknown format {format!r}; known formats: {_known()}")
    if text in BUILTIN_NAMES and not path.exists():
        raise UnknownFormatError(
            f"dataset {text!r} is RecBole's atomic ml-100k; format {format!r} does not apply "
            "(pass a folder path to read GroupLens files)"
        )
    if not path.exists():
        if "/" not in text and "." not in text and format is None:
            raise UnknownFormatError(
                f"unknown dataset {text!r}: not a built-in name ({', '.join(BUILTIN_NAMES)}) "
                f"and no such file or folder; known formats for paths: {_known()}"
            )
        raise DataFileNotFoundError(f"dataset path not found: {path}")
    fmt = format or detect_format(path)
    name = path.name.split(".", 1)[0] if path.is_file() else path.name
    if not fmt.startswith("amazon") and path.is_file():
        name = path.parent.name if fmt != "recbole" else path.stem
    return Source(name, fmt, path.resolve())


def read(source: Source, meta_path: str | None, tmp_root: Path | None) -> RawData:
    """Run the reader of ``source.format``."""
    fmt, path = source.format, source.path
    if fmt.startswith("amazon"):
        return amazon.read_amazon(path, fmt, meta_path, tmp_root)
    folder = path.parent if path.is_file() else path
    if fmt == "recbole":
        return movielens.read_recbole(folder, path.stem if path.is_file() else None)
    reader = {
        "ml-100k-raw": movielens.read_ml100k_raw,
        "ml-1m": movielens.read_ml1m,
        "ml-latest": movielens.read_ml_latest,
    }[fmt]
    return reader(folder)


def input_files(source: Source, meta_path: str | None) -> list[Path]:
    """The files a load will read (for the cache key), without reading them."""
    fmt, path = source.format, source.path
    if fmt.startswith("amazon"):
        reviews = amazon.review_files(path, fmt)
        meta = amazon.find_meta(reviews, meta_path)
        return reviews + ([meta] if meta else [])
    if path.is_file() and fmt != "recbole":
        path = path.parent
    if path.is_file():
        return [p for p in (path, path.with_suffix(".item")) if p.exists()]
    names = {
        "recbole": [p.name for p in sorted(path.glob("*.inter"))[:1]],
        "ml-100k-raw": ["u.data", "u.item"],
        "ml-1m": ["ratings.dat", "movies.dat"],
        "ml-latest": ["ratings.csv", "movies.csv"],
    }[fmt]
    if fmt == "recbole" and names:
        names.append(names[0][: -len(".inter")] + ".item")
    return [path / n for n in names if (path / n).exists()]
