"""MLproject entry points: configs and bad input, `mlflow run . -e train --env-manager local`
with the smoke preset, and the compare pipeline (nested runs + report) in process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recgen.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"


def load_pipeline(name: str):
    """Import pipelines/NAME.py under a unique module name (they import _steps from their folder)."""
    if str(PIPELINES) not in sys.path:
        sys.path.insert(0, str(PIPELINES))
    spec = importlib.util.spec_from_file_location(f"recgen_pipeline_{name}", PIPELINES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One recgen cache (prepared data, pools: content-keyed) for the tests of this module."""
    return tmp_path_factory.mktemp("recgen-cache")


@pytest.fixture
def store(tmp_path, monkeypatch, cache_dir):
    """A private MLflow store and artifact root under tmp_path; the module's recgen cache."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(cache_dir))
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id="0")
    yield mlflow.MlflowClient(uri)
    while mlflow.active_run():
        mlflow.end_run()


def runs_by_name(client) -> dict:
    exps = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_name: r for r in client.search_runs(exps)}


def test_train_configs_chain_and_defaults():
    S = load_pipeline("_steps")
    sft, rl = S.train_configs("sft+fgrpo", "smoke", steps=2, overrides=["lam=0.5"])
    assert (sft.method, rl.method) == ("sft", "fgrpo")
    assert (sft.out_dir, rl.out_dir) == ("runs/sft-smoke", "runs/fgrpo-smoke")  # as `recgen train`
    assert rl.init_from == "runs/sft-smoke/final" and sft.init_from is None
    assert sft.steps == rl.steps == 2 and rl.lam == 0.5
    a, b = S.train_configs("sft+grpo", "smoke", out_dir="out", init_from="m")
    assert (a.out_dir, b.out_dir, a.init_from, b.init_from) == ("out/sft", "out/grpo", "m", "out/sft/final")
    (only,) = S.train_configs("fgrpo", "cpu", out_dir="x")
    assert only.out_dir == "x" and only.steps == 40
    assert S.words("a b,c  d") == ["a", "b", "c", "d"] and S.opt(" ") is None and S.opt_int("", "steps") is None


@pytest.mark.parametrize("call, match", [
    (lambda S: S.train_configs("fgrpo+ppo", "smoke"), "unknown method 'ppo'"),
    (lambda S: S.train_configs("fgrpo", "tiny"), "unknown preset 'tiny'"),
    (lambda S: S.train_configs("fgrpo", "smoke", overrides=["nope=1"]), "nope"),
    (lambda S: S.opt_int("ten", "steps"), "steps='ten'"),
    (lambda S: S.as_bool("maybe", "resume"), "resume='maybe'"),
])
def test_bad_parameters_are_named(call, match):
    with pytest.raises(ConfigError, match=match):
        call(load_pipeline("_steps"))


def test_entry_reports_errors_in_one_line(store, capsys):
    train = load_pipeline("train")
    S = load_pipeline("_steps")
    with pytest.raises(SystemExit) as e:
        S.entry(lambda: train.main(train.parse(["--method", "ppo", "--preset", "smoke"])))
    assert e.value.code == 2 and "unknown method 'ppo'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        S.entry(lambda: train.main(train.parse(["--method", "fgrpo", "--preset", "smoke",
                                                "--dataset", "no-such-dataset"])))
    assert "unknown dataset 'no-such-dataset'" in capsys.readouterr().err
    evaluate = load_pipeline("evaluate")
    with pytest.raises(SystemExit):
        S.entry(lambda: evaluate.main(evaluate.parse(["--model", "models:/recgen-nope@champion",
                                                      "--out", "ev"])))
    assert "models:/recgen-nope@champion" in capsys.readouterr().err


def test_mlflow_run_train_entry_point(store, tmp_path):
    """The documented command, on the default data, smoke preset, one step per stage."""
    cmd = ["mlflow", "run", str(ROOT), "-e", "train", "--env-manager", "local", "-P", "preset=smoke",
           "-P", "steps=1", "-P", f"out_dir={tmp_path / 'out'}", "-P", "set=eval_users=4"]
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    cmd[0] = str(mlflow_bin) if mlflow_bin.exists() else "mlflow"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = runs_by_name(store)
    parent = runs["sft+fgrpo-ml-100k-smoke"]
    assert parent.data.tags["mlflow.project.entryPoint"] == "train" and parent.info.status == "FINISHED"
    for stage in ("sft", "fgrpo"):
        child = runs[f"{stage}-ml-100k-smoke"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["method"] == stage and "valid_ndcg_at_5" in child.data.metrics
    assert runs["fgrpo-ml-100k-smoke"].data.params["init_from"] == str(tmp_path / "out" / "sft" / "final")
    assert (tmp_path / "out" / "fgrpo" / "final" / "recgen.json").is_file()


def test_compare_pipeline_nested_runs_and_report(store, tmp_path):
    compare = load_pipeline("compare")
    out = tmp_path / "cmp"
    res = compare.main(compare.parse(["--preset", "smoke", "--methods", "sft fgrpo", "--steps", "1",
                                      "--users", "8", "--baselines", "retriever popularity",
                                      "--out-dir", str(out), "--set", "eval_users=4"]))
    runs = runs_by_name(store)
    parent = runs["compare-ml-100k-smoke"]
    for name in ("sft-ml-100k-smoke", "fgrpo-ml-100k-smoke", "evaluate-ml-100k-test", "report",
                 "pools-ml-100k-N20"):
        assert runs[name].data.tags["mlflow.parentRunId"] == parent.info.run_id, name
    metrics = runs["evaluate-ml-100k-test"].data.metrics
    assert {"retriever/ndcg_at_5", "popularity/ndcg_at_5", "sft/ndcg_at_5", "fgrpo/ndcg_at_5"} <= set(metrics)
    assert set(res["evaluation"]["results"]) == {"retriever", "popularity", "sft", "fgrpo"}
    assert (out / "report" / "report.html").is_file() and (out / "eval" / "table.md").is_file()
    assert res["train"]["fgrpo"].out_dir == out / "fgrpo"
    client = store
    arts = {a.path for a in client.list_artifacts(runs["report"].info.run_id, "report")}
    assert "report/report.md" in arts
