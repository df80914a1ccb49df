"""Rollout speed: recgen's fast path (sample_groups) vs generate(num_return_sequences=G).

Same run, same model (the converted SmolLM2-135M-Instruct default), same ~600-token prompt,
constrained decoding (N=20, m=10, k=5: ~45-50 forced-length tokens), G=8, bf16 and fp32;
median of --reps timed repetitions after one warm-up. Also: greedy single-request latency
(serving) and a batch of several prompts decoded together vs one prompt at a time.

    python benchmarks/rollout_speed.py                      # writes benchmarks/results/rollout_speed.{json,md}
    python benchmarks/rollout_speed.py --profile bf16       # cProfile of one fast rollout
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import importlib.util
import os
import platform
import pstats
import random
import statistics
import sys
import time
from pathlib import Path

import recgen.runtime  # noqa: F401  (OMP policy + offline mode before torch starts)
from recgen.io import atomic_write_bytes, atomic_write_json
from recgen.policy.grammar import SlateRankGrammar
from recgen.policy.models import load_policy
from recgen.policy.prompt import PromptConfig, build_prompt, format_title
from recgen.policy.rollout import greedy_decode, sample_groups
from recgen.policy.rollout_reference import generate_naive
from recgen.runtime import configure

RESULTS = Path(__file__).parent / "results"


def ml100k_titles() -> dict[str, str]:
    spec = importlib.util.find_spec("recbole")
    assert spec is not None and spec.origin is not None, "recbole is not installed"
    path = Path(spec.origin).parent / "dataset_example" / "ml-100k" / "ml-100k.item"
    rows = [line.rstrip("\n").split("\t") for line in path.open(encoding="utf-8")][1:]
    return {r[0]: format_title(r[1], r[2]) for r in rows}


def make_prompts(tokenizer, n_prompts: int, target_tokens: int) -> list[list[int]]:
    """Prompts of about ``target_tokens`` tokens (history grown until the target is reached)."""
    titles = ml100k_titles()
    ids = sorted(titles, key=int)
    out = []
    for s in range(n_prompts):
        rng = random.Random(s)
        history = [titles[i] for i in rng.sample(ids, 60)]
        pool = rng.sample(ids, 20)
        for hist_len in range(5, 60):
            cfg = PromptConfig(history_len=hist_len)
            p = build_prompt(tokenizer, history, pool, [titles[i] for i in pool], cfg, seed=s)
            if len(p.input_ids) >= target_tokens:
                break
        out.append(p.input_ids)
    return out


def timed(fn, reps: int) -> tuple[float, list[float], object]:
    times, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def bench_dtype(dtype: str, args: argparse.Namespace) -> dict:
    policy = load_policy(dtype=dtype, threads=args.threads)
    grammar = SlateRankGrammar(policy.tokenizer, 20, 10, 5)
    prompts = make_prompts(policy.tokenizer, max(args.batch_prompts, 1), args.prompt_tokens)
    one = prompts[:1]
    g = args.group_size
    res: dict = {"dtype": dtype, "prompt_tokens": len(one[0]), "group_size": g}
    # warm-up (allocator, first-call overheads) for both paths
    sample_groups(policy, one, grammar, group_size=g, seed=0, max_new_tokens=4)
    generate_naive(policy, one, grammar, group_size=g, seed=0, max_new_tokens=4)

    med, times, batch = timed(
        lambda: sample_groups(policy, one, grammar, group_size=g, seed=0), args.reps
    )
    tokens = int(batch.completion_mask.sum())
    res["fast"] = {"median_s": med, "times_s": times, "tokens": tokens, "tok_per_s": tokens / med}
    print(f"[{dtype}] fast   {med:.2f} s  {tokens / med:.1f} tok/s  ({tokens} tokens)", flush=True)

    med, times, batch = timed(
        lambda: generate_naive(policy, one, grammar, group_size=g, seed=0), args.reps
    )
    tokens = int(batch.completion_mask.sum())
    res["naive"] = {"median_s": med, "times_s": times, "tokens": tokens, "tok_per_s": tokens / med}
    print(f"[{dtype}] naive  {med:.2f} s  {tokens / med:.1f} tok/s", flush=True)
    res["speedup"] = res["naive"]["median_s"] / res["fast"]["median_s"]
    print(f"[{dtype}] speedup {res['speedup']:.2f}x", flush=True)

    med, times, out = timed(lambda: greedy_decode(policy, one[0], grammar), args.reps)
    res["greedy_single"] = {"median_s": med, "times_s": times, "tokens": len(out.token_ids)}
    print(f"[{dtype}] greedy single request {med:.2f} s ({len(out.token_ids)} tokens)", flush=True)

    if args.ablation:
        res["ablation"] = {}
        for name, kw in (
            ("no_fast_attention", {"fast_attention": False}),
            ("no_preallocated_cache", {"preallocate_cache": False}),
            ("neither", {"fast_attention": False, "preallocate_cache": False}),
        ):
            med, times, _ = timed(
                lambda kw=kw: sample_groups(policy, one, grammar, group_size=g, seed=0, **kw),
                args.ablation_reps,
            )
            res["ablation"][name] = {"median_s": med, "times_s": times}
            print(f"[{dtype}] fast path, {name}: {med:.2f} s", flush=True)

    if args.batch_prompts > 1 and dtype == args.dtypes[0]:
        b = args.batch_prompts
        med_b, times_b, batch = timed(
            lambda: sample_groups(policy, prompts, grammar, group_size=g, seed=0), 1
        )
        tokens = int(batch.completion_mask.sum())
        med_l, times_l, _ = timed(
            lambda: sample_groups(policy, prompts, grammar, group_size=g, seed=0, max_rows=g), 1
        )
        res["batched"] = {
            "prompts": b,
            "together_s": med_b,
            "one_at_a_time_s": med_l,
            "tokens": tokens,
            "tok_per_s_together": tokens / med_b,
            "tok_per_s_one_at_a_time": tokens / med_l,
        }
        print(f"[{dtype}] {b} prompts together {med_b:.2f} s vs one at a time {med_l:.2f} s")
    return res


def write_markdown(report: dict, path: Path) -> None:
    lines = [
        "# Rollout speed: sample_groups vs generate(num_return_sequences=G)",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']}; torch {report['torch']}, threads {report['threads']}; "
        f"model {report['model']}; G = {report['group_size']}; constrained (N=20, m=10, k=5).",
        f"Median of {report['reps']} repetitions after a short warm-up. Load average at start: "
        f"{report['loadavg_start']}, at end: {report['loadavg_end']} (shared CPU: absolute "
        "times vary with other users; the speedup is measured in the same run).",
        "",
        "| dtype | prompt tok | tokens | fast (s) | fast tok/s | generate (s) | generate tok/s "
        "| speedup | greedy 1 request (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['dtype']} | {r['prompt_tokens']} | {r['fast']['tokens']} | "
            f"{r['fast']['median_s']:.2f} | {r['fast']['tok_per_s']:.1f} | "
            f"{r['naive']['median_s']:.2f} | {r['naive']['tok_per_s']:.1f} | "
            f"{r['speedup']:.2f}x | {r['greedy_single']['median_s']:.2f} |"
        )
    batched = [r for r in report["results"] if "batched" in r]
    if batched:
        lines += [
            "",
            "Several prompts per decode batch (left padding) vs one prompt at a time "
            "(single run each):",
            "",
            "| dtype | prompts x G | together (s) | one at a time (s) |",
            "|---|---|---|---|",
        ]
        for r in batched:
            b = r["batched"]
            lines.append(
                f"| {r['dtype']} | {b['prompts']} x {r['group_size']} | {b['together_s']:.2f} | "
                f"{b['one_at_a_time_s']:.2f} |"
            )
    ablated = [r for r in report["results"] if "ablation" in r]
    if ablated:
        lines += [
            "",
            "Fast path with one optimisation switched off (G = 8, one prompt):",
            "",
            "| dtype | all on (s) | no fast decode attention (s) | no preallocated cache (s) "
            "| neither (s) |",
            "|---|---|---|---|---|",
        ]
        for r in ablated:
            a = r["ablation"]
            lines.append(
                f"| {r['dtype']} | {r['fast']['median_s']:.2f} | "
                f"{a['no_fast_attention']['median_s']:.2f} | "
                f"{a['no_preallocated_cache']['median_s']:.2f} | {a['neither']['median_s']:.2f} |"
            )
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report["notes"]]
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())


def profile(dtype: str, args: argparse.Namespace) -> None:
    policy = load_policy(dtype=dtype, threads=args.threads)
    grammar = SlateRankGrammar(policy.tokenizer, 20, 10, 5)
    one = make_prompts(policy.tokenizer, 1, args.prompt_tokens)
    sample_groups(policy, one, grammar, group_size=args.group_size, seed=0)
    prof = cProfile.Profile()
    prof.enable()
    sample_groups(policy, one, grammar, group_size=args.group_size, seed=0)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(25)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"])
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--batch-prompts", type=int, default=4, help="0/1 = skip the batching test")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--ablation", action="store_true", help="time the fast path minus each fix")
    ap.add_argument("--ablation-reps", type=int, default=1)
    ap.add_argument("--profile", choices=["bf16", "fp32"], default=None)
    ap.add_argument("--out", type=Path, default=RESULTS / "rollout_speed")
    ap.add_argument("--note", action="append", default=[])
    args = ap.parse_args(argv)
    threads = configure(args.threads)
    if args.profile:
        profile(args.profile, args)
        return
    report = {
        "command": "python "
        + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "torch": importlib.metadata.version("torch"),
        "threads": threads,
        "model": "smollm2-135m (converted GGUF Q4_1 -> safetensors)",
        "group_size": args.group_size,
        "reps": args.reps,
        "loadavg_start": os.getloadavg(),
        "results": [],
        "notes": args.note,
    }
    for dtype in args.dtypes:
        report["results"].append(bench_dtype(dtype, args))
    report["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out.with_suffix(".json"), report)
    write_markdown(report, args.out.with_suffix(".md"))
    print(f"wrote {args.out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
