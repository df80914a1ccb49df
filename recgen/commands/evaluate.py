"""``recgen evaluate``: score models and baselines on the same users, pools and prompts."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate models and baselines (pool or end-to-end protocol)",
        description="Decode every method greedily under the grammar on a seeded subset of users and "
        "write OUT/rankings.parquet (user_id, method, ranked, target, slate, ranking), "
        "OUT/metrics.json and OUT/table.md. A method is 'retriever', 'popularity', 'zero-shot' "
        "(the untrained --base-model) or NAME=FOLDER (a trained run's final/ folder); --model adds a "
        "registered model (models:/NAME@ALIAS, models:/NAME/VERSION, runs:/…) or a recommender bundle "
        "folder. Prompt and pool settings, the dataset and the pools follow the first trained model "
        "(its recgen.json) unless given.",
        epilog="example: recgen evaluate --methods retriever zero-shot fgrpo=runs/fgrpo/final --users 300 --out runs/eval",
    )
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="methods to score (default: retriever popularity zero-shot, or retriever popularity "
                   "when --model is given)")
    p.add_argument("--model", action="append", default=[], metavar="[NAME=]URI_OR_DIR",
                   help="a registered/logged model URI or a bundle folder to score (repeatable)")
    p.add_argument("--dataset", default=None,
                   help="dataset name or path (default: the trained model's, else ml-100k)")
    p.add_argument("--pools", default=None,
                   help="pools folder (default: the pools the trained model was trained on, if present; "
                   "else the cached default pools)")
    p.add_argument("--base-model", default="smollm2-135m", help="model of zero-shot (default: smollm2-135m)")
    p.add_argument("--protocol", choices=["pool", "end-to-end"], default="pool")
    p.add_argument("--split", choices=["valid", "test"], default="test")
    p.add_argument("--users", type=int, default=300, help="seeded subset of users (0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    p.add_argument("--reference", default=None, help="method the paired tests compare against (default: last)")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recgen.eval.runner import EvalJob, run_evaluation

    job = EvalJob(out=args.out, methods=tuple(args.methods or ()), models=tuple(args.model), dataset=args.dataset,
                  pools=args.pools, base_model=args.base_model, protocol=args.protocol, split=args.split,
                  users=args.users, seed=args.seed, dtype=args.dtype, reference=args.reference)
    res = run_evaluation(job)
    sys.stdout.write(res["table"])
    sys.stdout.write(f"\nwrote {res['out']}/rankings.parquet, metrics.json, table.md\n")
    return 0
