"""Docs that must match the code: every TrainConfig field and preset in docs/usage.md."""

import dataclasses
from pathlib import Path

from recgen.train.config import _PRESETS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_usage_lists_every_train_config_field_with_its_default():
    text = (ROOT / "docs" / "usage.md").read_text()
    for f in dataclasses.fields(TrainConfig):
        assert f"| `{f.name}` | `{f.default!r}` |" in text, f"docs/usage.md: field {f.name} or its default is stale"
    for name, values in _PRESETS.items():
        for key, value in values.items():
            assert f"`{key}={value!r}`" in text, f"docs/usage.md: preset {name} {key}={value!r} missing"


def test_readme_starts_with_the_two_commands():
    head = (ROOT / "README.md").read_text().splitlines()[:6]
    assert any(line.startswith("make train") for line in head)
    assert any(line.startswith("make test") for line in head)
