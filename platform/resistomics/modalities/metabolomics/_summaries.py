"""Validation summaries of a ``metabolomics.abundance`` store (one Dask graph, one compute)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from resistomics.storage import FeatureMatrix

__all__ = ["metabolomics_params", "summarize_metabolomics"]

ARRAY = "abundance"


def summarize_metabolomics(store: FeatureMatrix, *, log_scaled: bool) -> dict[str, pd.DataFrame]:
    """Tables the ``metabolomics.abundance`` suites check.

    ``features``: per feature, ``n_negative`` (values < 0; 0 when the data are declared
    log-scaled), ``missing_fraction`` (NaN cells / samples) and the quality-control
    figures of Broadhurst et al. 2018 (Metabolomics 14:72, "Guidelines and considerations
    for the use of system suitability and quality control samples in mass spectrometry
    assays applied in untargeted clinical metabolomic studies"), NaN where they cannot be
    computed: ``qc_rsd``, the relative standard deviation of the feature across the pooled
    QC samples (sample SD / mean, over the QCs that measured it, at least 2);
    ``d_ratio``, the QC standard deviation over the study samples' (technical against
    biological variation); ``blank_qc_ratio``, the mean in blanks over the mean in QCs
    (background contribution). On data declared log-scaled (base unknown) the two
    ratios of means are not defined and stay NaN; the D-ratio, a ratio of spreads, is
    computed on the values as stored. ``samples``: per sample, its type and
    ``missing_fraction`` (NaN cells / features). ``study_samples``: the sample IDs of the
    study samples (not QC, not blanks).
    """
    import dask
    import dask.array as da

    a = store.array(ARRAY)
    missing = da.isnan(a)
    samples = store.samples
    kinds = samples["sample_type"].astype(str).to_numpy()
    groups = {k: a[:, np.flatnonzero(kinds == k)] for k in ("qc", "blank", "study")}
    n_neg, miss_f, miss_s, qc_stats, study_sd, blank_mean = dask.compute(
        (a < 0).sum(axis=1),
        missing.sum(axis=1),
        missing.sum(axis=0),
        _moments(groups["qc"]),
        _moments(groups["study"])[2],
        _moments(groups["blank"])[1],
    )
    n_qc, qc_mean, qc_sd = qc_stats
    n_f, n_s = a.shape
    nan = np.full(n_f, np.nan)
    ids = store.features["feature_id"].astype(str).to_numpy()
    features = pd.DataFrame(
        {
            "feature_id": ids,
            "n_negative": np.zeros(n_f, dtype=np.int64)
            if log_scaled
            else np.asarray(n_neg, dtype=np.int64),
            "missing_fraction": np.asarray(miss_f) / n_s if n_s else np.zeros(n_f),
            "qc_rsd": nan if log_scaled else _ratio(qc_sd, qc_mean),
            "d_ratio": _ratio(qc_sd, study_sd),
            "blank_qc_ratio": nan if log_scaled else _ratio(blank_mean, qc_mean),
            "n_qc_measured": np.asarray(n_qc, dtype=np.int64),
        }
    )
    table = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].astype(str),
            "sample_type": samples["sample_type"].astype(str),
            "missing_fraction": np.asarray(miss_s) / n_f if n_f else np.zeros(n_s),
        }
    )
    study = table.loc[table["sample_type"] == "study", ["sample_id"]].reset_index(drop=True)
    return {"features": features, "samples": table, "study_samples": study}


def _moments(block: Any) -> tuple[Any, Any, Any]:
    """Per feature (row): values measured, their mean and sample SD (ddof 1), NaN-aware;
    mean NaN without values, SD NaN with fewer than 2 (lazy, Dask)."""
    import dask.array as da

    ok = ~da.isnan(block)
    n = ok.sum(axis=1)
    filled = da.where(ok, block, 0.0)
    total = filled.sum(axis=1)
    mean = da.where(n > 0, total / da.maximum(n, 1), np.nan)
    centred = da.where(ok, block - mean[:, None], 0.0)
    var = (centred**2).sum(axis=1) / da.maximum(n - 1, 1)
    return n, mean, da.where(n > 1, da.sqrt(var), np.nan)


def _ratio(top: Any, bottom: Any) -> np.ndarray:
    """``top / bottom`` where both are finite and ``bottom`` > 0, else NaN."""
    t, b = np.asarray(top, dtype=np.float64), np.asarray(bottom, dtype=np.float64)
    out = np.full(t.shape, np.nan)
    ok = np.isfinite(t) & np.isfinite(b) & (b > 0)
    np.divide(t, b, out=out, where=ok)
    return out


def metabolomics_params(
    *,
    registered_samples: Iterable[str],
    max_feature_missing: float = 1.0,
    max_sample_missing: float = 1.0,
    max_qc_rsd: float | None = None,
    max_blank_qc_ratio: float | None = None,
) -> dict[str, Any]:
    """The ``$name`` values of the ``metabolomics.abundance`` suites (``None``: no bound,
    the figure is reported only)."""
    return {
        "registered_samples": sorted(registered_samples),
        "max_feature_missing": max_feature_missing,
        "max_sample_missing": max_sample_missing,
        "max_qc_rsd": max_qc_rsd,
        "max_blank_qc_ratio": max_blank_qc_ratio,
    }
