"""``recgen train``: SFT, F-GRPO, GRPO or the decoupled baseline on one dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from recgen.train.config import METHODS, PRESETS, TrainConfig, preset

# options exposed on the command line (the rest: --set FIELD=VALUE)
_FLAGS = ("dataset", "model", "out_dir", "init_from", "steps", "group_size", "lr", "seed", "threads",
          "eval_users", "lam", "beta")


def register(sub: argparse._SubParsersAction) -> None:
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    p = sub.add_parser(
        "train", help="train a policy (sft | fgrpo | grpo | decoupled)",
        description="Train the slate+ranking policy. A preset fixes every setting; flags and "
        "--set FIELD=VALUE override single fields. RL methods start from --init-from (e.g. the "
        "final/ folder of an SFT run) when given.",
        epilog="example: recgen train --method sft --preset cpu --out-dir runs/sft && "
        "recgen train --method fgrpo --preset cpu --init-from runs/sft/final --out-dir runs/fgrpo",
    )
    p.add_argument("--method", choices=METHODS, default="fgrpo", help="training method (default: fgrpo)")
    p.add_argument("--preset", choices=PRESETS, default="cpu", help="settings preset (default: cpu)")
    for name in _FLAGS:
        f = fields[name]
        typ = f.type if f.type in ("int", "float") else "str"
        flags = [f"--{name.replace('_', '-')}"] + (["--out"] if name == "out_dir" else [])
        p.add_argument(*flags, dest=name, default=None,
                       type={"int": int, "float": float}.get(typ, str),
                       help=f"{f.metadata.get('help', '')} (preset value if omitted)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override any TrainConfig field, e.g. --set clip_eps=0.1 (repeatable)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out-dir")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    p.add_argument("--mlflow", action="store_true",
                   help="log the run to MLflow ($MLFLOW_TRACKING_URI, default sqlite:///mlflow.db)")
    p.add_argument("--experiment", default=None, help="MLflow experiment name (default: recgen)")
    p.set_defaults(func=run)


def _parse_sets(items: list[str]) -> dict[str, object]:
    from recgen.errors import ConfigError

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    out: dict[str, object] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or name not in fields:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}")
        default = fields[name].default
        if isinstance(default, bool):
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ConfigError(f"--set {name}={raw!r}: expected true or false")
            out[name] = raw.lower() in ("true", "1")
        elif isinstance(default, int):
            out[name] = int(raw)
        elif isinstance(default, float):
            out[name] = float(raw)
        else:
            out[name] = None if raw.lower() == "none" else raw
    return out


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = {name: getattr(args, name) for name in _FLAGS}
    overrides.update(_parse_sets(args.set))
    if overrides.get("out_dir") is None:
        overrides["out_dir"] = f"runs/{args.method}-{args.preset}"
    return preset(args.preset, args.method, **overrides)


def run(args: argparse.Namespace) -> int:
    from recgen.train.run import main

    cfg = config_from_args(args)
    if args.print_config:
        sys.stdout.write(json.dumps(cfg.to_dict(), indent=2) + "\n")
        return 0
    from recgen.tracking import make_tracker

    tracker = make_tracker(args.mlflow or args.experiment is not None, args.experiment)
    result = main(cfg, resume=args.resume, tracker=tracker)
    sys.stdout.write(f"trained {cfg.method} ({len(result.logs)} steps, {result.seconds:.0f} s); model: {result.final_dir}\n")
    for name, s in result.eval_metrics.items():
        sys.stdout.write(f"  valid {name:12s} {s['mean']:.4f} [{s['lo']:.4f}, {s['hi']:.4f}]\n")
    return 0
