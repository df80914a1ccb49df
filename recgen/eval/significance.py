r"""Confidence intervals and paired tests over users (numpy; scipy for Wilcoxon).

Inputs are per-user metric values (e.g. ``evaluate_rankings(...)["ndcg@5"]``); users are
the resampling unit. Everything is seeded: the same inputs and seed give the same output.

- :func:`bootstrap_ci`: percentile bootstrap of the mean. Draw ``B`` resamples of the ``n``
  users with replacement, take each resample's mean ``m*_b``; the ``1 - alpha`` interval
  is ``[q_{alpha/2}(m*), q_{1-alpha/2}(m*)]`` (``numpy.quantile``, linear interpolation).
- :func:`paired_test`: for two methods on the same users, ``d_u = a_u - b_u``.
  ``mean_diff = mean(d)``; CI as above on ``d``. Two-sided bootstrap p-value under the
  null "mean difference 0", using the shifted bootstrap (Efron & Tibshirani 1993, §16.4):
  the resampled means of ``d - mean(d)`` are ``m*_b - mean(d)``, and

      p_bootstrap = (1 + #{b : |m*_b - mean(d)| >= |mean(d)|}) / (B + 1)

  (never 0; exactly 1 when ``d`` is identically 0). ``p_wilcoxon`` is
  ``scipy.stats.wilcoxon(d)`` (signed-rank test, two-sided, zero differences dropped —
  scipy's default ``zero_method="wilcox"``); all differences zero → ``p_wilcoxon = 1.0``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = ["CI", "PairedResult", "bootstrap_ci", "bootstrap_means", "paired_test"]

# Resample in chunks of about this many drawn indices, so memory stays bounded for many
# users (the chunk size depends only on n, so results depend only on inputs and seed).
_CHUNK_ELEMENTS = 2_000_000


class CI(NamedTuple):
    """A mean and its bootstrap confidence interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float


class PairedResult(NamedTuple):
    """Paired comparison of method A vs method B on the same ``n`` users (A - B)."""

    mean_diff: float
    ci_lo: float
    ci_hi: float
    p_bootstrap: float
    p_wilcoxon: float
    n: int


def _as_values(values: Sequence[float] | np.ndarray, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per user), got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: need at least one user")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{bad}] = {arr[bad]} is not finite")
    return arr


def _check_params(n_resamples: int, alpha: float | None = None) -> None:
    if (
        isinstance(n_resamples, bool)
        or not isinstance(n_resamples, int | np.integer)
        or n_resamples < 1
    ):
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    if alpha is not None and not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")


def bootstrap_means(values: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """``(n_resamples,)`` means of users resampled with replacement (seeded, vectorised)."""
    values = _as_values(values)
    _check_params(n_resamples)
    n = values.size
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> CI:
    """Mean of ``values`` with a ``1 - alpha`` percentile-bootstrap interval over users."""
    arr = _as_values(values)
    _check_params(n_resamples, alpha)
    means = bootstrap_means(arr, n_resamples, seed)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    mean = float(arr.mean())
    # The percentile interval of a constant sample is [c, c]; guard against rounding that
    # would put the sample mean a hair outside it.
    return CI(mean=mean, lo=float(min(lo, mean)), hi=float(max(hi, mean)))


def paired_test(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    n_resamples: int = 10_000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedResult:
    """Is method A's mean different from method B's on the same users? (two-sided)

    ``a[u]`` and ``b[u]`` must be the same user's values. Returns the mean of ``a - b``, its
    ``1 - alpha`` bootstrap CI, the shifted-bootstrap p-value and the Wilcoxon signed-rank
    p-value (see the module docstring for the formulas).
    """
    a_arr = _as_values(a, "a")
    b_arr = _as_values(b, "b")
    if a_arr.size != b_arr.size:
        raise ValueError(
            f"a has {a_arr.size} values but b has {b_arr.size}; a paired test needs the same "
            "users in the same order"
        )
    _check_params(n_resamples, alpha)
    d = a_arr - b_arr
    n = int(d.size)
    obs = float(d.mean())
    means = bootstrap_means(d, n_resamples, seed)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    # Tolerance: differences of means below 1e-12 are rounding noise for metrics in [0, 1].
    extreme = np.abs(means - obs) >= abs(obs) - 1e-12
    p_boot = float((1 + int(extreme.sum())) / (n_resamples + 1))

    if np.all(d == 0):
        p_wil = 1.0
    else:
        from scipy.stats import wilcoxon

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # small-sample / ties notices
            p_wil = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedResult(
        mean_diff=obs,
        ci_lo=float(min(lo, obs)),
        ci_hi=float(max(hi, obs)),
        p_bootstrap=p_boot,
        p_wilcoxon=p_wil,
        n=n,
    )
