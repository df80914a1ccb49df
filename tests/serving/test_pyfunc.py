"""The recommender as an MLflow pyfunc: logged, loaded back, served over REST."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

mlflow = pytest.importorskip("mlflow")

from recgen import Recommender  # noqa: E402
from recgen.errors import ModelNotFoundError  # noqa: E402
from recgen.registry import resolve_model  # noqa: E402
from recgen.serving.pyfunc import COLUMNS, log_model  # noqa: E402


@pytest.fixture(scope="module")
def logged(tiny_bundle, tmp_path_factory):
    """The tiny bundle logged as a pyfunc model in a fresh sqlite store."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    old = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    exp = mlflow.create_experiment("serving", artifact_location=str(root / "artifacts"))
    with mlflow.start_run(experiment_id=exp):
        info = log_model(tiny_bundle, registered_model_name="recgen-test")
    yield {"uri": uri, "model_uri": info.model_uri, "root": root}
    mlflow.set_tracking_uri(old or "sqlite:///:memory:")


def test_pyfunc_predicts_like_the_recommender(logged, tiny_recommender):
    model = mlflow.pyfunc.load_model(logged["model_uri"])
    history = ["50", "172", "181"]
    out = model.predict(pd.DataFrame([{"user_id": "1", "k": 7}, {"history": history, "k": 4}]))
    assert list(out.columns) == COLUMNS
    first, second = out[out.request == 0], out[out.request == 1]
    assert list(first.item_id) == [r.item_id for r in tiny_recommender.recommend("1", k=7)]
    assert list(first["rank"]) == list(range(1, 8))
    assert list(second.item_id) == [r.item_id for r in tiny_recommender.recommend_for_history(history, k=4)]
    assert second.user_id.isna().all()


def test_pyfunc_bad_request_is_invalid_parameter(logged):
    model = mlflow.pyfunc.load_model(logged["model_uri"])
    with pytest.raises(mlflow.exceptions.MlflowException, match="request 0: user 'nobody' is not known"):
        model.predict(pd.DataFrame([{"user_id": "nobody", "k": 3}]))


def test_from_mlflow_registry_alias(logged, tiny_recommender, tmp_path, monkeypatch):
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path))  # downloaded models are cached there
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("recgen-test", "champion", "1")
    rec = Recommender.from_mlflow("models:/recgen-test@champion")
    assert rec.recommend("3", k=6) == tiny_recommender.recommend("3", k=6)
    with pytest.raises(ModelNotFoundError, match="no-such-alias"):
        Recommender.from_mlflow("models:/recgen-test@no-such-alias")
    with pytest.raises(ModelNotFoundError, match="recgen-missing"):
        Recommender.from_mlflow("models:/recgen-missing/1")


def test_bundle_folder_with_any_name(tiny_bundle, logged, tmp_path, monkeypatch):
    monkeypatch.setenv("RECGEN_CACHE_DIR", str(tmp_path / "cache"))
    """MLflow names the copied artifact after the logged folder; loading must not assume 'bundle'."""
    import shutil

    renamed = shutil.copytree(tiny_bundle, tmp_path / "my-recommender")
    with mlflow.start_run():
        info = log_model(renamed, input_example=False)
    assert resolve_model(info.model_uri).name == "my-recommender"
    assert Recommender.from_mlflow(info.model_uri).recommend("1", k=3) == Recommender.load(renamed).recommend("1", k=3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rest_serving(logged, tiny_recommender, tmp_path):
    """``mlflow models serve`` on 127.0.0.1: valid and invalid requests, then stop it."""
    port = _free_port()
    bin_dir = Path(sys.executable).parent  # mlflow starts `uvicorn` from PATH: the venv's, not activated here
    env = dict(os.environ, MLFLOW_TRACKING_URI=logged["uri"], PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(bin_dir / "mlflow"), "models", "serve", "-m", "models:/recgen-test/1",
           "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.time() < deadline, "server did not answer /ping in 120 s"
            time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/invocations"
        status, body = _post(url, {"dataframe_records": [{"user_id": "2", "k": 5}]})
        assert status == 200, body
        rows = body["predictions"]
        assert [r["item_id"] for r in rows] == [r.item_id for r in tiny_recommender.recommend("2", k=5)]
        assert {r["source"] for r in rows} == {"ranking"}
        status, body = _post(url, {"dataframe_records": [{"user_id": "2", "k": 0}]})
        assert status == 400 and "k must be >= 1, got 0" in body["message"]
        status, body = _post(url, {"dataframe_records": [{"user_id": "ghost", "k": 3}]})
        assert status == 400 and "'ghost'" in body["message"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)
        log.close()
