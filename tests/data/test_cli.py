"""``recgen data prepare`` through a tiny argparse, as recgen/cli.py will wire it."""

from __future__ import annotations

import argparse

import pytest

from recgen.commands import data as data_cmd


def _parser():
    parser = argparse.ArgumentParser(prog="recgen")
    data_cmd.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_prepare_prints_stats_and_cache(tmp_path, capsys):
    args = _parser().parse_args(
        ["data", "prepare", "--dataset", "ml-100k", "--cache-dir", str(tmp_path)]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "users:                943" in out
    assert "items:                1,682" in out
    assert "interactions:         100,000" in out
    assert "mean sequence length: 106.04" in out
    assert "density:              0.063047" in out
    assert str(tmp_path) in out
    args.func(args)
    assert "(hit)" in capsys.readouterr().out


def test_prepare_options_map_to_config(tmp_path):
    args = _parser().parse_args(
        ["data", "prepare", "--dataset", "x", "--format", "amazon-2018", "--kcore", "10",
         "--min-rating", "4", "--drop-untitled", "--no-cache", "--meta", "m.json"]
    )  # fmt: skip
    cfg = data_cmd.config_from_args(args)
    assert (cfg.kcore, cfg.min_rating, cfg.drop_untitled, cfg.cache, cfg.meta_path) == (
        10, 4.0, True, False, "m.json",
    )  # fmt: skip
    assert args.format == "amazon-2018"


def test_bad_format_rejected_by_argparse():
    with pytest.raises(SystemExit):
        _parser().parse_args(["data", "prepare", "--format", "netflix"])
