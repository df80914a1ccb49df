"""MLflow entry point ``main``: prepare → pools → train → evaluate → register, one parent run
with a nested run per step.

    mlflow run . -e main --env-manager local -P preset=smoke
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path")
    p.add_argument("--preset", default="cpu", help="smoke, cpu or gpu")
    p.add_argument("--method", default="sft+fgrpo", help="method or chain (sft+fgrpo: SFT warm start, then F-GRPO)")
    p.add_argument("--model", default="", help="model (default: the preset's)")
    p.add_argument("--steps", default="", help="steps of every training stage (default: the preset's)")
    p.add_argument("--out-dir", default="", help="output folder (default runs/main-DATASET-PRESET)")
    p.add_argument("--users", default="300", help="test users evaluated (0 = all)")
    p.add_argument("--set", default="", help="TrainConfig overrides 'FIELD=VALUE …'")
    p.add_argument("--register", default="true", help="register the model at the end (true/false)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> dict:
    from recgen.eval.runner import EvalJob
    from recgen.tracking import dataset_label

    label = dataset_label(args.dataset)
    out = Path(S.opt(args.out_dir) or f"runs/main-{label}-{args.preset}")
    chain = args.method.split(S.CHAIN_SEP)
    cfgs = S.train_configs(args.method, args.preset, dataset=args.dataset, model=S.opt(args.model),
                           out_dir=str(out / chain[0]) if len(chain) == 1 else str(out),
                           steps=S.opt_int(args.steps, "steps"), overrides=S.words(args.set))
    t = S.tracker()
    with t.start_run(f"main-{label}-{args.preset}", tags={"stage": "main", "method": args.method,
                                                           "dataset": label, "preset": args.preset}):
        S.prepare_step(t, args.dataset, cfgs[0].dataset_format)
        S.pools_step(t, cfgs[0])
        results = S.train_step(t, cfgs)
        last = cfgs[-1]
        job = EvalJob(out=str(out / "eval"), methods=("retriever", "popularity", f"{last.method}={results[-1].final_dir}"),
                      dtype=last.dtype, users=S.opt_int(args.users, "users") or 0, reference=last.method)
        evaluation = S.evaluate_step(t, job, name=f"evaluate-{label}-test")
        reg = S.register_step(t, last.out_dir) if S.as_bool(args.register, "register") else None
        if reg is not None:
            t.set_tags({"registry.model_uri": reg.model_uri, "registry.decision": "promoted" if reg.promoted else "kept"})
    return {"train": results, "evaluation": evaluation, "registration": reg}


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
