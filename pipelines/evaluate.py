"""MLflow entry point ``evaluate``: baselines and models (run folders, bundles, or registered
models such as models:/recgen-ml-100k@champion) on the same users, pools and prompts.

    mlflow run . -e evaluate --env-manager local -P model=models:/recgen-ml-100k@champion
"""

from __future__ import annotations

import argparse

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default="retriever popularity", help="specs: retriever popularity zero-shot NAME=FOLDER")
    p.add_argument("--model", default="", help="model URIs or bundle folders ([NAME=]URI, space separated)")
    p.add_argument("--dataset", default="", help="dataset (default: the model's, else ml-100k)")
    p.add_argument("--base-model", default="smollm2-135m", help="model of zero-shot")
    p.add_argument("--protocol", default="pool", help="pool or end-to-end")
    p.add_argument("--split", default="test", help="valid or test")
    p.add_argument("--users", default="300", help="seeded subset of users (0 = all)")
    p.add_argument("--out", default="runs/eval", help="output folder")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    from recgen.eval.runner import EvalJob

    job = EvalJob(out=args.out, methods=tuple(S.words(args.methods)), models=tuple(S.words(args.model)),
                  dataset=S.opt(args.dataset), base_model=args.base_model, protocol=args.protocol,
                  split=args.split, users=S.opt_int(args.users, "users") or 0)
    return S.evaluate_step(S.tracker(), job)


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
