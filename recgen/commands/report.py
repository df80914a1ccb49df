"""``recgen report``: an HTML + markdown comparison report from evaluations and training runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Write OUT/report.html (one self-contained page: figures embedded, no external CSS/JS),
OUT/report.md with its PNG figures next to it, and OUT/summary.json.

Inputs (recognised by content; a folder holding such folders expands to them):
  - an evaluation folder of `recgen evaluate --out DIR` (rankings.parquet, metrics.json)
  - a training run of `recgen train --out-dir DIR` (config.json, metrics.jsonl, eval/)

The report holds: the comparison table (mean, 95% CI, paired test against the reference,
best per column in bold) per protocol and split, the slate-miss / rank-drop split, the
pools' recall, per-phase training rewards and curves, and dataset statistics. Per-user
metrics are recomputed from rankings.parquet."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="HTML + markdown comparison report of evaluations and training runs",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example: recgen report runs/eval runs/cmp40 --out runs/report",
    )
    p.add_argument("inputs", nargs="+", metavar="RUN_OR_DIR", type=Path,
                   help="evaluation folders, training run folders, or folders holding them")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--reference", default=None,
                   help="method the paired tests compare against (default: fgrpo where present, "
                        "else the first method)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from recgen.report import write_report

    res = write_report(args.inputs, args.out, reference=args.reference, seed=args.seed)
    for comp in res["summary"]["comparisons"]:
        best = comp["best"].get(comp["primary"], [])
        sys.stdout.write(f"{comp['title']}: {len(comp['methods'])} methods, reference {comp['reference']}, "
                         f"best {comp['primary']}: {', '.join(best) or '(tie)'}\n")
    sys.stdout.write(f"wrote {res['html']}, {res['markdown']} ({len(res['figures'])} figures)\n")
    return 0
