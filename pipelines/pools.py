"""MLflow entry point ``pools``: train the SASRec retriever and build the candidate pools that
``train`` with the same preset will use (cached under $RECGEN_CACHE_DIR or ~/.cache/recgen).

    mlflow run . -e pools --env-manager local -P preset=cpu
"""

from __future__ import annotations

import argparse

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path")
    p.add_argument("--preset", default="cpu", help="the preset whose pool settings to use")
    p.add_argument("--set", default="", help="TrainConfig overrides 'FIELD=VALUE …' (e.g. pool_size=30)")
    return p.parse_args(argv)


def main(args: argparse.Namespace):
    cfg = S.train_configs("fgrpo", args.preset, dataset=args.dataset, overrides=S.words(args.set))[0]
    return S.pools_step(S.tracker(), cfg)


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
