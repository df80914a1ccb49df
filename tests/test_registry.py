"""recgen.registry: candidate/champion aliases, the promotion rule, clear errors for missing
models and aliases, and (once the serving package is there) a smoke run registered end to end."""

from __future__ import annotations

import json
import os

import pytest

from recgen import registry
from recgen.errors import ConfigError, ModelNotFoundError
from recgen.registry import RegisterConfig, decide, log_decision, model_name, validation_score


@pytest.fixture
def store(tmp_path, monkeypatch):
    import mlflow

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(experiment_id="0")  # forget the active experiment of an earlier store
    yield mlflow.MlflowClient(uri)
    while mlflow.active_run():
        mlflow.end_run()


def _new_version(client, name: str) -> int:
    """A model version whose source is a (dummy) run artifact: enough for the alias logic."""
    import mlflow

    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name)
    with mlflow.start_run() as run:
        mlflow.log_text("placeholder", "model/MLmodel")
    return int(client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id).version)


def _fake_run(tmp_path, score: float | None, dataset: str = "ml-100k"):
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "final" / "recgen.json").write_text(json.dumps({"dataset": dataset, "method": "fgrpo"}))
    if score is not None:
        (run / "result.json").write_text(json.dumps({"eval": {"ndcg@5": {"mean": score, "lo": 0, "hi": 1}}}))
    return run


def test_config_rejects_bad_input(tmp_path):
    with pytest.raises(ModelNotFoundError, match="nowhere"):
        RegisterConfig(run_dir=str(tmp_path / "nowhere"))
    run = _fake_run(tmp_path, 0.1)
    with pytest.raises(ConfigError, match="model name"):
        RegisterConfig(run_dir=str(run), name="bad/name")
    with pytest.raises(ConfigError, match="metric"):
        RegisterConfig(run_dir=str(run), metric="mrr")


def test_model_name_and_score(tmp_path):
    assert model_name("ml-100k") == "recgen-ml-100k"
    assert model_name("/data/All_Beauty.jsonl") == "recgen-All_Beauty"
    assert validation_score(_fake_run(tmp_path, 0.125)) == 0.125


def test_candidate_and_champion_aliases(store):
    name = "recgen-test"
    v1 = _new_version(store, name)
    r1 = decide(name, v1, 0.10)  # no champion yet: becomes champion
    assert r1.promoted and r1.champion_score is None and r1.previous_champion is None
    assert store.get_registered_model(name).aliases == {"candidate": v1, "champion": v1}

    v2 = _new_version(store, name)
    r2 = decide(name, v2, 0.05)  # worse: candidate moves, champion stays
    assert not r2.promoted and r2.champion_score == 0.10 and r2.champion_version == v1
    assert store.get_registered_model(name).aliases == {"candidate": v2, "champion": v1}

    v3 = _new_version(store, name)
    assert not decide(name, v3, 0.10).promoted  # a tie does not beat the champion

    v4 = _new_version(store, name)
    r4 = decide(name, v4, 0.25)
    assert r4.promoted and r4.previous_champion == v1 and "0.2500 > champion" in r4.reason
    assert store.get_registered_model(name).aliases == {"candidate": v4, "champion": v4}
    tags = store.get_model_version(name, str(v4)).tags
    assert float(tags["valid_ndcg_at_5"]) == 0.25 and tags["decision"].startswith("promoted")


def test_decision_is_logged_on_the_run(store):
    from recgen.tracking import MlflowTracker

    name = "recgen-logged"
    _ = decide(name, _new_version(store, name), 0.3)
    reg = decide(name, _new_version(store, name), 0.2)
    t = MlflowTracker(system_metrics=False)
    with t.start_run("register-x"):
        log_decision(t, reg)
        run_id = t.run_id
    run = store.get_run(run_id)
    assert run.data.tags["registry.decision"] == "kept" and run.data.tags["registry.champion_version"] == "1"
    assert run.data.metrics == {"candidate_valid_ndcg_at_5": 0.2, "champion_valid_ndcg_at_5": 0.3}


def test_missing_models_and_aliases_are_named(store, tmp_path):
    name = "recgen-exists"
    v1 = _new_version(store, name)
    store.set_registered_model_alias(name, "candidate", str(v1))
    with pytest.raises(ModelNotFoundError, match="'recgen-nope' does not exist"):
        registry.resolve_model("models:/recgen-nope@champion")
    with pytest.raises(ModelNotFoundError, match=r"no alias 'champion' \(aliases: candidate\)") as err:
        registry.resolve_model(f"models:/{name}@champion")
    assert f"models:/{name}@champion" in str(err.value)
    with pytest.raises(ModelNotFoundError, match="no version '7'"):
        registry.resolve_model(f"models:/{name}/7")
    with pytest.raises(ModelNotFoundError, match="runs:/0123456789abcdef/model"):
        registry.resolve_model("runs:/0123456789abcdef/model")
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        registry.resolve_model(tmp_path / "no-bundle-here")
    with pytest.raises(ModelNotFoundError, match="no recgen bundle"):
        registry.resolve_model(tmp_path)  # a folder without recgen-bundle.json
    # the placeholder version downloads, but holds no bundle
    with pytest.raises(ModelNotFoundError, match="no recgen bundle"):
        registry.resolve_model(f"models:/{name}@candidate")
    assert registry.get_alias(name, "champion") is None and registry.get_alias("recgen-nope", "x") is None


def test_register_cli_reports_a_missing_run(tmp_path, capsys):
    from recgen.cli import main

    assert main(["register", str(tmp_path / "missing-run")]) == 2
    assert "missing-run" in capsys.readouterr().err


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """One smoke training run (tiny model, ml-100k) with a private cache."""
    pytest.importorskip("recgen.serving.pyfunc")
    pytest.importorskip("recgen.recommender")
    from recgen.train.config import preset
    from recgen.train.run import main

    root = tmp_path_factory.mktemp("smoke-run")
    old = os.environ.get("RECGEN_CACHE_DIR")
    os.environ["RECGEN_CACHE_DIR"] = str(root / "cache")
    try:
        main(preset("smoke", "fgrpo", steps=1, eval_users=4, out_dir=str(root / "run")))
    finally:
        if old is None:
            os.environ.pop("RECGEN_CACHE_DIR", None)
        else:
            os.environ["RECGEN_CACHE_DIR"] = old
    return root / "run"


def test_register_a_training_run_end_to_end(smoke_run, store, tmp_path):
    from recgen.recommender import Recommender

    score = json.loads((smoke_run / "result.json").read_text())["eval"]["ndcg@5"]["mean"]
    first = registry.main(RegisterConfig(run_dir=str(smoke_run)))  # bundle: RUN/bundle
    assert (first.name, first.version, first.promoted) == ("recgen-ml-100k", 1, True)
    assert first.score == pytest.approx(score) and first.run_id
    run = store.get_run(first.run_id)
    assert run.data.tags["registry.decision"] == "promoted"
    assert run.data.metrics["candidate_valid_ndcg_at_5"] == pytest.approx(score)

    second = registry.main(RegisterConfig(run_dir=str(smoke_run), bundle_dir=str(tmp_path / "b2" / "bundle")))
    assert (second.version, second.promoted, second.champion_version) == (2, False, 1)  # a tie keeps v1
    assert store.get_registered_model("recgen-ml-100k").aliases == {"candidate": 2, "champion": 1}

    bundle = registry.resolve_model("models:/recgen-ml-100k@champion")
    assert (bundle / "policy" / "recgen.json").is_file()
    assert registry.resolve_policy_folder("models:/recgen-ml-100k@champion") == bundle / "policy"
    rec = Recommender.from_mlflow("models:/recgen-ml-100k@champion")
    assert rec is not None


def test_model_spec_names():
    from recgen.eval.runner import model_spec

    assert model_spec("models:/recgen-ml-100k@champion") == "champion=models:/recgen-ml-100k@champion"
    assert model_spec("models:/recgen-ml-100k/3") == "recgen-ml-100k-v3=models:/recgen-ml-100k/3"
    assert model_spec("runs:/0123456789abcdef/model") == "run-01234567=runs:/0123456789abcdef/model"
    assert model_spec("mine=models:/m@candidate") == "mine=models:/m@candidate"
    assert model_spec("runs/fgrpo-cpu/bundle") == "fgrpo-cpu=runs/fgrpo-cpu/bundle"


def test_evaluate_a_registered_model_and_a_bundle(smoke_run, store, tmp_path, capsys):
    import polars as pl

    from recgen.cli import main

    registry.main(RegisterConfig(run_dir=str(smoke_run)))
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", "models:/recgen-ml-100k@champion", "--model", str(smoke_run / "bundle"),
                 "--users", "4", "--out", str(out)]) == 0
    frame = pl.read_parquet(out / "rankings.parquet")
    assert set(frame["method"]) == {"retriever", "popularity", "champion", "run"}
    assert {"user_id", "method", "ranked", "target"} <= set(frame.columns)
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "ml-100k"
    assert (out / "table.md").is_file()
    # the same weights: the registered champion and the bundle it was made from agree
    champ = frame.filter(pl.col("method") == "champion")["ranked"].to_list()
    assert champ == frame.filter(pl.col("method") == "run")["ranked"].to_list()
    assert main(["evaluate", "--model", "models:/recgen-ml-100k@nope", "--out", str(out)]) == 2
    assert "no alias 'nope'" in capsys.readouterr().err
