"""RL update cost: G rows each repeating the prompt vs the prompt encoded once (shared prefix).

    python benchmarks/update_speed.py [--model smollm2-135m] [--reps 3] [--threads 2]

One forward + backward of the F-GRPO loss over one group (G = 8 completions of ~50 tokens,
a ~600-token prompt), LoRA, bf16; the two paths alternate within one run, median of
``--reps``. Writes benchmarks/results/update_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import recgen.runtime

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=600)
    ap.add_argument("--completion-tokens", type=int, default=50)
    ap.add_argument("--group", type=int, default=8)
    args = ap.parse_args()

    import torch

    from recgen.policy.logprobs import completion_logprobs, group_logprobs
    from recgen.policy.models import LoraConfig, build_tiny_policy, load_policy
    from recgen.train.objectives import fgrpo_loss
    from recgen.train.rl import enable_gradient_checkpointing

    recgen.runtime.configure(args.threads)
    torch.manual_seed(0)
    lora = LoraConfig(rank=16, alpha=32.0)
    policy = build_tiny_policy(lora=lora) if args.model == "tiny" else load_policy(args.model, args.dtype, lora=lora)
    model = policy.model.train()
    g, t = args.group, args.completion_tokens
    prompt = torch.randint(1000, 20000, (args.prompt_tokens,)).tolist()
    comp = torch.randint(1000, 20000, (g, t))
    mask = torch.ones(g, t, dtype=torch.bool)
    gen = torch.zeros(g, t, dtype=torch.bool)
    gen[:, : t // 2] = True
    adv = torch.linspace(-1, 1, g)

    def step(kind: str) -> float:
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        if kind == "shared":
            logp, _ = group_logprobs(model, prompt, comp, mask, pad_id=2)
        else:
            logp, _ = completion_logprobs(model, [prompt] * g, comp, mask, pad_id=2)
        loss, _ = fgrpo_loss(logp, logp.detach(), gen, mask & ~gen, adv, adv)
        loss.backward()
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"repeated": [], "repeated+ckpt": [], "shared": []}
    step("shared")  # warm-up
    for _ in range(args.reps):
        for kind in ("repeated", "shared"):
            times[kind].append(step(kind))
    enable_gradient_checkpointing(model)  # what the loop used before shared_prefix
    for _ in range(args.reps):
        times["repeated+ckpt"].append(step("repeated"))
    med = {k: statistics.median(v) for k, v in times.items()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    command = "python benchmarks/update_speed.py " + " ".join(sys.argv[1:])
    out = {"command": command, "commit": commit, "model": args.model, "dtype": args.dtype, "group": g,
           "prompt_tokens": args.prompt_tokens, "completion_tokens": t, "threads": args.threads,
           "times_s": times, "median_s": med, "speedup_vs_repeated": med["repeated"] / med["shared"],
           "speedup_vs_repeated_ckpt": med["repeated+ckpt"] / med["shared"],
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "update_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    md = (f"# RL update: fwd+bwd of one group (G={g}, {args.prompt_tokens}-token prompt, {t}-token completions), "
          f"{args.model} {args.dtype} LoRA, {args.threads} threads\n\n`{command}` (commit {commit})\n\n"
          "| path | median s | runs |\n|---|---|---|\n"
          + "".join(f"| {k} | {med[k]:.2f} | {', '.join(f'{x:.2f}' for x in v)} |\n" for k, v in times.items())
          + f"\nshared prefix: {out['speedup_vs_repeated']:.2f}x vs repeated prompts, "
            f"{out['speedup_vs_repeated_ckpt']:.2f}x vs repeated prompts with gradient checkpointing.\n")
    (RESULTS / "update_speed.md").write_text(md)
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
