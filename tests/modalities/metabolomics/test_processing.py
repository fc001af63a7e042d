"""Metabolomics processing steps (``_processing``) against oracles.

Oracles: small matrices computed by hand from MetaboAnalyst's definitions; a planted
dilution factor per sample that PQN must recover; a generated study with drift along
injection order in two batches and pooled QCs, where QC-RLSC must lower the QC RSD and keep
a planted group difference; correlated data where KNN imputation must beat half-minimum.
"""

from __future__ import annotations

import numpy as np
import pytest

from resistomics.errors import MethodInputError
from resistomics.modalities.metabolomics._processing import (
    auto_scale,
    correct_drift_qc_rlsc,
    filter_missingness,
    glog_transform,
    impute_half_minimum,
    impute_knn,
    log_transform,
    median_normalize,
    pareto_scale,
    pqn_normalize,
    range_scale,
    sum_normalize,
)

NAN = np.nan


def test_filter_missingness_overall_and_per_group() -> None:
    x = np.array(
        [
            [1.0, 2.0, 3.0, 4.0],  # 0 % missing
            [1.0, NAN, 3.0, 4.0],  # 25 %
            [NAN, NAN, 3.0, 4.0],  # 50 %, all in group a
            [NAN, NAN, NAN, 4.0],  # 75 %
            [1.0, NAN, NAN, 4.0],  # 50 %, half in each group
        ]
    )
    assert filter_missingness(x, max_fraction=0.25).tolist() == [True, True, False, False, False]
    assert filter_missingness(x, max_fraction=0.5).tolist() == [True, True, True, False, True]
    groups = ["a", "a", "b", "b"]
    # Features 1 and 2 are complete in group b; 3 and 4 are complete in neither group.
    assert filter_missingness(x, max_fraction=0.0, groups=groups).tolist() == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert filter_missingness(x, max_fraction=0.5, groups=groups).tolist() == [True] * 5
    with pytest.raises(MethodInputError):
        filter_missingness(x, max_fraction=0.5, groups=["a", "b"])


def test_impute_half_minimum() -> None:
    x = np.array([[4.0, NAN, 2.0], [NAN, 10.0, NAN]])
    out = impute_half_minimum(x)
    np.testing.assert_array_equal(out, [[4.0, 1.0, 2.0], [5.0, 10.0, 5.0]])
    assert np.isnan(x[0, 1])  # input untouched
    with pytest.raises(MethodInputError, match="feature 1"):
        impute_half_minimum(np.array([[1.0, 2.0], [NAN, NAN]]))


def test_impute_knn_hand_case() -> None:
    # Feature 0's nearest features over samples 0-2 are 1 (distance 0.01) then 2 (1.0);
    # feature 3 is far away.  k=1 takes feature 1's sample-3 value, k=2 the mean with 2's.
    x = np.array(
        [
            [1.0, 2.0, 3.0, NAN],
            [1.1, 2.1, 3.1, 7.0],
            [2.0, 3.0, 4.0, 9.0],
            [50.0, 60.0, 70.0, 80.0],
        ]
    )
    assert impute_knn(x, k=1)[0, 3] == pytest.approx(7.0)
    assert impute_knn(x, k=2)[0, 3] == pytest.approx(8.0)
    np.testing.assert_array_equal(impute_knn(x, k=2)[1:], x[1:])
    with pytest.raises(MethodInputError):
        impute_knn(np.array([[1.0, NAN], [NAN, 2.0]]), k=1)


def test_knn_beats_half_minimum_on_correlated_data() -> None:
    rng = np.random.default_rng(3)
    n_features, n_samples = 120, 40
    latent = rng.normal(size=(4, n_samples))
    loadings = rng.normal(size=(n_features, 4))
    truth = 10.0 + loadings @ latent + rng.normal(scale=0.2, size=(n_features, n_samples))
    x = truth.copy()
    holes = rng.random(x.shape) < 0.1
    x[holes] = NAN
    err_knn = np.sqrt(np.mean((impute_knn(x, k=5)[holes] - truth[holes]) ** 2))
    err_half = np.sqrt(np.mean((impute_half_minimum(x)[holes] - truth[holes]) ** 2))
    # Measured RMSE: KNN 1.00, half-minimum 7.22 (it is meant for values below detection);
    # the features' own SD is ~2.
    assert err_knn < 0.25 * err_half
    assert err_knn < 1.5


def test_sum_and_median_normalize() -> None:
    x = np.array([[1.0, 2.0], [3.0, NAN], [6.0, 8.0]])
    np.testing.assert_allclose(sum_normalize(x), [[100.0, 200.0], [300.0, NAN], [600.0, 800.0]])
    np.testing.assert_allclose(median_normalize(x), [[1 / 3, 0.4], [1.0, NAN], [2.0, 1.6]])


def test_pqn_hand_case_and_planted_dilution() -> None:
    # Sample 1 is sample 0 diluted twice except for one changed feature: the median
    # quotient ignores the change.  Reference (median of samples) = [1.5, 3, 4.5, 9].
    x = np.array([[2.0, 1.0], [4.0, 2.0], [6.0, 3.0], [8.0, 10.0]])
    out = pqn_normalize(x, qc=np.array([True, False]))
    np.testing.assert_allclose(out[:3, 0], out[:3, 1])

    rng = np.random.default_rng(7)
    n_features, n_samples = 300, 24
    base = rng.lognormal(mean=3.0, sigma=1.0, size=(n_features, 1))
    biology = rng.lognormal(sigma=0.1, size=(n_features, n_samples))
    dilution = rng.uniform(0.3, 3.0, size=n_samples)
    x = base * biology * dilution
    qc = np.zeros(n_samples, dtype=bool)
    qc[::4] = True
    x[:, qc] = base * dilution[qc]  # pooled QCs: no biological variation
    x[rng.random(x.shape) < 0.05] = NAN
    recovered = x / pqn_normalize(x, qc=qc)
    factor = np.nanmedian(recovered, axis=0)
    ratio = factor / dilution
    # Up to one global constant (the reference's own dilution), within 3 %.
    np.testing.assert_allclose(ratio / np.median(ratio), 1.0, rtol=0.03)
    ratio_median_ref = np.nanmedian(x / pqn_normalize(x), axis=0) / dilution
    np.testing.assert_allclose(ratio_median_ref / np.median(ratio_median_ref), 1.0, rtol=0.03)


def _rsd(a: np.ndarray) -> np.ndarray:
    return np.std(a, axis=1, ddof=1) / np.mean(a, axis=1)


def test_qc_rlsc_removes_drift_and_keeps_group_difference() -> None:
    rng = np.random.default_rng(11)
    n_features, per_batch = 40, 60
    n_samples = 2 * per_batch
    order = np.arange(n_samples, dtype=float)
    batch = np.repeat(["b1", "b2"], per_batch)
    qc = (np.arange(n_samples) % per_batch) % 6 == 0  # 10 pooled QCs per batch
    # Group b is injected after group a in each batch, so the drift confounds the groups.
    group = np.where(np.arange(n_samples) % per_batch < per_batch // 2, "a", "b")
    base = rng.lognormal(mean=5.0, sigma=1.0, size=(n_features, 1))
    true = base * rng.lognormal(sigma=0.05, size=(n_features, n_samples))
    planted = np.arange(5)
    study_b = (~qc) & (group == "b")
    true[np.ix_(planted, np.flatnonzero(study_b))] *= 2.0
    # Per feature: a smooth signal loss along injection order and a batch offset.
    pos = (order % per_batch) / per_batch
    slope = rng.uniform(0.3, 0.8, size=(n_features, 1))
    curve = 1.0 - slope * pos + 0.2 * np.sin(np.pi * pos)
    offset = np.where(batch == "b2", rng.uniform(1.3, 1.8, size=(n_features, 1)), 1.0)
    x = true * curve * offset

    corrected = correct_drift_qc_rlsc(x, injection_order=order, qc=qc, batch=batch)
    before = float(np.median(_rsd(x[:, qc])))
    after = float(np.median(_rsd(corrected[:, qc])))
    # Measured: median QC RSD 0.295 before, 0.047 after.
    assert before > 0.25
    assert after < 0.07
    study_a = (~qc) & (group == "a")
    # The unchanged features of group a's study samples tighten as well: 0.22 -> 0.05.
    assert np.median(_rsd(corrected[5:, study_a])) < 0.1 < 0.2 < np.median(_rsd(x[5:, study_a]))

    def log_fc(m: np.ndarray) -> np.ndarray:
        return np.log2(m[:, study_b].mean(axis=1) / m[:, study_a].mean(axis=1))

    others = np.setdiff1d(np.arange(n_features), planted)
    # Before correction the drift fakes changes (max |log2 FC| of unchanged features 0.76);
    # after it that is 0.11 and the planted 2-fold change comes out at 0.93-1.04.
    assert np.abs(log_fc(x)[others]).max() > 0.5
    np.testing.assert_allclose(log_fc(corrected)[planted], 1.0, atol=0.1)
    assert np.abs(log_fc(corrected)[others]).max() < 0.15

    few = qc & (order < 10)  # one batch with two QCs only
    with pytest.raises(MethodInputError, match="observed QC values"):
        correct_drift_qc_rlsc(x, injection_order=order, qc=few, batch=batch)


def test_log_and_glog_transform() -> None:
    x = np.array([[1.0, 8.0], [100.0, NAN]])
    np.testing.assert_allclose(log_transform(x, base=2), [[0.0, 3.0], [np.log2(100.0), NAN]])
    np.testing.assert_allclose(log_transform(x, base=10), [[0.0, np.log10(8.0)], [2.0, NAN]])
    with pytest.raises(MethodInputError):
        log_transform(np.array([[0.0, 1.0]]))
    # c = min |nonzero| / 10 = 0.1; glog(0) = log10(c / 2); glog(x) -> log10(x) for x >> c.
    z = np.array([[0.0, 1.0, 1000.0]])
    g = glog_transform(z)
    assert g[0, 0] == pytest.approx(np.log10(0.05))
    assert g[0, 1] == pytest.approx(np.log10((1.0 + np.sqrt(1.01)) / 2.0))
    assert g[0, 2] == pytest.approx(3.0, abs=1e-6)
    assert glog_transform(z, base=2)[0, 2] == pytest.approx(np.log2(1000.0), abs=1e-6)


def test_scaling() -> None:
    x = np.array([[1.0, 2.0, 3.0, 6.0], [5.0, 5.0, 5.0, 5.0], [2.0, NAN, 4.0, 6.0]])
    # Feature 0: mean 3, SD sqrt(14/3), range 5.  Feature 2: mean 4, SD 2, range 4.
    sd0 = np.sqrt(14.0 / 3.0)
    auto = auto_scale(x)
    np.testing.assert_allclose(auto[0], np.array([-2.0, -1.0, 0.0, 3.0]) / sd0)
    np.testing.assert_allclose(auto[2], [-1.0, NAN, 0.0, 1.0])
    assert np.isnan(auto[1]).all() and np.isnan(pareto_scale(x)[1]).all()  # SD 0
    np.testing.assert_allclose(pareto_scale(x)[0], np.array([-2.0, -1.0, 0.0, 3.0]) / np.sqrt(sd0))
    rng_scaled = range_scale(x)
    np.testing.assert_allclose(rng_scaled[0], np.array([-2.0, -1.0, 0.0, 3.0]) / 5.0)
    np.testing.assert_array_equal(rng_scaled[1], x[1])  # constant feature unchanged
    np.testing.assert_allclose(rng_scaled[2], [-0.5, NAN, 0.0, 0.5])
