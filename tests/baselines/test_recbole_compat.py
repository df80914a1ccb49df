"""The RecBole shims exist only inside ``recbole_compat()`` and RecBole works there."""

from __future__ import annotations

import os
import sys
import warnings

import numpy as np
import pytest
import torch

from recgen.baselines.recbole_compat import recbole_compat
from recgen.baselines.recbole_models import (
    RecBoleConfig,
    recbole_config_dict,
    write_benchmark_files,
)

REMOVED = ("float_", "complex_", "unicode_", "bool8", "float", "int", "object", "str", "unicode")


def _absent(name: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 warns on np.object / np.str lookups
        return name not in np.__dict__ and not hasattr(np, name)


def test_aliases_inside_only():
    assert all(_absent(n) for n in REMOVED)  # numpy 2 removed them
    load, argv = torch.load, sys.argv
    with recbole_compat():
        assert np.float_ is np.float64 and np.complex_ is np.complex128
        assert np.unicode_ is np.str_ and np.bool8 is np.bool_
        assert torch.load is not load
        assert sys.argv == argv[:1]
    assert all(_absent(n) for n in REMOVED)
    assert torch.load is load and sys.argv is argv
    assert np.bool is np.bool_  # numpy's own names untouched


def test_restored_after_exception_and_nesting():
    load = torch.load
    with pytest.raises(RuntimeError), recbole_compat():
        with recbole_compat():
            pass
        assert np.float_ is np.float64  # the inner exit leaves the outer patches
        raise RuntimeError("boom")
    assert _absent("float_") and torch.load is load


def test_recbole_config_model_and_checkpoint(tmp_path, synthetic_split):
    """Config (writes np.float, CUDA_VISIBLE_DEVICES), models, and a checkpoint round trip."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.general_recommender import BPR
    from recbole.model.sequential_recommender import SASRec

    write_benchmark_files(synthetic_split, tmp_path / "recgen", sequential=True)
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    cfg = RecBoleConfig(model="SASRec")
    with recbole_compat():
        config = Config(
            model="SASRec",
            dataset="recgen",
            config_dict=recbole_config_dict(cfg, str(tmp_path), str(tmp_path / "s")),
        )
        assert np.__dict__.get("float") is not None  # RecBole's own compatibility_settings
        train, _, _ = data_preparation(config, create_dataset(config))
        model = SASRec(config, train._dataset)
        ckpt = tmp_path / "ckpt.pth"
        torch.save({"config": config, "state_dict": model.state_dict()}, ckpt)
        state = torch.load(ckpt)  # RecBole-style load: pickled Config needs weights_only=False
        model.load_state_dict(state["state_dict"])
        assert BPR.__name__ == "BPR"
    assert _absent("float") and _absent("float_")
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == cuda
    with pytest.raises(Exception, match="[Ww]eights"):
        torch.load(ckpt)  # outside: torch's weights_only=True default refuses the Config
    assert not (tmp_path.parent / "log_tensorboard").exists()
