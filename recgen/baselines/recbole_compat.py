"""Every patch RecBole 1.2.1 needs on this stack, in one place, applied only around its calls.

RecBole 1.2.1 predates numpy 2 and torch's ``weights_only=True`` default and has a few
process-wide side effects. ``with recbole_compat(): ...`` fixes them for the duration of
the block and restores the previous state on exit (also on an exception):

- numpy aliases removed in numpy 2 (``np.float_``, ``np.complex_``, ``np.unicode_``,
  ``np.bool8`` (used by ray only) and the bare ``np.float``/``np.int``/... that
  ``Config.compatibility_settings`` assigns and ``recbole.evaluator``/``model.layers`` read).
  Only names numpy does not define are added, and RecBole's own permanent assignments
  (its ``Config`` writes ``np.float = np.float_`` etc. into the numpy module) are undone.
- ``torch.load`` defaults to ``weights_only=False`` (RecBole's checkpoints pickle its
  ``Config``); an explicit ``weights_only=`` from the caller is respected.
- ``sys.argv`` is reduced to the program name: ``recbole.config.Config`` parses every
  ``--key=value`` on the command line and lets it *override* the config dict.
- ``CUDA_VISIBLE_DEVICES``: ``Config`` overwrites it with its ``gpu_id``; restored on exit.
- ``recbole.trainer.trainer.get_tensorboard`` returns a no-op writer instead of creating
  ``./log_tensorboard/`` in the working directory.
- ``FutureWarning``/``DeprecationWarning`` raised from RecBole's own code (pandas chained
  ``fillna(inplace=True)``, ``Series.agg(len)``, ``torch.cuda.amp.GradScaler``) are
  silenced: they are known, and harmless with the pinned ``pandas>=2.3,<3``.

Not thread-safe (patches module attributes): run RecBole from one thread at a time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

# name -> replacement, added to the numpy module only when numpy does not define the name.
NUMPY_ALIASES: dict[str, Any] = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
    # bare builtin-shadowing names: recbole.config.Config.compatibility_settings assigns
    # them (after reading np.float_ etc.); recbole.evaluator.metrics uses np.float.
    "float": float,
    "int": int,
    "complex": complex,
    "object": object,
    "str": str,
    "unicode": str,
    "bool": np.bool_,
    "long": np.int_,
}

_MISSING = object()


class _NullWriter:
    """Stands in for tensorboard's SummaryWriter: accepts every call, writes nothing."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _null_tensorboard(*args: Any, **kwargs: Any) -> _NullWriter:
    return _NullWriter()


def _numpy_defines(name: str) -> bool:
    """True when numpy itself resolves ``name`` (module dict or its lazy ``__getattr__``)."""
    if name in np.__dict__:
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy 2 warns about np.object / np.str lookups
        try:
            getattr(np, name)
        except AttributeError:
            return False
    return True


@contextlib.contextmanager
def recbole_compat() -> Iterator[None]:
    """Patch numpy/torch/argv/env for RecBole inside the block; restore everything on exit.

    Re-entrant: a nested block sees the patches and leaves them to the outer block.
    """
    import torch

    saved_np = {name: np.__dict__.get(name, _MISSING) for name in NUMPY_ALIASES}
    saved_argv = sys.argv
    saved_cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
    saved_load = torch.load

    trainer_mod = _import_trainer_module()
    saved_tb = trainer_mod.get_tensorboard if trainer_mod is not None else None

    for name, value in NUMPY_ALIASES.items():
        if not _numpy_defines(name):
            setattr(np, name, value)

    if not getattr(saved_load, "_recgen_compat", False):

        @functools.wraps(saved_load)
        def _load(*args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("weights_only", False)
            return saved_load(*args, **kwargs)

        _load._recgen_compat = True  # type: ignore[attr-defined]
        torch.load = _load
    sys.argv = sys.argv[:1] if sys.argv else ["recgen"]
    if trainer_mod is not None:
        trainer_mod.get_tensorboard = _null_tensorboard
    try:
        with warnings.catch_warnings():
            for category in (FutureWarning, DeprecationWarning):
                warnings.filterwarnings("ignore", category=category, module=r"recbole(\.|$)")
            yield
    finally:
        for name, old in saved_np.items():
            if old is _MISSING:
                np.__dict__.pop(name, None)
            else:
                np.__dict__[name] = old
        torch.load = saved_load
        sys.argv = saved_argv
        if saved_cuda is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved_cuda
        if trainer_mod is not None:
            trainer_mod.get_tensorboard = saved_tb


def _import_trainer_module() -> Any | None:
    """``recbole.trainer.trainer`` (imports cleanly without the aliases), or None if absent."""
    try:
        import recbole.trainer.trainer as trainer_mod
    except ImportError:  # pragma: no cover - recbole is a declared dependency
        logger.warning("recbole is not importable; only numpy/torch shims applied")
        return None
    return trainer_mod
