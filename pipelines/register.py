"""MLflow entry point ``register``: package a training run (policy + retriever + FAISS index +
items) as one pyfunc model ``recgen-<dataset>``, alias ``candidate``; ``champion`` moves to
it when its validation NDCG@5 beats the current champion's.

    mlflow run . -e register --env-manager local -P run_dir=runs/fgrpo-cpu
"""

from __future__ import annotations

import argparse

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="a `recgen train` output folder")
    p.add_argument("--name", default="", help="registered model name (default recgen-<dataset>)")
    p.add_argument("--metric", default="ndcg@5", help="validation metric that decides the champion")
    return p.parse_args(argv)


def main(args: argparse.Namespace):
    return S.register_step(S.tracker(), args.run_dir, name=S.opt(args.name), metric=args.metric)


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
