"""``recgen evaluate``: score models and baselines on the same users, pools and prompts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate models and baselines (pool or end-to-end protocol)",
        description="Decode every method greedily under the grammar on a seeded subset of users and "
        "write OUT/rankings.parquet (user_id, method, ranked, target, slate, ranking), "
        "OUT/metrics.json and OUT/table.md. A method is 'retriever', 'popularity', 'zero-shot' "
        "(the untrained --base-model) or NAME=FOLDER (a trained run's final/ folder).",
        epilog="example: recgen evaluate --methods retriever zero-shot fgrpo=runs/fgrpo/final --users 300 --out runs/eval",
    )
    p.add_argument("--methods", nargs="+", default=["retriever", "popularity", "zero-shot"], metavar="METHOD")
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path (default: ml-100k)")
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
    import polars as pl

    from recgen.data import load_dataset
    from recgen.eval.runner import EvalSetup, evaluate_methods, parse_method
    from recgen.eval.tables import comparison_table
    from recgen.io import atomic_write_json
    from recgen.pipeline import ensure_pools

    ds = load_dataset(args.dataset)
    pools = ensure_pools(ds, dataset=args.dataset)
    setup = EvalSetup(protocol=args.protocol, split=args.split, users=args.users, seed=args.seed, dtype=args.dtype)
    results = evaluate_methods(ds, pools, args.methods, setup, base_model=args.base_model)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pl.concat([r.frame for r in results.values()]).write_parquet(out / "rankings.parquet")
    atomic_write_json(out / "metrics.json", {
        "protocol": args.protocol, "split": args.split, "users": args.users, "seed": args.seed,
        "methods": {name: r.summary for name, r in results.items()}})
    metrics = list(next(iter(results.values())).summary)
    reference = args.reference or parse_method(args.methods[-1])[0]
    table = comparison_table(results, metrics, reference=reference,
                             test_metric="ndcg@5" if args.protocol == "pool" else "ndcg@10", seed=args.seed)
    (out / "table.md").write_text(table)
    sys.stdout.write(table)
    sys.stdout.write(f"\nwrote {out}/rankings.parquet, metrics.json, table.md\n")
    return 0
