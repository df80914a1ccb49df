"""TrainConfig rejects nonsense at construction time, with a sentence naming the field."""

import pytest

from recgen.errors import ConfigError
from recgen.train.config import TrainConfig, preset


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"group_size": 1}, "group_size"),
        ({"rank_size": 11, "slate_size": 10}, "rank_size k=11"),
        ({"slate_size": 21, "pool_size": 20}, "slate_size m=21"),
        ({"method": "ppo"}, "unknown method 'ppo'"),
        ({"dtype": "fp16"}, "dtype"),
        ({"clip_eps": 1.5}, "clip_eps"),
        ({"steps": 0}, "steps"),
        ({"format_penalty": 0.5}, "format_penalty"),
    ],
)
def test_config_rejects(overrides, fragment):
    with pytest.raises(ConfigError, match=fragment):
        TrainConfig(**overrides)


def test_presets_resolve_and_override():
    smoke = preset("smoke", "fgrpo")
    assert smoke.model == "tiny" and smoke.preset == "smoke" and smoke.method == "fgrpo"
    assert preset("cpu", "sft").steps != preset("cpu", "fgrpo").steps  # SFT has its own budget
    assert preset("cpu", "grpo", steps=7).steps == 7
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("tpu")
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({"stepz": 3})


def test_a_fresh_run_refuses_to_mix_with_old_checkpoints(tmp_path):
    from recgen.train.run import main

    (tmp_path / "checkpoints" / "step-000030").mkdir(parents=True)
    with pytest.raises(ConfigError, match="already holds checkpoints"):
        main(preset("smoke", "fgrpo", out_dir=str(tmp_path)))


def test_config_rejects_combinations_that_would_fail_late():
    with pytest.raises(ConfigError, match="constrained"):
        TrainConfig(method="decoupled", constrained=False)
    with pytest.raises(ConfigError, match="lora"):
        TrainConfig(beta=0.1, lora=False)
