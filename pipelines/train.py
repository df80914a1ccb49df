"""MLflow entry point ``train``: one method, or a chain such as ``sft+fgrpo`` (SFT warm start,
then F-GRPO from its final/), each stage a run with params, per-step metrics and the model.

    mlflow run . -e train --env-manager local -P method=sft+fgrpo -P preset=cpu
"""

from __future__ import annotations

import argparse

import _steps as S


def parse(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="sft+fgrpo", help="sft, fgrpo, grpo, decoupled, or a chain like sft+fgrpo")
    p.add_argument("--preset", default="cpu", help="smoke, cpu or gpu")
    p.add_argument("--dataset", default="ml-100k", help="dataset name or path")
    p.add_argument("--model", default="", help="model (default: the preset's)")
    p.add_argument("--out-dir", default="", help="output folder (default runs/METHOD-PRESET; a chain: OUT/STAGE)")
    p.add_argument("--init-from", default="", help="model folder the first stage starts from")
    p.add_argument("--steps", default="", help="steps of every stage (default: the preset's)")
    p.add_argument("--set", default="", help="extra TrainConfig overrides 'FIELD=VALUE FIELD=VALUE'")
    p.add_argument("--resume", default="false", help="continue from the last checkpoints (true/false)")
    return p.parse_args(argv)


def main(args: argparse.Namespace) -> list:
    cfgs = S.train_configs(args.method, args.preset, dataset=args.dataset, model=S.opt(args.model),
                           out_dir=S.opt(args.out_dir), init_from=S.opt(args.init_from),
                           steps=S.opt_int(args.steps, "steps"), overrides=S.words(args.set))
    return S.train_step(S.tracker(), cfgs, resume=S.as_bool(args.resume, "resume"))


if __name__ == "__main__":
    S.entry(lambda: main(parse()))
