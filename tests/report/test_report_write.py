"""write_report and `recgen report` end to end on small synthetic inputs (no model, no dataset)."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import polars as pl
import pytest

import recgen.report as report_pkg
from recgen.cli import build_parser, main
from recgen.errors import ConfigError, DataFileNotFoundError
from recgen.report import write_report

POOL = [f"i{n}" for n in range(10)]
ODD = "x<b>&y"  # a method name that must be escaped in HTML
SCHEMA = {"user_id": pl.String, "method": pl.String, "ranked": pl.List(pl.String), "target": pl.String,
          "slate": pl.List(pl.String), "ranking": pl.List(pl.String)}


def rankings(method: str, spread: int, users: int = 12) -> pl.DataFrame:
    """User u's target is POOL[u % 10]; the method puts it at position (u * spread) % 10
    (spread 0: always first)."""
    data = {k: [] for k in SCHEMA}
    for u in range(users):
        target = POOL[u % 10]
        rest = [i for i in POOL if i != target]
        pos = (u * spread) % 10
        ranked = rest[:pos] + [target] + rest[pos:]
        data["user_id"].append(f"u{u:02d}")
        data["method"].append(method)
        data["ranked"].append(ranked)
        data["target"].append(target)
        data["slate"].append(ranked[:5])
        data["ranking"].append(ranked[:3])
    return pl.DataFrame(data, schema=SCHEMA)


def write_eval(folder: Path, methods: dict[str, int], *, dataset: str | None = "toy") -> Path:
    folder.mkdir(parents=True)
    pl.concat([rankings(m, s) for m, s in methods.items()]).write_parquet(folder / "rankings.parquet")
    meta = {"protocol": "pool", "split": "test", "users": 12, "seed": 0, "methods": {}}
    if dataset:
        meta["dataset"] = dataset
    (folder / "metrics.json").write_text(json.dumps(meta))
    return folder


def write_run(folder: Path, method: str, pools: Path, *, rl: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"method": method, "dataset": "toy", "preset": "smoke",
                                                    "model": "tiny", "seed": 0}))
    with (folder / "metrics.jsonl").open("w") as fh:
        for step in range(1, 9):
            row = ({"step": step, "reward_gen": step / 10, "reward_rank": step / 20, "frac_zero_adv_gen": 0.0,
                    "frac_zero_adv_rank": 0.5, "kl": 0.0, "clip_frac_gen": 0.0, "step_s": 2.0} if rl
                   else {"step": step, "loss": 2.0 - step / 10})
            fh.write(json.dumps(row) + "\n")
    (folder / "result.json").write_text(json.dumps({"seconds": 16.0, "eval": {}, "steps": 8}))
    (folder / "final").mkdir()
    (folder / "final" / "recgen.json").write_text(json.dumps({"pools": str(pools)}))
    if rl:
        (folder / "eval").mkdir()
        rankings(method, 1 if method == "grpo" else 0, users=6).write_parquet(folder / "eval" / "rankings.parquet")
    return folder


def make_inputs(tmp_path: Path) -> tuple[Path, Path]:
    pools = tmp_path / "pools"
    for mode, recall in (("inject", {"train": 0.5, "valid": 0.4, "test": 0.3}), ("retrieve", {"test": 0.3})):
        (pools / mode).mkdir(parents=True)
        (pools / mode / "summary.json").write_text(json.dumps({"mode": mode, "size": 10, "pool_recall": recall}))
    ev = write_eval(tmp_path / "ev", {"retriever": 3, "fgrpo": 0, ODD: 1})
    runs = tmp_path / "runs"
    write_run(runs / "fgrpo", "fgrpo", pools)
    write_run(runs / "grpo", "grpo", pools)
    write_run(runs / "sft", "sft", pools, rl=False)
    return ev, runs


@pytest.fixture(scope="module")
def fake_dataset():
    """describe_dataset without loading a dataset: canned statistics; records the names asked."""
    calls = []

    def describe(name):
        calls.append(name)
        return {"stats": {"users": 12, "items": 10, "interactions": 1234, "mean_sequence_length": 102.8,
                          "density": 0.5}, "pools": None}

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_pkg, "describe_dataset", describe)
        yield calls


@pytest.fixture
def inputs(tmp_path, fake_dataset):
    return make_inputs(tmp_path)


@pytest.fixture(scope="module")
def report(tmp_path_factory, fake_dataset):
    """One full report (an evaluation folder + a folder of three runs), shared by several tests."""
    tmp = tmp_path_factory.mktemp("report")
    res = write_report(list(make_inputs(tmp)), tmp / "out", seed=0)
    res["datasets_asked"] = list(fake_dataset)
    return res


def test_report_files_and_summary(report):
    res = report
    s = res["summary"]
    assert [c["title"] for c in s["comparisons"]] == ["test users (12), pool protocol",
                                                  "valid users (6), pool protocol"]
    test = s["comparisons"][0]
    assert test["reference"] == "fgrpo" and list(test["methods"]) == ["retriever", "fgrpo", ODD]
    assert test["best"]["recall@1"] == ["fgrpo"]  # fgrpo puts every target first
    assert test["methods"]["fgrpo"]["metrics"]["ndcg@5"]["mean"] == 1.0
    assert set(test["paired"]) == {"retriever", ODD}
    assert s["comparisons"][1]["methods"].keys() == {"fgrpo", "grpo"}  # the runs' eval/ folders
    assert [(p["mode"], p["pool_recall"].get("test")) for p in s["pools"]] == [("inject", 0.3), ("retrieve", 0.3)]
    by_label = {r["label"]: r for r in s["training"]}
    assert by_label["fgrpo"]["reward_gen"] == pytest.approx({"mean": 0.45, "first": 0.15, "last": 0.75, "window": 2})
    assert by_label["sft"]["kind"] == "sft" and by_label["sft"]["loss"]["last"] == pytest.approx(1.2)
    assert res["datasets_asked"] == ["toy"]
    assert json.loads(res["summary_json"].read_text())["comparisons"][0]["reference"] == "fgrpo"
    names = {p.name for p in res["figures"]}
    assert {"fig-training-rewards.png", "fig-training-diagnostics.png", "fig-training-sft-loss.png",
            "fig-1-error-split.png", "fig-1-ndcg5.png"} <= names
    for p in res["figures"]:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_self_contained_and_escaped(report):
    page = report["html"].read_text()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "x&lt;b&gt;&amp;y" in page and ODD not in page
    assert 'class="best"' in page and "Dataset statistics" in page and "1,234" in page


def test_markdown_links_pngs_next_to_it(report):
    md = report["markdown"].read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links and all((report["markdown"].parent / name).is_file() for name in links)
    assert "**1.000**" in md  # best marked
    assert "x\\<b\\>&y" in md
    assert "| method | users | recall@1 |" in md


def test_missing_dataset_name_defaults_with_a_note(tmp_path, fake_dataset):
    ev = write_eval(tmp_path / "ev", {"retriever": 3, "popularity": 1}, dataset=None)
    fake_dataset.clear()
    res = write_report([ev], tmp_path / "out")
    assert fake_dataset == ["ml-100k"]
    assert any("assumed ml-100k" in n for n in res["summary"]["notes"])
    assert res["summary"]["comparisons"][0]["reference"] == "retriever"  # no fgrpo: the first
    assert "assumed ml-100k" in res["html"].read_text()


def test_training_runs_only(tmp_path, inputs):
    _, runs = inputs
    shutil.rmtree(runs / "fgrpo" / "eval")
    shutil.rmtree(runs / "grpo" / "eval")
    res = write_report([runs], tmp_path / "out")
    assert res["summary"]["comparisons"] == []
    assert any("no rankings" in n for n in res["summary"]["notes"])
    assert (tmp_path / "out" / "fig-training-rewards.png").is_file()


def test_rl_run_without_diagnostics(tmp_path):
    """An RL run whose metrics.jsonl has rewards but none of the diagnostic keys still reports."""
    run = tmp_path / "runs" / "fgrpo"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"method": "fgrpo", "dataset": "toy", "preset": "smoke"}))
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "reward_gen": 0.1 * s, "reward_rank": 0.2})
                                               + "\n" for s in range(1, 5)))
    res = write_report([run], tmp_path / "out")
    assert (tmp_path / "out" / "fig-training-rewards.png").is_file()
    assert res["html"].is_file()


def test_errors_name_the_path(tmp_path, inputs):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataFileNotFoundError, match=re.escape(str(empty))):
        write_report([empty], tmp_path / "out")
    with pytest.raises(DataFileNotFoundError, match="no such file"):
        write_report([tmp_path / "nope"], tmp_path / "out")
    with pytest.raises(ConfigError, match="'bogus' is not among"):
        write_report([inputs[0]], tmp_path / "out", reference="bogus")


def test_cli(tmp_path, inputs, capsys):
    ev, _ = inputs
    assert main(["report", str(ev), "--out", str(tmp_path / "out"), "--reference", "retriever"]) == 0
    out = capsys.readouterr().out
    assert "reference retriever" in out and "report.html" in out
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2
    assert "recgen: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["report", "--help"])
    assert e.value.code == 0 and "rankings.parquet" in capsys.readouterr().out


def test_screenshot_check_when_chromium_is_installed(report):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import check_report
    finally:
        sys.path.pop(0)
    if check_report.find_chromium() is None:
        pytest.skip("no Chromium installed (apt-get install -y chromium)")
    out = report["html"].parent
    assert check_report.main([str(out), "--height", "1200"]) == 0
    assert check_report.distinct_colours(out / "screenshot.png") > 100
