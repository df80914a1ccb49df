"""Training curves and cost of the runs under one folder (written by `recgen train`).

    python benchmarks/training_curves.py runs/cmp --out benchmarks/results

Reads RUN/*/metrics.jsonl; writes [PREFIX]training_curves.png (per-phase rewards per step of every
RL run, SFT loss), training_cost.json and training_cost.md (seconds per step, rollout vs
update share, peak memory).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", type=Path)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--prefix", default="", help="prefix of the output file names")
    args = ap.parse_args()
    runs = {p.parent.name: load(p) for p in sorted(args.runs.glob("*/metrics.jsonl"))}
    rl = {k: v for k, v in runs.items() if v and "reward_gen" in v[0]}
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, (name, logs) in enumerate(rl.items()):
        steps = [r["step"] for r in logs]
        for ax, key in ((axes[0], "reward_gen"), (axes[1], "reward_rank")):
            values = [r[key] for r in logs]
            color = f"C{i}"
            ax.plot(steps, values, marker=".", alpha=0.35, color=color)
            w = min(5, len(values))  # trailing mean over w steps: one step holds only a few prompts
            smooth = [sum(values[max(0, j - w + 1): j + 1]) / len(values[max(0, j - w + 1): j + 1])
                      for j in range(len(values))]
            ax.plot(steps, smooth, color=color, label=f"{name} (mean of last {w} steps)")
    axes[0].set_title("slate coverage reward (R_gen), mean over rollouts")
    axes[1].set_title("ranking NDCG reward (R_rank), mean over rollouts")
    for name, logs in runs.items():
        if logs and "loss" in logs[0] and "reward_gen" not in logs[0]:
            axes[2].plot([r.get("step", i + 1) for i, r in enumerate(logs)], [float(r["loss"]) for r in logs], label=name)
    axes[2].set_title("SFT loss")
    for ax in axes:
        ax.set_xlabel("step")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / f"{args.prefix}training_curves.png", dpi=110)

    cost = {}
    for name, logs in rl.items():
        step_s = [r["step_s"] for r in logs]
        roll = sum(r["rollout_s"] for r in logs) / sum(step_s)
        cost[name] = {"steps": len(logs), "median_step_s": statistics.median(step_s),
                      "rollout_share": roll, "update_share": 1 - roll,
                      "peak_rss_mb": max(r["peak_rss_mb"] for r in logs),
                      "median_tokens_per_s": statistics.median(r["tokens_per_s"] for r in logs)}
    (args.out / f"{args.prefix}training_cost.json").write_text(json.dumps(cost, indent=2) + "\n")
    lines = ["| run | steps | median s/step | rollout share | update share | peak RSS (MB) | tokens/s |",
             "|---|---|---|---|---|---|---|"]
    for name, c in cost.items():
        lines.append(f"| {name} | {c['steps']} | {c['median_step_s']:.1f} | {c['rollout_share']:.0%} | "
                     f"{c['update_share']:.0%} | {c['peak_rss_mb']:.0f} | {c['median_tokens_per_s']:.1f} |")
    (args.out / f"{args.prefix}training_cost.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
