"""MLflow entry point ``prepare``: load, preprocess, split and cache a dataset; log its statistics.

    mlflow run . -e prepare --env-manager local -P dataset=/data/All_Beauty.jsonl
"""

from __future__ import annotations

import argparse

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path")
    p.add_argument("--format", default="", help="input format for a path (default: detect)")
    return p.parse_args(argv)


def main(args: argparse.Namespace):
    return S.prepare_step(S.tracker(), args.dataset, S.opt(args.format))


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
