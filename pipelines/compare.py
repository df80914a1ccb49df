"""MLflow entry point ``compare``: every method (SFT, then the RL methods from the SFT model)
and the baselines on the same test users, one parent run with a nested run per method, the
evaluation and the report (recgen.report: HTML + markdown, CIs, paired tests).

    mlflow run . -e compare --env-manager local -P preset=smoke -P steps=2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path")
    p.add_argument("--preset", default="cpu", help="smoke, cpu or gpu")
    p.add_argument("--methods", default="sft fgrpo grpo decoupled", help="trained methods")
    p.add_argument("--baselines", default="retriever popularity zero-shot", help="untrained baselines")
    p.add_argument("--warm-start", default="true", help="RL methods start from the SFT model (true/false)")
    p.add_argument("--steps", default="", help="steps of every method (default: the preset's)")
    p.add_argument("--users", default="300", help="test users evaluated (0 = all)")
    p.add_argument("--out-dir", default="", help="output folder (default runs/compare-DATASET-PRESET)")
    p.add_argument("--set", default="", help="TrainConfig overrides 'FIELD=VALUE …'")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    from recgen.eval.runner import EvalJob
    from recgen.tracking import dataset_label
    from recgen.train.run import main as train

    label = dataset_label(args.dataset)
    out = Path(S.opt(args.out_dir) or f"runs/compare-{label}-{args.preset}")
    methods = S.words(args.methods)
    warm = S.as_bool(args.warm_start, "warm_start")
    steps, sets = S.opt_int(args.steps, "steps"), S.words(args.set)

    def config(method: str, init_from: str | None = None):
        return S.train_configs(method, args.preset, dataset=args.dataset, out_dir=str(out / method),
                               init_from=init_from, steps=steps, overrides=sets)[0]

    rl = [m for m in methods if m != "sft"]
    for m in rl:
        config(m)  # reject an unknown method before anything runs
    t = S.tracker()
    with t.start_run(f"compare-{label}-{args.preset}", tags={"stage": "compare", "dataset": label,
                                                              "preset": args.preset, "methods": " ".join(methods)}):
        base = config("sft")
        S.pools_step(t, base)
        trained = {}
        if "sft" in methods or (warm and rl):
            trained["sft"] = train(base, tracker=t)
        start = str(trained["sft"].final_dir) if warm and "sft" in trained else None
        for m in rl:
            trained[m] = train(config(m, start), tracker=t)
        evaluated = [m for m in methods if m in trained]
        reference = "fgrpo" if "fgrpo" in evaluated else (evaluated[-1] if evaluated else None)
        job = EvalJob(out=str(out / "eval"), users=S.opt_int(args.users, "users") or 0, base_model=base.model,
                      dtype=base.dtype, reference=reference,
                      methods=(*S.words(args.baselines), *(f"{m}={trained[m].final_dir}" for m in evaluated)))
        evaluation = S.evaluate_step(t, job, name=f"evaluate-{label}-test")
        report = S.report_step(t, [out / "eval", *(trained[m].out_dir for m in evaluated)], out / "report",
                               reference=reference)
    return {"train": trained, "evaluation": evaluation, "report": report}


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
