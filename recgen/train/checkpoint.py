"""Atomic training checkpoints: trainable weights, optimizer, scheduler, RNG states, step.

Layout: ``OUT/checkpoints/step-000010/{trainable.pt, optim.pt, rng.pt, state.json}``.
Each checkpoint folder is written to a temporary folder and renamed into place
(:func:`recgen.io.atomic_dir`), so a run killed at any moment leaves only whole
checkpoints; resuming picks the one with the highest step.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recgen.errors import ConfigError
from recgen.io import atomic_dir

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^step-(\d{6,})$")


@dataclass
class Resumed:
    step: int
    state: dict[str, Any]
    path: Path


def trainable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Only the parameters being trained (LoRA adapters, or everything in full fine-tuning)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(root: Path, step: int, model: torch.nn.Module, optimizer, scheduler,
                    state: dict[str, Any], keep: int = 2) -> Path:
    """Write checkpoint ``step`` atomically under ``root`` and prune all but the newest ``keep``."""
    final = Path(root) / f"step-{step:06d}"
    with atomic_dir(final) as tmp:
        torch.save(trainable_state_dict(model), tmp / "trainable.pt")
        torch.save({"optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None},
                   tmp / "optim.pt")
        torch.save(_rng_state(), tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, **state}, indent=2, default=str))
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    logger.info("checkpoint written: %s", final)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first (temporary folders are ignored)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def load_latest(root: Path, model: torch.nn.Module, optimizer, scheduler,
                expect: dict[str, Any] | None = None) -> Resumed | None:
    """Restore the newest checkpoint under ``root`` into the given objects; None if there is none.

    ``expect``: state fields (e.g. the method) the checkpoint must have been written with.
    """
    ckpts = list_checkpoints(root)
    if not ckpts:
        return None
    path = ckpts[-1]
    saved = json.loads((path / "state.json").read_text())
    for key, value in (expect or {}).items():
        if saved.get(key) != value:
            raise ConfigError(f"checkpoint {path} was written with {key}={saved.get(key)!r}, "
                               f"this run has {key}={value!r}")
    weights = torch.load(path / "trainable.pt", map_location="cpu")
    own = {n: p for n, p in model.named_parameters() if p.requires_grad}
    missing, extra = sorted(set(own) - set(weights)), sorted(set(weights) - set(own))
    if missing or extra:
        raise ConfigError(f"checkpoint {path} does not fit this model: missing trainable parameters "
                           f"{missing[:3]}, unknown parameters {extra[:3]} (another model or LoRA setting?)")
    with torch.no_grad():
        for name, value in weights.items():
            own[name].copy_(value)
    optim = torch.load(path / "optim.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(optim["optimizer"])
    if scheduler is not None and optim["scheduler"] is not None:
        scheduler.load_state_dict(optim["scheduler"])
    _set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    logger.info("resumed from %s (step %d)", path, saved["step"])
    return Resumed(step=int(saved["step"]), state=saved, path=path)
