"""The ``recgen`` console script: one subcommand group per module in recgen/commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

import recgen.runtime  # noqa: F401  (OMP policy + offline HF before torch starts)
from recgen.errors import RecgenError

# Subcommand groups, in the order --help lists them. Each module has register(subparsers).
COMMANDS = ("data", "pools", "train", "evaluate", "report", "register", "recommend")

EPILOG = """\
typical flow on the default data (ml-100k) and model (SmolLM2-135M-Instruct):
  recgen data prepare --dataset ml-100k
  recgen pools build --dataset ml-100k --size 20 --out runs/pools
  recgen train --method fgrpo --preset cpu
Run `recgen COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recgen",
        description="recgen: one LLM that generates a candidate slate and ranks it, "
        "trained end to end with F-GRPO.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging verbosity (default: INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"recgen.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"recgen.commands.{name}":
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except RecgenError as e:
        sys.stderr.write(f"recgen: error: {e}\n")
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
