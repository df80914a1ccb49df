"""End-to-end training with the smoke preset (tiny random model, ml-100k pools), including a
run killed with SIGKILL mid-training and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from recgen.train.config import preset

STEPS = 4


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """A private cache (dataset, pools) shared by the tests of this module."""
    path = tmp_path_factory.mktemp("recgen-cache")
    old = os.environ.get("RECGEN_CACHE_DIR")
    os.environ["RECGEN_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("RECGEN_CACHE_DIR", None)
    else:
        os.environ["RECGEN_CACHE_DIR"] = old


def _steps(out: Path) -> list[int]:
    return [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines() if ln.strip()]


def _final_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


def test_smoke_fgrpo_trains_and_exports(cache_dir, tmp_path):
    from recgen.policy.models import build_tiny_policy
    from recgen.train.run import main

    cfg = preset("smoke", "fgrpo", steps=STEPS, out_dir=str(tmp_path / "run"))
    result = main(cfg)
    assert _steps(result.out_dir) == [1, 2, 3, 4]
    log = json.loads((result.out_dir / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("reward_gen", "reward_rank", "frac_zero_adv_gen", "frac_zero_adv_rank", "clip_frac_gen",
                "entropy", "tokens_per_s", "step_s", "rollout_s", "update_s"):
        assert key in log, key
    # the high smoke learning rate must move the weights away from the seeded initialisation
    init = build_tiny_policy(seed=cfg.seed).model.state_dict()
    final = _final_weights(result.out_dir)
    changed = [n for n, w in final.items() if n in init and not torch.equal(w, init[n].to(w.dtype))]
    assert changed, "no parameter changed during training"
    assert set(result.eval_metrics) >= {"ndcg@5", "coverage", "slate_miss", "rank_drop"}
    assert (result.out_dir / "eval" / "rankings.parquet").exists()


def _train_cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "recgen", "--log-level", "WARNING", "train", "--method", "fgrpo",
            "--preset", "smoke", "--steps", str(STEPS), "--eval-users", "0", "--out-dir", str(out), *extra]


def test_sigkill_then_resume_matches_an_uninterrupted_run(cache_dir, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_train_cmd(ref), check=True, env=os.environ.copy(), capture_output=True, timeout=600)

    proc = subprocess.Popen(_train_cmd(killed), env=os.environ.copy(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = killed / "checkpoints" / "step-000002"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert ckpt.exists(), "the run ended before its second checkpoint"
    assert not (killed / "final").exists(), "the run was not killed mid-training"

    subprocess.run(_train_cmd(killed, "--resume"), check=True, env=os.environ.copy(),
                   capture_output=True, timeout=600)
    assert _steps(killed) == [1, 2, 3, 4]  # every step logged once, none lost or repeated
    a, b = _final_weights(ref), _final_weights(killed)
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)
