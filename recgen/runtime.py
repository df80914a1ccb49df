"""Process-level settings for CPU work: thread counts, OMP policy, seeding.

Import this module (or call :func:`configure`) before torch does heavy work: with the
default OMP busy-wait policy, 2-thread decoding on a shared 2-core machine was measured
~30x slower than with ``OMP_WAIT_POLICY=PASSIVE``.
"""

from __future__ import annotations

import logging
import os
import random

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# recgen never downloads at run time: make the Hugging Face stack fail fast instead.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

logger = logging.getLogger(__name__)


def default_threads() -> int:
    """Number of cores this process may use (affinity-aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def configure(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (default: all free cores) and return it."""
    import torch

    n = threads if threads and threads > 0 else default_threads()
    torch.set_num_threads(n)
    logger.debug("torch threads = %d", n)
    return n


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch RNGs."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
