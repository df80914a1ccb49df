"""``recgen data prepare``: load/prepare a dataset, fill the cache, print its statistics."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recgen.data import KNOWN_FORMATS, DataConfig, Dataset, load_dataset


def _out(text: str) -> None:
    """Command output (results for the user, not logs)."""
    sys.stdout.write(f"{text}\n")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``data`` command group (``data prepare``) to ``subparsers``."""
    parser = subparsers.add_parser("data", help="Prepare and inspect datasets.")
    sub = parser.add_subparsers(dest="data_command", required=True)
    prep = sub.add_parser("prepare", help="Read, preprocess, split and cache a dataset.")
    prep.add_argument(
        "--dataset",
        default="ml-100k",
        help="'ml-100k' (RecBole files in the wheel) or a file/folder path.",
    )
    prep.add_argument(
        "--format",
        default=None,
        choices=sorted(KNOWN_FORMATS),
        help="Input format (default: detect from the file/folder names).",
    )
    prep.add_argument(
        "--min-rating",
        type=float,
        default=None,
        help=DataConfig.__dataclass_fields__["min_rating"].metadata["help"],
    )
    prep.add_argument(
        "--kcore",
        type=int,
        default=None,
        help=DataConfig.__dataclass_fields__["kcore"].metadata["help"],
    )
    prep.add_argument(
        "--min-user-interactions",
        type=int,
        default=3,
        help=DataConfig.__dataclass_fields__["min_user_interactions"].metadata["help"],
    )
    prep.add_argument(
        "--drop-untitled",
        action="store_true",
        help=DataConfig.__dataclass_fields__["drop_untitled"].metadata["help"],
    )
    prep.add_argument(
        "--meta",
        default=None,
        dest="meta_path",
        help=DataConfig.__dataclass_fields__["meta_path"].metadata["help"],
    )
    prep.add_argument(
        "--cache-dir",
        default=None,
        help=DataConfig.__dataclass_fields__["cache_dir"].metadata["help"],
    )
    prep.add_argument("--no-cache", action="store_true", help="Neither read nor write the cache.")
    prep.set_defaults(func=prepare_command)
    return parser


def config_from_args(args: argparse.Namespace) -> DataConfig:
    """The :class:`DataConfig` an argparse namespace describes."""
    return DataConfig(
        min_rating=args.min_rating,
        kcore=args.kcore,
        min_user_interactions=args.min_user_interactions,
        drop_untitled=args.drop_untitled,
        meta_path=args.meta_path,
        cache=not args.no_cache,
        cache_dir=args.cache_dir,
    )


def format_stats(ds: Dataset) -> str:
    """The lines ``data prepare`` prints."""
    s = ds.stats()
    return "\n".join(
        [
            f"dataset:              {ds.name}",
            f"users:                {s['users']:,}",
            f"items:                {s['items']:,}",
            f"interactions:         {s['interactions']:,}",
            f"mean sequence length: {s['mean_sequence_length']:.2f}",
            f"density:              {s['density']:.6f}",
            f"cache:                {ds.cache_path if ds.cache_path else '(disabled)'}"
            + (" (hit)" if ds.from_cache else ""),
        ]
    )


def prepare_command(args: argparse.Namespace) -> int:
    """Handler of ``recgen data prepare``."""
    ds = load_dataset(args.dataset, format=args.format, config=config_from_args(args))
    _out(format_stats(ds))
    return 0
