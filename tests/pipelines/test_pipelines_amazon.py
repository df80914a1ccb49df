"""The whole pipeline on an Amazon Reviews 2023 category given by path:
`mlflow run . -e main --env-manager local -P dataset=…/All_Beauty.jsonl -P preset=smoke`
(prepare → pools → SFT → F-GRPO → evaluate → register), then the registered champion serves."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MS = 1_600_000_000_000  # 2020-09-13 in milliseconds (2023 files store ms)
N_USERS, N_ITEMS, PER_USER = 40, 40, 12


def write_all_beauty(folder: Path) -> Path:
    """Reviews and metadata in the Amazon Reviews 2023 jsonl layout. Every user reviews 12 of
    40 items (seeded), so every user and item passes the default 5-core for Amazon data, and a
    pool of 20 candidates outside any history always exists (40 - 12 >= 20)."""
    rng = random.Random(0)
    reviews = []
    for u in range(N_USERS):
        items = rng.sample(range(N_ITEMS), PER_USER)
        for t, i in enumerate(items):
            reviews.append({"rating": float(rng.randint(1, 5)), "title": "ok", "text": "fine", "images": [],
                            "asin": f"B0{i:08d}", "parent_asin": f"P{i:04d}", "user_id": f"AG{u:05d}",
                            "timestamp": MS + 86_400_000 * t + 1000 * u, "helpful_vote": 0,
                            "verified_purchase": True})
    meta = [{"main_category": "All Beauty", "title": f"Beauty product {i}", "average_rating": 4.0,
             "rating_number": 10, "features": [], "description": [], "price": None, "images": [],
             "videos": [], "store": "S", "categories": [], "details": {}, "parent_asin": f"P{i:04d}",
             "bought_together": None} for i in range(N_ITEMS)]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "All_Beauty.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in reviews))
    (folder / "meta_All_Beauty.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta))
    return path


def test_amazon_category_end_to_end(tmp_path, monkeypatch):
    import mlflow

    data = write_all_beauty(tmp_path / "amazon")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "RECGEN_CACHE_DIR": str(tmp_path / "cache"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
        env.pop(var, None)
    out = tmp_path / "out"
    cmd = ["mlflow", "run", str(ROOT), "-e", "main", "--env-manager", "local", "-P", f"dataset={data}",
           "-P", "preset=smoke", "-P", "steps=1", "-P", "users=10", "-P", f"out_dir={out}",
           "-P", "set=eval_users=6"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]

    client = mlflow.MlflowClient(uri)
    runs = {r.info.run_name: r for r in client.search_runs([e.experiment_id for e in client.search_experiments()])}
    parent = runs["main-All_Beauty-smoke"]
    assert parent.info.status == "FINISHED" and parent.data.tags["mlflow.project.entryPoint"] == "main"
    for name in ("prepare-All_Beauty", "pools-All_Beauty-N20", "sft-All_Beauty-smoke", "fgrpo-All_Beauty-smoke",
                 "evaluate-All_Beauty-test", "register-recgen-All_Beauty"):
        assert runs[name].data.tags["mlflow.parentRunId"] == parent.info.run_id, name
        assert runs[name].info.status == "FINISHED", name
    assert runs["prepare-All_Beauty"].data.metrics["users"] == N_USERS
    assert runs["fgrpo-All_Beauty-smoke"].data.tags["dataset"] == "All_Beauty"
    assert "fgrpo/ndcg_at_5" in runs["evaluate-All_Beauty-test"].data.metrics
    reg = runs["register-recgen-All_Beauty"]
    assert reg.data.tags["registry.decision"] == "promoted"
    model = client.get_registered_model("recgen-All_Beauty")
    assert model.aliases == {"candidate": 1, "champion": 1}

    # the product noun reached the prompts, and the registered champion serves a known user
    prompts = json.loads((out / "fgrpo" / "eval" / "samples.json").read_text())
    assert "product" in prompts[0]["prompt"]
    pytest.importorskip("recgen.recommender")
    from recgen.recommender import Recommender

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    rec = Recommender.from_mlflow("models:/recgen-All_Beauty@champion")
    top = rec.recommend("AG00000", k=5)
    assert len(top) == 5 and all(r.item_id.startswith("P") for r in top)
