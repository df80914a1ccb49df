"""recgen.eval.significance: bootstrap CIs and paired tests."""

from __future__ import annotations

import numpy as np
import pytest

from recgen.eval.significance import CI, PairedResult, bootstrap_ci, paired_test


def test_bootstrap_ci_seeded_and_contains_mean():
    rng = np.random.default_rng(0)
    values = rng.random(500)
    ci1 = bootstrap_ci(values, n_resamples=2000, seed=3)
    ci2 = bootstrap_ci(values, n_resamples=2000, seed=3)
    assert ci1 == ci2  # same seed → identical output
    assert ci1 != bootstrap_ci(values, n_resamples=2000, seed=4)
    assert isinstance(ci1, CI)
    mean, lo, hi = ci1  # unpacks as a plain (mean, lo, hi) tuple
    assert mean == pytest.approx(values.mean())
    assert lo < mean < hi
    # the standard error of a mean of 500 U(0,1) values is ~0.0129; a 95% CI is ~±1.96 SE
    se = values.std() / np.sqrt(values.size)
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_bootstrap_ci_chunked_is_seeded():
    # 3000 users x 1000 resamples exceeds one chunk (2e6 indices): still seeded and sane
    rng = np.random.default_rng(1)
    values = rng.random(3000)
    ci = bootstrap_ci(values, n_resamples=1000, seed=0)
    assert ci.lo < values.mean() < ci.hi
    assert bootstrap_ci(values, n_resamples=1000, seed=0) == ci


def test_bootstrap_ci_constant_and_errors():
    # a constant sample has a degenerate interval at the constant
    assert bootstrap_ci([0.25] * 40, n_resamples=200) == CI(0.25, 0.25, 0.25)
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0, 2.0], alpha=1.5)
    with pytest.raises(ValueError, match="not finite"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci([1.0, 2.0], n_resamples=0)


def test_paired_identical_inputs():
    a = np.random.default_rng(2).random(100)
    res = paired_test(a, a.copy(), n_resamples=500)
    assert isinstance(res, PairedResult)
    # every difference is 0: the shifted-bootstrap p is (1 + B) / (B + 1) = 1, Wilcoxon set to 1
    assert res.mean_diff == 0.0
    assert res.ci_lo == 0.0 and res.ci_hi == 0.0
    assert res.p_bootstrap == 1.0
    assert res.p_wilcoxon == 1.0
    assert res.n == 100


def test_paired_large_effect_is_significant():
    rng = np.random.default_rng(5)
    b = rng.random(300)
    a = b + 0.2 + 0.05 * rng.standard_normal(300)  # A beats B by ~0.2 for nearly every user
    res = paired_test(a, b, n_resamples=2000, seed=0)
    assert res.mean_diff == pytest.approx(float(np.mean(a - b)))
    assert res.ci_lo < res.mean_diff < res.ci_hi
    assert res.ci_lo > 0.15
    # no resample of the centred differences reaches |0.2|: p = 1 / (B + 1), the minimum
    assert res.p_bootstrap == pytest.approx(1 / 2001)
    assert res.p_wilcoxon < 1e-10
    # swapping the methods flips the sign, not the p-values
    rev = paired_test(b, a, n_resamples=2000, seed=0)
    assert rev.mean_diff == pytest.approx(-res.mean_diff)
    assert rev.p_bootstrap == res.p_bootstrap
    assert rev.p_wilcoxon == pytest.approx(res.p_wilcoxon)


def test_paired_no_effect_is_not_significant_and_seeded():
    rng = np.random.default_rng(7)
    a = rng.integers(0, 2, 400).astype(float)  # hit@k-like 0/1 values, many zero differences
    b = rng.permutation(a)
    res = paired_test(a, b, n_resamples=2000, seed=11)
    assert res == paired_test(a, b, n_resamples=2000, seed=11)
    assert res.p_bootstrap > 0.05
    assert res.p_wilcoxon > 0.05
    assert 0.0 < res.p_bootstrap <= 1.0


def test_paired_errors():
    with pytest.raises(ValueError, match="same users"):
        paired_test([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="1-D"):
        paired_test([[1.0]], [[1.0]])
