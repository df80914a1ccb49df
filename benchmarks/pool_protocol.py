"""Pool-protocol comparison on ml-100k test users: baselines, zero-shot and trained models.

Writes benchmarks/results/<name>.json and .md. Examples:

    # zero-shot baseline (issue: LLM policy) + classic baselines, 300 seeded test users
    python benchmarks/pool_protocol.py --methods retriever popularity zero-shot --users 300 \
        --unconstrained-users 100 --name zero_shot

    # trained models (folders written by `recgen train`), same users and pools
    python benchmarks/pool_protocol.py --methods zero-shot sft=runs/sft/final fgrpo=runs/fgrpo/final \
        grpo=runs/grpo/final decoupled=runs/decoupled/final --reference fgrpo --name methods
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import recgen.runtime  # noqa: F401

RESULTS = Path(__file__).parent / "results"
METRICS = ("recall@1", "recall@3", "recall@5", "ndcg@1", "ndcg@3", "ndcg@5", "coverage", "slate_miss", "rank_drop")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--methods", nargs="+", default=["retriever", "popularity", "zero-shot"])
    ap.add_argument("--model", default="smollm2-135m", help="base model of zero-shot")
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--split", default="test", choices=["valid", "test"])
    ap.add_argument("--unconstrained-users", type=int, default=0,
                    help="also measure the base model's format-failure rate without the grammar")
    ap.add_argument("--reference", default=None, help="method for the paired tests (default: the last one)")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="pool_protocol")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from recgen.data import load_dataset
    from recgen.eval.runner import EvalSetup, evaluate_methods, load_named_policy, parse_method
    from recgen.eval.tables import comparison_table
    from recgen.pipeline import ensure_pools

    t0 = time.perf_counter()
    ds = load_dataset(args.dataset)
    pools = ensure_pools(ds, dataset=args.dataset)
    setup = EvalSetup(users=args.users, split=args.split, seed=args.seed, dtype=args.dtype)
    results = evaluate_methods(ds, pools, args.methods, setup, base_model=args.model)
    reference = args.reference or parse_method(args.methods[-1])[0]
    table = comparison_table(results, METRICS, reference=reference, test_metric="ndcg@5", seed=args.seed)

    extra = {}
    if args.unconstrained_users:
        from recgen.eval.protocols import format_failures
        from recgen.examples import build_examples
        from recgen.pipeline import user_subset
        from recgen.policy.grammar import SlateRankGrammar
        from recgen.policy.prompt import PromptConfig

        policy = load_named_policy(args.model, args.dtype)
        rows = user_subset(pools.inject[args.split], args.unconstrained_users, seed=args.seed)
        ex = build_examples(ds, rows, policy.tokenizer, PromptConfig(), seed=args.seed)
        extra["unconstrained"] = format_failures(policy, SlateRankGrammar(policy.tokenizer, 20, 10, 5), ex)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/pool_protocol.py " + " ".join(sys.argv[1:])
    payload = {
        "date": date.today().isoformat(), "commit": commit, "command": command, "dataset": args.dataset,
        "split": args.split, "users": args.users, "seed": args.seed, "seconds": time.perf_counter() - t0,
        "pools": str(pools.folder),
        "results": {name: r.summary for name, r in results.items()},
        **extra,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    md = [f"# {args.name}: pool protocol, {args.dataset} {args.split}, {args.users} seeded users", "",
          f"`{command}` (commit {commit}, {payload['date']}, {payload['seconds']:.0f} s)", "",
          "Mean [95% bootstrap CI]; best per column in bold; paired test on NDCG@5.", "", table]
    if "unconstrained" in extra:
        u = extra["unconstrained"]
        md += ["", f"Unconstrained greedy decoding ({args.model}): {u['failures']}/{u['users']} outputs fail "
               f"the format ({100 * u['failure_rate']:.1f}%); reasons: {u['reasons']}", "",
               "First outputs:", "", *[f"    {s!r}" for s in u["sample_outputs"]]]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n")
    sys.stdout.write("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
