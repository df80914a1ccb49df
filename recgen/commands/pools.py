"""``recgen pools build``: train (or load) the SASRec retriever and write candidate pools."""

from __future__ import annotations

import argparse
import sys

from recgen.retrieval.pools import PoolBuildJob, PoolConfig, build_pool_files
from recgen.retrieval.sasrec import SASRecConfig


def _out(text: str) -> None:
    """Command output (results for the user, not logs)."""
    sys.stdout.write(f"{text}\n")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("pools", help="candidate pools from the sequential retriever")
    sub = parser.add_subparsers(dest="pools_command", metavar="ACTION")
    b = sub.add_parser(
        "build",
        help="build {train,valid,test}.parquet pools",
        description="Train a SASRec retriever on the train split (or load one), index its item "
        "vectors with FAISS and write one pool per example to OUT/{train,valid,test}.parquet; "
        "the retriever and index go to OUT/retriever.",
    )
    b.add_argument("--dataset", default="ml-100k", help="dataset name or path (default: ml-100k)")
    b.add_argument("--format", default=None, dest="dataset_format",
                   help="file format when it cannot be detected from the file names (see docs/data.md)")
    b.add_argument("--size", type=int, default=20, help="N: candidates per pool (default: 20)")
    b.add_argument(
        "--mode",
        choices=["inject", "retrieve"],
        default="inject",
        help="inject: top N-1 + target when missing; retrieve: plain top N (default: inject)",
    )
    b.add_argument(
        "--train-examples-per-user",
        type=int,
        default=1,
        help="latest train positions per user that become examples (0 = all; default: 1, what training uses)",
    )
    b.add_argument(
        "--retriever", default=None, help="folder of a saved retriever to load (default: train one)"
    )
    b.add_argument(
        "--epochs",
        type=int,
        default=SASRecConfig.epochs,
        help=f"max retriever epochs when training (default: {SASRecConfig.epochs})",
    )
    b.add_argument(
        "--patience",
        type=int,
        default=SASRecConfig.patience,
        help=f"early-stopping patience (default: {SASRecConfig.patience})",
    )
    b.add_argument("--threads", type=int, default=0, help="torch threads (0 = free cores)")
    b.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    b.add_argument(
        "--index",
        choices=["auto", "flat", "ivf", "hnsw"],
        default="auto",
        help="FAISS index kind (default: auto = exact below 100k items)",
    )
    b.add_argument(
        "--splits",
        default="train,valid,test",
        help="comma-separated splits to build (default: train,valid,test)",
    )
    b.add_argument("--out", required=True, help="output folder")
    b.set_defaults(func=_build)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def job_from_args(args: argparse.Namespace) -> PoolBuildJob:
    return PoolBuildJob(
        out=args.out,
        dataset=args.dataset,
        dataset_format=args.dataset_format,
        pools=PoolConfig(
            size=args.size,
            mode=args.mode,
            train_examples_per_user=args.train_examples_per_user,
            seed=args.seed,
        ),
        retriever=args.retriever,
        sasrec=SASRecConfig(
            epochs=args.epochs, patience=args.patience, threads=args.threads, seed=args.seed
        ),
        index_kind=args.index,
        splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()),
    )


def _build(args: argparse.Namespace) -> int:
    summary = build_pool_files(job_from_args(args))
    rep = summary["retriever"]["report"]
    if not summary["retriever"]["loaded_from"]:
        _out(
            f"retriever: best valid NDCG@10 {rep['best_valid_ndcg10']:.4f} at epoch "
            f"{rep['best_epoch']} ({rep['train_seconds']:.1f} s)"
        )
    for split, n in summary["rows"].items():
        _out(
            f"{split}: {n} pools of {summary['size']} ({summary['mode']}), "
            f"retrieve recall@{summary['size']} = {summary['pool_recall'][split]:.4f}"
        )
    _out(f"wrote {args.out}")
    return 0
