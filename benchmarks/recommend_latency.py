"""Latency of ``Recommender.recommend`` and throughput of ``recommend_batch`` on this CPU.

    python benchmarks/recommend_latency.py [--model smollm2-135m|RUN_DIR/final] [--users 24] [--threads 2]

Per-request p50/p95 over ``--users`` distinct ml-100k users (after one warm-up call; the
decode cache off, so every request decodes) with a
per-stage breakdown (history → pool, prompt, decoding, backfill), side by side with the
step-by-step decode path (``fast_decode=False``) and with fp32; then the throughput of
``recommend_batch`` at batch sizes 1, 8, 32 (users/s), and where the prompt's tokens are
(length, the prefix every user shares). Writes benchmarks/results/recommend_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import recgen.runtime

RESULTS = Path(__file__).parent / "results"
STAGES = ("pool", "prompt", "decode", "backfill")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def per_request(rec, users: list[str], k: int, warmup: str) -> dict:
    """Distinct users, the decode cache off (cold requests)."""
    rec.cache_size = 0
    rec._decoded.clear()
    rec.recommend(warmup, k)
    lat, stages = [], {s: [] for s in STAGES}
    for u in users:
        t = time.perf_counter()
        rec.recommend(u, k)
        lat.append(time.perf_counter() - t)
        for s in STAGES:
            stages[s].append(rec.last_timings[s])
    return {"p50_s": statistics.median(lat), "p95_s": pct(lat, 0.95), "mean_s": statistics.fmean(lat),
            "stage_median_s": {s: statistics.median(v) for s, v in stages.items()}, "latencies_s": lat}


def prompt_facts(rec, users: list[str]) -> dict:
    from recgen.examples import example_seed
    from recgen.policy.prompt import build_prompt

    ids = []
    for u in users:
        h = rec.histories[u]
        q = rec.retriever.encode([h])
        pool, _ = rec.index.search(q, rec.config.pool_size, [set(h)])
        p = build_prompt(rec.policy.tokenizer, [rec.titles[i] for i in h], pool[0], [rec.titles[i] for i in pool[0]],
                         rec.prompt_config, seed=example_seed(rec.config.seed, u, len(h)))
        ids.append(p.input_ids)
    common = 0
    while all(len(x) > common and x[common] == ids[0][common] for x in ids):
        common += 1
    return {"prompt_tokens_median": statistics.median(len(x) for x in ids), "shared_prefix_tokens": common}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m", help="policy: smollm2-135m (zero-shot) or a trained final/")
    ap.add_argument("--users", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--skip-fp32", action="store_true")
    args = ap.parse_args()

    import dataclasses

    from recgen.recommender import Recommender

    recgen.runtime.configure(args.threads)
    rec = Recommender.build(args.model, "ml-100k")
    everyone = list(rec.histories)
    users = everyone[1:: max(1, len(everyone) // args.users)][: args.users]
    warmup = everyone[0]
    out: dict = {"model": args.model, "threads": args.threads, "k": args.k, "users": len(users),
                 "load": os.getloadavg()[0]}
    out.update(prompt_facts(rec, users))
    out["bf16_fast"] = per_request(rec, users, args.k, warmup)
    rec.fast_decode = False
    out["bf16_step_by_step"] = per_request(rec, users, args.k, warmup)
    rec.fast_decode = True
    rec.cache_size = 4096  # a repeated request: the decoded output comes from the cache
    rec.recommend(users[0], args.k)
    t = time.perf_counter()
    for _ in range(20):
        rec.recommend(users[0], args.k)
    out["repeated_request_s"] = (time.perf_counter() - t) / 20
    rec.cache_size = 0
    rec._decoded.clear()
    out["batch"] = {}
    for b in args.batch_sizes:
        batch_users = (users * (1 + (2 * b) // len(users)))[: max(2 * b, len(users))]
        t = time.perf_counter()
        rec.recommend_batch(batch_users, args.k, batch_size=b)
        secs = time.perf_counter() - t
        out["batch"][b] = {"users": len(batch_users), "seconds": secs, "users_per_s": len(batch_users) / secs}
    if not args.skip_fp32:
        cfg32 = dataclasses.replace(rec.config, dtype="fp32")
        from recgen.eval.runner import load_named_policy

        rec32 = Recommender(load_named_policy(args.model, "fp32"), rec.retriever, rec.index, rec.titles,
                            rec.histories, cfg32)
        out["fp32_fast"] = per_request(rec32, users[: max(4, len(users) // 3)], args.k, warmup)
    out["load_after"] = os.getloadavg()[0]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    out["command"] = "python benchmarks/recommend_latency.py " + " ".join(sys.argv[1:])
    out["commit"] = commit
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recommend_latency.json").write_text(json.dumps(out, indent=2) + "\n")
    md = render(out)
    (RESULTS / "recommend_latency.md").write_text(md)
    sys.stdout.write(md)


def render(out: dict) -> str:
    rows = [("bf16, serving decode (jump-forward, allowed-token scoring)", out["bf16_fast"]),
            ("bf16, step-by-step decode (evaluation path)", out["bf16_step_by_step"])]
    if "fp32_fast" in out:
        rows.append(("fp32, serving decode", out["fp32_fast"]))
    md = [f"# Recommender latency: {out['model']}, ml-100k, k={out['k']}, {out['threads']} threads\n",
          f"`{out['command']}` (commit {out['commit']}); load average {out['load']:.1f} → {out['load_after']:.1f}\n",
          f"Prompt: median {out['prompt_tokens_median']} tokens, of which the first {out['shared_prefix_tokens']} "
          "are the same for every user.\n",
          "| path | users | p50 s | p95 s | pool | prompt | decode | backfill |", "|---|---|---|---|---|---|---|---|"]
    for name, r in rows:
        st = r["stage_median_s"]
        md.append(f"| {name} | {len(r['latencies_s'])} | {r['p50_s']:.3f} | {r['p95_s']:.3f} | "
                  + " | ".join(f"{st[s]:.4f}" for s in STAGES) + " |")
    md.append(f"\nA repeated request (decoded output cached): {out['repeated_request_s'] * 1000:.1f} ms.")
    md += ["", "| recommend_batch batch size | users | seconds | users/s |", "|---|---|---|---|"]
    md += [f"| {b} | {r['users']} | {r['seconds']:.1f} | {r['users_per_s']:.2f} |" for b, r in out["batch"].items()]
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
