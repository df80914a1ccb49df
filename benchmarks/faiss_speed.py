"""FAISS speed and recall: exact flat vs IVF vs HNSW vs numpy matmul + argpartition.

Two catalogues in one run:
- ml-100k: the SASRec retriever's 1,682 item vectors, 943 queries (each user's test history);
- synthetic: ``--items`` x ``--dim`` float32 item vectors (default 1,000,000 x 64) drawn
  around 1,024 Gaussian cluster centres (embeddings are clustered; on structure-free
  Gaussian noise no partitioning index can beat a scan), ``--queries`` queries likewise.

Every method goes through ``recgen.retrieval.ItemIndex.search`` (id mapping included),
except the numpy baseline. Recall@k is measured against the exact flat index's top k.
Times are medians over ``--reps`` runs (``--slow-reps`` for the slow exact baselines on the
big catalogue). Writes ``<out>/faiss_speed.json`` and ``.md``. Quick check:

    python benchmarks/faiss_speed.py --items 20000 --queries 1000 --no-hnsw --out /tmp/fs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import recgen.runtime  # noqa: F401  (OMP_WAIT_POLICY=PASSIVE before faiss/torch start)

logger = logging.getLogger("benchmarks.faiss_speed")
DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--items", type=int, default=1_000_000, help="synthetic catalogue size")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, default=10_000)
    p.add_argument("--k", type=int, default=50, help="neighbours per query (recall@k)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument(
        "--slow-reps",
        type=int,
        default=1,
        help="repetitions of flat / numpy on the synthetic catalogue",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--nprobe", default="4,8,16,32,64", help="IVF nprobe values to sweep")
    p.add_argument("--nlist", type=int, default=0, help="IVF lists (0 = ~sqrt(items))")
    p.add_argument("--hnsw-m", type=int, default=32)
    p.add_argument("--ef-search", default="64,128", help="HNSW efSearch values to sweep")
    p.add_argument("--no-hnsw", action="store_true", help="skip HNSW on the synthetic catalogue")
    p.add_argument("--no-numpy", action="store_true", help="skip numpy on the synthetic one")
    p.add_argument(
        "--numpy-queries",
        type=int,
        default=0,
        help="time numpy on the synthetic catalogue with only this many queries "
        "and scale linearly (0 = all)",
    )
    p.add_argument("--no-ml100k", action="store_true")
    p.add_argument(
        "--retriever",
        default=None,
        help="saved SASRec folder for the ml-100k part (default: train one for --retriever-epochs)",
    )
    p.add_argument("--retriever-epochs", type=int, default=5)
    p.add_argument(
        "--noise",
        type=float,
        default=0.5,
        help="per-dimension noise sd around the unit-variance cluster centres "
        "(larger = less clustered, harder for IVF/HNSW)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    return p.parse_args(argv)


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def recall(approx: list[list[str]], exact: list[list[str]], k: int) -> float:
    return float(
        np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact, strict=True)])
    )


def numpy_topk(
    items: np.ndarray, queries: np.ndarray, ids: list[str], k: int, chunk: int = 128
) -> list[list[str]]:
    out: list[list[str]] = []
    for s in range(0, len(queries), chunk):
        sc = queries[s : s + chunk] @ items.T
        part = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(sc, part, axis=1)
        order = np.argsort(-top, axis=1, kind="stable")
        out.extend([[ids[j] for j in row] for row in np.take_along_axis(part, order, axis=1)])
    return out


def bench_catalogue(
    name: str, items: np.ndarray, queries: np.ndarray, args: argparse.Namespace, big: bool
) -> list[dict[str, Any]]:
    from recgen.retrieval import ItemIndex, default_nlist

    ids = [str(i) for i in range(len(items))]
    k, rows = args.k, []
    slow = args.slow_reps if big else args.reps

    def add(method: str, params: str, build_s: float, search_s: float, rec: float) -> None:
        row = {
            "catalogue": name,
            "items": len(items),
            "queries": len(queries),
            "dim": items.shape[1],
            "method": method,
            "params": params,
            "build_s": build_s,
            "search_s": search_s,
            "recall_at_k": rec,
            "k": k,
        }
        logger.info("%s", row)
        rows.append(row)

    t = time.perf_counter()
    flat = ItemIndex(items, ids, kind="flat")
    build = time.perf_counter() - t
    search_s, (exact, _) = timed(lambda: flat.search(queries, k), slow)
    add("faiss flat (exact)", "IndexFlatIP", build, search_s, 1.0)
    flat = None  # free the copy of the vectors

    nlist = args.nlist or default_nlist(len(items))
    t = time.perf_counter()
    ivf = ItemIndex(items, ids, kind="ivf", nlist=nlist, seed=args.seed)
    build = time.perf_counter() - t
    for nprobe in [int(x) for x in args.nprobe.split(",")]:
        ivf.nprobe = nprobe
        search_s, (got, _) = timed(lambda ivf=ivf: ivf.search(queries, k), args.reps)
        add(
            "faiss IVF",
            f"nlist={ivf.nlist}, nprobe={nprobe}",
            build,
            search_s,
            recall(got, exact, k),
        )
    ivf = None

    if not (big and args.no_hnsw):
        t = time.perf_counter()
        hnsw = ItemIndex(items, ids, kind="hnsw", hnsw_m=args.hnsw_m)
        build = time.perf_counter() - t
        for ef in [int(x) for x in args.ef_search.split(",")]:
            hnsw.ef_search = ef
            search_s, (got, _) = timed(lambda hnsw=hnsw: hnsw.search(queries, k), args.reps)
            add(
                "faiss HNSW",
                f"M={args.hnsw_m}, efSearch={ef}",
                build,
                search_s,
                recall(got, exact, k),
            )
        hnsw = None

    if not (big and args.no_numpy):
        nq = args.numpy_queries if big and args.numpy_queries else len(queries)
        nq = min(nq, len(queries))
        search_s, got = timed(lambda: numpy_topk(items, queries[:nq], ids, k), slow)
        scale = len(queries) / nq
        params = "128 queries / chunk"
        if nq < len(queries):
            params += f"; timed on {nq:,} queries, x{scale:g} (linear)"
        add(
            "numpy matmul + argpartition", params, 0.0, search_s * scale, recall(got, exact[:nq], k)
        )
    return rows


def ml100k_vectors(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from recgen.data import load_dataset
    from recgen.retrieval import SASRec, SASRecConfig

    ds = load_dataset("ml-100k")
    if args.retriever:
        model = SASRec.load(args.retriever)
    else:
        model = SASRec.fit(
            ds,
            SASRecConfig(
                epochs=args.retriever_epochs, patience=0, threads=args.threads, seed=args.seed
            ),
        )
    queries = model.encode([ds.history(u, "test") for u in ds.user_ids])
    return model.item_vectors(), queries


def synthetic(
    n: int, q: int, d: int, seed: int, noise: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1024, d), dtype=np.float32)
    items = centres[rng.integers(0, 1024, n)]
    items += noise * rng.standard_normal((n, d), dtype=np.float32)
    queries = centres[rng.integers(0, 1024, q)] + noise * rng.standard_normal(
        (q, d), dtype=np.float32
    )
    return np.ascontiguousarray(items), np.ascontiguousarray(queries)


def to_markdown(result: dict[str, Any]) -> str:
    lines = [
        "# FAISS speed: exact flat vs IVF vs HNSW vs numpy",
        "",
        f"Run {result['date']} on {result['threads']} threads (shared 2-core CPU); "
        f"times are medians of {result['reps']} runs ({result['slow_reps']} for flat and "
        f"numpy on the synthetic catalogue); recall@{result['k']} is against the exact "
        "flat index. Search time includes recgen's id mapping (`ItemIndex.search`).",
        "",
        "| catalogue | items x dim | queries | method | params | build s | search s | "
        f"recall@{result['k']} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['catalogue']} | {r['items']:,} x {r['dim']} | {r['queries']:,} | "
            f"{r['method']} | {r['params']} | {r['build_s']:.2f} | {r['search_s']:.2f} | "
            f"{r['recall_at_k']:.4f} |"
        )
    lines += ["", f"Command: `{result['command']}`", ""]
    best = result.get("target")
    if best:
        lines += [f"Target (10k queries over 1M items in < 10 s at recall@50 >= 0.95): {best}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    import faiss

    faiss.omp_set_num_threads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    rows: list[dict[str, Any]] = []
    if not args.no_ml100k:
        items, queries = ml100k_vectors(args)
        rows += bench_catalogue("ml-100k (SASRec)", items, queries, args, big=False)
    items, queries = synthetic(args.items, args.queries, args.dim, args.seed, args.noise)
    rows += bench_catalogue(
        f"synthetic clustered (noise {args.noise:g})", items, queries, args, big=True
    )
    ok = [
        r
        for r in rows
        if r["catalogue"].startswith("synthetic")
        and r["recall_at_k"] >= 0.95
        and r["search_s"] < 10
    ]
    target = None
    if args.items >= 1_000_000 and args.queries >= 10_000:
        fastest = min(ok, key=lambda r: r["search_s"]) if ok else None
        target = (
            f"met by {fastest['method']} ({fastest['params']}): "
            f"{fastest['search_s']:.2f} s at recall {fastest['recall_at_k']:.4f}"
            if fastest
            else "not met"
        )
    result = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/faiss_speed.py " + shlex.join(argv or sys.argv[1:]),
        "threads": args.threads,
        "reps": args.reps,
        "slow_reps": args.slow_reps,
        "k": args.k,
        "rows": rows,
        "target": target,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "faiss_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "faiss_speed.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
