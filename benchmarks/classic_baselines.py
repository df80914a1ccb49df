"""Classic baselines on recgen's ml-100k split: full-catalogue test NDCG@10 / Recall@10 / MRR@10.

Models: popularity (train counts), RecBole SASRec / GRU4Rec / BPR (trained on recgen's
exact split via benchmark files, early stopping on valid), and recgen's own SASRec
retriever (``recgen.retrieval``, its default config). Every model ranks the full
catalogue for each test user with the user's train + valid items excluded; metrics come
from ``recgen.eval.metrics`` with 95% bootstrap CIs over users
(``recgen.eval.significance.bootstrap_ci``).

Results are merged into ``<out>.json`` (one entry per model, replaced when re-run) and
``<out>.md`` is regenerated from all entries, so models can be run in separate short runs:

    python benchmarks/classic_baselines.py --models pop,bpr --bpr-epochs 100
    python benchmarks/classic_baselines.py --models sasrec --sasrec-epochs 3

With ``--rankings-out DIR`` every model's lists also go to DIR in the files of
``recgen evaluate --out`` (rankings.parquet, metrics.json, table.md; end-to-end protocol with
the full catalogue as the pool, see ``recgen.baselines.rankings``), merged model by model,
so that ``recgen report DIR`` compares them. Method names there: ``RANKING_NAMES``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import recgen.runtime  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE before torch starts)

logger = logging.getLogger("benchmarks.classic_baselines")

MODELS = ("pop", "bpr", "gru4rec", "sasrec", "recgen-sasrec")
RECBOLE_NAMES = {"bpr": "BPR", "gru4rec": "GRU4Rec", "sasrec": "SASRec"}
METRICS = ("ndcg@10", "recall@10", "mrr@10")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "classic_baselines"
# method names in --rankings-out (distinct from `recgen evaluate`'s pool-ordering baselines
# "popularity" / "retriever", which order a 20-item pool instead of the catalogue)
RANKING_NAMES = {
    "pop": "popularity-full",
    "recgen-sasrec": "recgen-sasrec-full",
    "bpr": "recbole-bpr",
    "gru4rec": "recbole-gru4rec",
    "sasrec": "recbole-sasrec",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="ml-100k", help="recgen.data.load_dataset name or path")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma list of {MODELS}")
    p.add_argument("--bpr-epochs", type=int, default=100)
    p.add_argument("--gru4rec-epochs", type=int, default=5)
    p.add_argument("--sasrec-epochs", type=int, default=3)
    for key in RECBOLE_NAMES:
        p.add_argument(
            f"--{key}-batch-size",
            type=int,
            default=2048,
            help=f"RecBole {RECBOLE_NAMES[key]} train_batch_size (RecBole default 2048)",
        )
    p.add_argument(
        "--recgen-sasrec-epochs",
        type=int,
        default=0,
        help="0 = the retriever's default (SASRecConfig().epochs)",
    )
    p.add_argument(
        "--recgen-sasrec-from",
        type=Path,
        default=None,
        help="load this saved recgen retriever (e.g. a pool folder's inject/retriever) "
        "instead of training one (its train s is then not measured: shown as -)",
    )
    p.add_argument(
        "--stopping-step",
        type=int,
        default=10,
        help="RecBole early stopping: epochs without valid NDCG@10 gain",
    )
    p.add_argument(
        "--max-train-seconds",
        type=float,
        default=None,
        help="RecBole models: no new epoch once it would end past this training time",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument("--top-n", type=int, default=100, help="ranking length kept per user")
    p.add_argument("--n-resamples", type=int, default=10_000, help="bootstrap resamples")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output path without suffix")
    p.add_argument(
        "--rankings-out",
        type=Path,
        default=None,
        help="also write the rankings as a `recgen evaluate --out` folder (for `recgen report`)",
    )
    args = p.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        p.error(f"unknown model(s) {bad}; choose from {MODELS}")
    return args


def users_and_targets(ds: Any) -> tuple[list[str], list[str]]:
    users = ds.test["user_id"].to_list()
    return users, ds.test["item_id"].to_list()


def run_pop(ds: Any, args: argparse.Namespace) -> dict[str, Any]:
    from recgen.baselines import Popularity

    users, _ = users_and_targets(ds)
    start = time.perf_counter()
    pop = Popularity().fit(ds.train, catalogue=ds.item_ids)
    secs = time.perf_counter() - start
    ranked = pop.rank([ds.history(u, "test") for u in users], n=args.top_n)
    return {
        "rankings": dict(zip(users, ranked, strict=True)),
        "train_seconds": secs,
        "epochs": None,
        "catalogue_size": len(ds.item_ids),
    }


def run_recbole_model(key: str, ds: Any, args: argparse.Namespace) -> dict[str, Any]:
    from recgen.baselines import RecBoleConfig, run_recbole

    cfg = RecBoleConfig(
        model=RECBOLE_NAMES[key],
        epochs=getattr(args, f"{key}_epochs"),
        train_batch_size=getattr(args, f"{key}_batch_size"),
        stopping_step=args.stopping_step,
        seed=args.seed,
        threads=args.threads,
        top_n=args.top_n,
        max_train_seconds=args.max_train_seconds,
    )
    res = run_recbole(ds, cfg)
    return {
        "rankings": res.rankings,
        "train_seconds": res.train_seconds,
        "epochs": {
            "budget": cfg.epochs,
            "run": res.epochs_run,
            "best": None if res.best_epoch is None else res.best_epoch + 1,
        },
        "valid_curve_ndcg@10": res.valid_curve,
        "catalogue_size": res.catalogue_size,
        "recbole_best_valid": res.best_valid,
        "stop_reason": res.stop_reason
        + (" (last epoch cut short)" if res.last_epoch_cut_short else ""),
        "train_batch_size": cfg.train_batch_size,
    }


def run_recgen_sasrec(ds: Any, args: argparse.Namespace) -> dict[str, Any]:
    from recgen.retrieval import SASRec, SASRecConfig

    loaded_from = None
    if args.recgen_sasrec_from is not None:
        model = SASRec.load(args.recgen_sasrec_from)
        if set(model.item_ids) != set(ds.item_ids):
            raise RuntimeError(
                f"{args.recgen_sasrec_from}: the retriever's items are not the catalogue"
            )
        cfg, secs, loaded_from = model.cfg, None, str(args.recgen_sasrec_from)
    else:
        kw: dict[str, Any] = {"threads": args.threads}
        if args.recgen_sasrec_epochs:
            kw["epochs"] = args.recgen_sasrec_epochs
        cfg = SASRecConfig(**kw)
        start = time.perf_counter()
        model = SASRec.fit(ds, cfg)
        secs = time.perf_counter() - start
    users, _ = users_and_targets(ds)
    item_ids = np.asarray(model.item_ids)
    rankings: dict[str, list[str]] = {}
    for b in range(0, len(users), 256):
        chunk = users[b : b + 256]
        hists = [ds.history(u, "test") for u in chunk]
        scores = model.score(hists)
        for row, hist in enumerate(hists):
            scores[row, [model.item_index[i] for i in set(hist)]] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, : args.top_n]
        for row, u in enumerate(chunk):
            keep = top[row][np.isfinite(scores[row, top[row]])]
            rankings[u] = item_ids[keep].tolist()
    rep = model.report
    return {
        "rankings": rankings,
        "train_seconds": secs,
        "epochs": {"budget": cfg.epochs, "run": rep.epochs_run, "best": rep.best_epoch},
        "valid_curve_ndcg@10": list(rep.valid_ndcg10),
        "catalogue_size": len(item_ids),
        **({"loaded_from": loaded_from} if loaded_from else {}),
    }


def score(ds: Any, rankings: dict[str, list[str]], n_resamples: int) -> dict[str, Any]:
    from recgen.eval.metrics import evaluate_rankings
    from recgen.eval.significance import bootstrap_ci

    users, targets = users_and_targets(ds)
    missing = [u for u in users if u not in rankings]
    if missing:
        raise RuntimeError(f"{len(missing)} test users have no ranking, e.g. {missing[:3]}")
    seen_hits = sum(1 for u in users if set(rankings[u]) & set(ds.history(u, "test")))
    if seen_hits:
        raise RuntimeError(f"{seen_hits} rankings contain seen items")
    per_user = evaluate_rankings(
        [rankings[u] for u in users],
        [{t} for t in targets],
        ks=(10,),
        metrics=("ndcg", "recall", "mrr"),
    )
    out: dict[str, Any] = {"n_users": len(users)}
    for m in METRICS:
        ci = bootstrap_ci(per_user[m], n_resamples=n_resamples, seed=0)
        out[m] = {"mean": ci.mean, "lo": ci.lo, "hi": ci.hi}
    return out


def write_markdown(path: Path, data: dict[str, Any]) -> None:
    lines = [
        "# Classic baselines (full-catalogue, seen items excluded)",
        "",
        f"Dataset: {data.get('dataset')}, recgen's leave-one-out split (one test item per user).",
        "Every model ranks the full catalogue with the user's train + valid items removed;",
        "metrics from `recgen.eval.metrics`, 95% percentile-bootstrap CIs over users",
        "(`recgen.eval.significance.bootstrap_ci`, 10k resamples, seed 0).",
        "",
        "| model | NDCG@10 [95% CI] | Recall@10 [95% CI] | MRR@10 [95% CI] "
        "| train s | epochs run / budget (best) | stop | batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, e in sorted(data["models"].items(), key=lambda kv: -kv[1]["ndcg@10"]["mean"]):
        cells = [f"{e[m]['mean']:.4f} [{e[m]['lo']:.4f}, {e[m]['hi']:.4f}]" for m in METRICS]
        ep = e.get("epochs")
        ep_s = "-" if not ep else f"{ep['run']} / {ep['budget']} ({ep['best']})"
        stop = e.get("stop_reason")
        if not stop and ep:
            stop = "early_stopping" if ep["run"] < ep["budget"] else "epochs"
        tail = [
            "-" if e["train_seconds"] is None else f"{e['train_seconds']:.1f}",
            ep_s,
            stop or "-",
            str(e.get("train_batch_size") or "-"),
        ]
        lines.append(f"| {name} | " + " | ".join(cells + tail) + " |")
    lines += ["", "Commands (each run replaces only its own models' rows):", ""]
    for name, e in sorted(data["models"].items()):
        lines.append(f"- {name} ({e['finished_utc']} UTC): `{e['command']}`")
    lines += [
        "",
        "Notes:",
        "- train s: wall time of fitting incl. per-epoch validation, 1 torch thread, on a",
        "  2-core CPU shared with other jobs (load average 5-7), so times are inflated.",
        "- RecBole models: recbole 1.2.1 default hyper-parameters except the train batch",
        "  size shown; trained on recgen's exact split written as benchmark files; early",
        "  stopping on RecBole's own valid NDCG@10 (10 epochs patience; for sequential models",
        "  RecBole's validation does not mask seen items); the best epoch is reloaded.",
        "  stop = why training ended: epochs (budget used), early_stopping, or time_budget",
        "  (`--max-train-seconds`: no new epoch once it would end past that time, and an",
        "  epoch still running at the limit is cut short, then validated as usual).",
        "- RecBole's sequential models train on one row per prefix (~97k rows per epoch,",
        "  150-440 s per epoch here under load), so only one or two epochs fit the time",
        "  budget: their rows are undertrained baselines, not converged ones. BPR and the",
        "  recgen retriever are cheap per epoch; their epoch counts are in the table.",
        "- recgen SASRec retriever: `recgen.retrieval.SASRec` with its default config, scores",
        "  = inner product of the history vector with every item vector.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


def write_evaluate_folder(
    args: argparse.Namespace,
    ds: Any,
    key: str,
    rankings: dict[str, list[str]],
    entry: dict[str, Any],
) -> None:
    """Add (or replace) this model's lists in the ``--rankings-out`` evaluation folder."""
    from recgen.baselines.rankings import write_rankings

    users, targets = users_and_targets(ds)
    name = RANKING_NAMES[key]
    details = {k: v for k, v in entry.items() if k not in METRICS and k != "n_users"}
    write_rankings(
        args.rankings_out,
        {name: rankings},
        users,
        dict(zip(users, targets, strict=True)),
        dataset=args.dataset,
        split="test",
        seed=0,
        details={name: {"model": key, "top_n": args.top_n, **details}},
        reference="recgen-sasrec-full",
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from recgen.data import load_dataset
    from recgen.io import atomic_write_json

    ds = load_dataset(args.dataset)
    json_path, md_path = args.out.with_suffix(".json"), args.out.with_suffix(".md")
    data: dict[str, Any] = {"dataset": args.dataset, "models": {}}
    if json_path.is_file():
        data = json.loads(json_path.read_text())
        if data.get("dataset") != args.dataset:
            data = {"dataset": args.dataset, "models": {}}
    command = "python benchmarks/classic_baselines.py " + shlex.join(sys.argv[1:])
    for key in args.models:
        logger.info("=== %s", key)
        if key == "pop":
            res = run_pop(ds, args)
        elif key == "recgen-sasrec":
            res = run_recgen_sasrec(ds, args)
        else:
            res = run_recbole_model(key, ds, args)
        rankings = res.pop("rankings")
        entry = {
            **res,
            **score(ds, rankings, args.n_resamples),
            "command": command,
            "threads": args.threads,
            "seed": args.seed,
            "n_resamples": args.n_resamples,
            "finished_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        }
        name = {"pop": "Popularity", "recgen-sasrec": "recgen SASRec retriever"}.get(
            key, f"RecBole {RECBOLE_NAMES.get(key, key)}"
        )
        data["models"][name] = entry
        print(
            f"{name}: "
            + ", ".join(
                f"{m} {entry[m]['mean']:.4f} [{entry[m]['lo']:.4f}, {entry[m]['hi']:.4f}]"
                for m in METRICS
            )
            + f"; train {entry['train_seconds'] or 0:.1f}s; epochs {entry.get('epochs')}"
        )
        atomic_write_json(json_path, data)
        write_markdown(md_path, data)
        if args.rankings_out is not None:
            write_evaluate_folder(args, ds, key, rankings, entry)
    print(f"wrote {json_path} and {md_path}")
    if args.rankings_out is not None:
        print(f"wrote {args.rankings_out}/rankings.parquet, metrics.json and table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
