"""``recgen register``: package a training run as one MLflow model, register it, maybe promote it."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from recgen.registry import RegisterConfig

    helps = {name: f.metadata["help"] for name, f in RegisterConfig.__dataclass_fields__.items()}
    p = sub.add_parser(
        "register", help="register a trained run in the MLflow model registry (aliases candidate/champion)",
        description="Package RUN_DIR's policy with its retriever, FAISS index and item table as one "
        "pyfunc model, register it as recgen-<dataset> with alias 'candidate', and move alias "
        "'champion' to it when its validation NDCG@5 (pool protocol) beats the current champion's. "
        "Tracking store: $MLFLOW_TRACKING_URI (default sqlite:///mlflow.db).",
        epilog="example: recgen register runs/fgrpo-cpu && "
        "recgen evaluate --model models:/recgen-ml-100k@champion --out runs/eval-champion",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help=helps["run_dir"])
    p.add_argument("--name", default=None, help=helps["name"])
    p.add_argument("--metric", default="ndcg@5", help=helps["metric"] + " (default: ndcg@5)")
    p.add_argument("--bundle-dir", default=None, help=helps["bundle_dir"])
    p.add_argument("--eval-users", type=int, default=300, help=helps["eval_users"] + " (default: 300)")
    p.add_argument("--experiment", default=None, help=helps["experiment"] + " (default: recgen)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recgen.registry import RegisterConfig, main

    cfg = RegisterConfig(run_dir=args.run_dir, name=args.name, metric=args.metric, bundle_dir=args.bundle_dir,
                         eval_users=args.eval_users, experiment=args.experiment)
    reg = main(cfg)
    if args.json:
        sys.stdout.write(json.dumps(reg.to_dict(), indent=2) + "\n")
        return 0
    sys.stdout.write(f"registered {reg.name} version {reg.version} (alias candidate): {reg.model_uri}\n")
    sys.stdout.write(f"validation {reg.metric}: {reg.score:.4f}; "
                     + (f"champion v{reg.previous_champion}: {reg.champion_score:.4f}; "
                        if reg.champion_score is not None else "")
                     + ("promoted to champion" if reg.promoted else f"champion stays v{reg.champion_version}")
                     + f" ({reg.reason})\n")
    return 0
