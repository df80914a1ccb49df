"""recgen.tracking: the no-op tracker, the MLflow tracker on a private sqlite store, and a
smoke training run logged end to end."""

from __future__ import annotations

import json
import os

import pytest

from recgen.errors import ConfigError
from recgen.tracking import (
    MlflowTracker,
    NullTracker,
    Tracker,
    dataset_label,
    flatten_params,
    metric_key,
    run_name,
)


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A private MLflow store and artifact folder in tmp_path; no run left active afterwards."""
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    monkeypatch.chdir(tmp_path)  # default artifact root ./mlruns
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id="0")  # forget the active experiment of an earlier store
    yield uri
    while mlflow.active_run():
        mlflow.end_run()


def _client(uri):
    import mlflow

    return mlflow.MlflowClient(uri)


def _runs(uri):
    client = _client(uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_name: r for r in client.search_runs(exps)}


def test_helpers():
    # nested keys joined with dots; non-strings as JSON; long values cut with "..."
    flat = flatten_params({"a": {"b": 1, "c": [1, 2]}, "d": "x" * 600, "e": None})
    assert flat["a.b"] == "1" and flat["a.c"] == "[1, 2]" and flat["e"] == "null"
    assert len(flat["d"]) == 500 and flat["d"].endswith("...")
    assert metric_key("valid_ndcg@5") == "valid_ndcg_at_5" and metric_key("a b/c-d.e") == "a b/c-d.e"
    assert dataset_label("ml-100k") == "ml-100k"
    assert dataset_label("/data/amazon/All_Beauty.jsonl.gz") == "All_Beauty"
    assert dataset_label("~/x/My Folder/") == "My_Folder"
    assert run_name("fgrpo", "ml-100k", "cpu") == "fgrpo-ml-100k-cpu"


def test_null_tracker_accepts_everything(tmp_path):
    t = NullTracker()
    assert isinstance(t, Tracker)
    with t.start_run("x", tags={"a": 1}) as run:
        run.log_params({"a": {"b": 1}})
        run.log_metrics({"m": 1.0}, step=1)
        run.log_artifact(tmp_path)
        run.log_dict({"a": 1}, "a.json")
        run.log_text("t", "t.txt")
        run.set_tags({"x": "y"})
    assert t.run_id is None


@pytest.mark.parametrize("uri", ["sqlite:///{tmp}/afile/x.db", "sqlite:////nonexistent-recgen/dir/x.db",
                                 "nosuchscheme://host/path"])
def test_bad_tracking_uri_names_it(tmp_path, monkeypatch, uri):
    (tmp_path / "afile").write_text("a file, not a folder")
    uri = uri.format(tmp=tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with pytest.raises(ConfigError, match="tracking URI") as err:
        MlflowTracker(system_metrics=False)
    assert uri in str(err.value)
    assert not os.path.exists("/nonexistent-recgen")


def test_mlflow_run_params_metrics_artifacts_and_nesting(store, tmp_path):
    t = MlflowTracker("test-exp", system_metrics=False)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "w.txt").write_text("weights")
    with t.start_run("parent", tags={"method": "fgrpo"}):
        parent_id = t.run_id
        t.log_params({"cfg": {"lr": 0.1}, "prompt": "p" * 9000})
        t.log_params({"cfg": {"lr": 0.1}})  # same value again: accepted
        t.log_params({"cfg": {"lr": 0.2}})  # changed value: the first one is kept
        with t.start_run("child", tags={"stage": "sft"}):
            child_id = t.run_id
            for step in (1, 2, 3):
                t.log_metrics({"loss": 1.0 / step, "ndcg@5": 0.1 * step, "flag": True}, step=step)
            t.log_artifact(tmp_path / "folder", artifact_path="final")
            t.log_dict({"a": [1, 2]}, "samples/x.json")
            t.log_text("hello", "samples/y.txt")
        assert t.run_id == parent_id
    runs = _runs(store)
    parent, child = runs["parent"], runs["child"]
    assert (parent.info.run_id, child.info.run_id) == (parent_id, child_id)
    assert child.data.tags["mlflow.parentRunId"] == parent_id
    assert parent.info.status == child.info.status == "FINISHED"
    assert parent.data.tags["method"] == "fgrpo" and parent.data.tags["git_commit"]
    assert parent.data.params["cfg.lr"] == "0.1" and len(parent.data.params["prompt"]) == 500
    hist = _client(store).get_metric_history(child_id, "loss")
    assert [(m.step, m.value) for m in hist] == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert child.data.metrics["ndcg_at_5"] == pytest.approx(0.3) and "flag" not in child.data.metrics
    arts = {a.path for a in _client(store).list_artifacts(child_id, "final")}
    assert arts == {"final/w.txt"}
    assert {a.path for a in _client(store).list_artifacts(child_id, "samples")} == {"samples/x.json", "samples/y.txt"}


def test_failed_run_is_marked_failed_with_its_error(store):
    t = MlflowTracker(system_metrics=False)
    with pytest.raises(RuntimeError, match="boom"), t.start_run("doomed"):
        raise RuntimeError("boom at step 3")
    run = _runs(store)["doomed"]
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: boom at step 3"


def test_continues_the_run_mlflow_run_created(store, monkeypatch):
    import mlflow

    client = _client(store)
    exp = client.create_experiment("project")
    created = client.create_run(exp).info.run_id  # what `mlflow run` does before the entry point
    monkeypatch.setenv("MLFLOW_RUN_ID", created)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", exp)
    mlflow.set_experiment(experiment_id=exp)
    t = MlflowTracker("ignored", system_metrics=False)
    with t.start_run("fgrpo-ml-100k-smoke", tags={"preset": "smoke"}):
        assert t.run_id == created
    run = client.get_run(created)
    assert run.info.run_name == "fgrpo-ml-100k-smoke" and run.data.tags["preset"] == "smoke"


def test_system_metrics_are_sampled(store):
    # MLflow's monitor needs psutil only (no network); sample quickly for the test
    import time

    t = MlflowTracker(system_metrics=True, system_metrics_interval=0.2)
    with t.start_run("sys"):
        time.sleep(1.5)
    metrics = _runs(store)["sys"].data.metrics
    assert any(k.startswith("system/cpu") for k in metrics), sorted(metrics)
    assert any(k.startswith("system/system_memory") for k in metrics), sorted(metrics)


def test_smoke_training_run_is_logged(store, tmp_path, monkeypatch):
    from recgen.train.config import preset
    from recgen.train.run import main

    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path / "cache"))
    cfg = preset("smoke", "fgrpo", steps=2, eval_users=4, out_dir=str(tmp_path / "run"))
    main(cfg, tracker=MlflowTracker("smoke", system_metrics=False))
    run = _runs(store)["fgrpo-ml-100k-smoke"]
    assert run.info.status == "FINISHED"
    assert {run.data.tags[k] for k in ("method", "dataset", "preset")} == {"fgrpo", "ml-100k", "smoke"}
    assert run.data.params["method"] == "fgrpo" and run.data.params["steps"] == "2"
    client = _client(store)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "reward_gen")] == [1, 2]
    assert "valid_ndcg_at_5" in run.data.metrics and "train_seconds" in run.data.metrics
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.json", "final", "eval", "samples", "metrics.jsonl", "result.json"} <= top
    final = {a.path for a in client.list_artifacts(run.info.run_id, "final")}
    assert {"final/recgen.json", "final/model.safetensors"} <= final
    path = client.download_artifacts(run.info.run_id, "samples/train_prompts.json", str(tmp_path))
    samples = json.loads(open(path).read())
    assert len(samples) == 3 and samples[0]["prompt"] and samples[0]["sft_target"].startswith("<slate>")
    path = client.download_artifacts(run.info.run_id, "samples/valid_outputs.json", str(tmp_path))
    outputs = json.loads(open(path).read())
    assert outputs and outputs[0]["output"].startswith("<slate>")


def test_train_cli_with_an_unusable_store_fails_before_training(tmp_path, monkeypatch, capsys):
    from recgen.cli import main

    (tmp_path / "afile").write_text("")
    uri = f"sqlite:///{tmp_path}/afile/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    out = tmp_path / "run"
    assert main(["train", "--preset", "smoke", "--mlflow", "--out-dir", str(out)]) == 2
    assert uri in capsys.readouterr().err
    assert not out.exists()
