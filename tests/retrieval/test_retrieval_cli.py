"""`recgen pools build`, called through its registered handler."""

from __future__ import annotations

import argparse
import json

import polars as pl

from recgen.commands import pools as pools_cmd
from recgen.retrieval import POOL_SCHEMA


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recgen")
    pools_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_build_writes_three_parquet_files_and_reloads(tmp_path, capsys):
    out = tmp_path / "pools"
    rc = _run(
        [
            "pools",
            "build",
            "--dataset",
            "ml-100k",
            "--size",
            "10",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--train-examples-per-user",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    for split in ("train", "valid", "test"):
        df = pl.read_parquet(out / f"{split}.parquet")
        assert dict(df.schema) == POOL_SCHEMA and df.height > 0
        assert (df["mode"] == "inject").all() and (df["candidates"].list.len() == 10).all()
    assert (out / "retriever" / "weights.pt").is_file()
    assert (out / "retriever" / "index" / "index.faiss").is_file()
    summary = json.loads((out / "summary.json").read_text())
    printed = capsys.readouterr().out
    assert f"retrieve recall@10 = {summary['pool_recall']['test']:.4f}" in printed
    assert "valid:" in printed and "test:" in printed

    # a saved retriever is loaded instead of trained; the same pools come out
    out2 = tmp_path / "pools2"
    rc = _run(
        [
            "pools",
            "build",
            "--size",
            "10",
            "--retriever",
            str(out / "retriever"),
            "--splits",
            "valid,test",
            "--out",
            str(out2),
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out2.glob("*.parquet")) == ["test.parquet", "valid.parquet"]
    assert pl.read_parquet(out2 / "test.parquet").equals(pl.read_parquet(out / "test.parquet"))
    assert "NDCG" not in capsys.readouterr().out  # nothing was trained
