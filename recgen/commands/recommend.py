"""``recgen recommend``: the top-k list of one user (or a new history) as a readable table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "recommend", help="recommend k items for a user or a new history",
        description="Load a recommender and print its top-k list: rank, item id, title, the retriever "
        "score and where the item came from (the LLM's ranking, the rest of its slate, or retriever "
        "backfill). --model is an MLflow model URI (models:/recgen-ml-100k@champion, runs:/ID/model), a "
        "folder written by Recommender.save, or a `recgen train` run folder (its final/ model).",
        epilog="examples:\n  recgen recommend --model models:/recgen-ml-100k@champion --user 196 -k 10\n"
        "  recgen recommend --model runs/fgrpo --history 50 172 181 -k 5",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", required=True, help="MLflow model URI, recommender folder or training run folder")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a user id the model knows")
    who.add_argument("--history", nargs="+", metavar="ITEM", help="item ids of a new user, oldest first")
    p.add_argument("-k", type=int, default=10, help="list length (default: 10)")
    p.add_argument("--include-seen", action="store_true", help="allow items the user already interacted with")
    p.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    p.set_defaults(func=run)


def load_recommender(model: str):
    """An MLflow URI, a saved recommender folder or a training run folder."""
    from recgen.errors import ModelNotFoundError
    from recgen.recommender import Recommender
    from recgen.registry import is_model_uri
    from recgen.serving.bundle import MANIFEST

    if is_model_uri(model):
        return Recommender.from_mlflow(model)
    path = Path(model)
    if (path / MANIFEST).is_file():
        return Recommender.load(path)
    if (path / "final").is_dir() and (path / "config.json").is_file():
        return Recommender.from_training_run(path)
    raise ModelNotFoundError(f"--model {model!r} is not an MLflow model URI, a recommender folder (with {MANIFEST}) "
                             "or a finished training run folder (with config.json and final/)")


def format_table(recs) -> str:
    rows = [("rank", "item", "title", "score", "source")]
    rows += [(str(r.rank), r.item_id, r.title if len(r.title) <= 60 else r.title[:59] + "…", f"{r.score:.3f}",
              r.source) for r in recs]
    widths = [max(len(row[c]) for row in rows) for c in range(5)]
    lines = ["  ".join(cell.rjust(w) if c in (0, 3) else cell.ljust(w) for c, (cell, w) in
                       enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    rec = load_recommender(args.model)
    exclude = not args.include_seen
    if args.user is not None:
        recs = rec.recommend(args.user, args.k, exclude_seen=exclude)
    else:
        recs = rec.recommend_for_history(args.history, args.k, exclude_seen=exclude)
    if args.json:
        sys.stdout.write("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in recs))
    else:
        sys.stdout.write(format_table(recs))
    return 0
