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
    log-scaled) and ``missing_fraction`` (NaN cells / samples). ``samples``: per sample,
    its type and ``missing_fraction`` (NaN cells / features). ``study_samples``: the
    sample IDs of the study samples (not QC, not blanks).
    """
    import dask
    import dask.array as da

    a = store.array(ARRAY)
    missing = da.isnan(a)
    n_neg, miss_f, miss_s = dask.compute(
        (a < 0).sum(axis=1), missing.sum(axis=1), missing.sum(axis=0)
    )
    n_f, n_s = a.shape
    ids = store.features["feature_id"].astype(str).to_numpy()
    samples = store.samples
    features = pd.DataFrame(
        {
            "feature_id": ids,
            "n_negative": np.zeros(n_f, dtype=np.int64)
            if log_scaled
            else np.asarray(n_neg, dtype=np.int64),
            "missing_fraction": np.asarray(miss_f) / n_s if n_s else np.zeros(n_f),
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


def metabolomics_params(
    *,
    registered_samples: Iterable[str],
    max_feature_missing: float = 1.0,
    max_sample_missing: float = 1.0,
) -> dict[str, Any]:
    """The ``$name`` values of the ``metabolomics.abundance`` suites."""
    return {
        "registered_samples": sorted(registered_samples),
        "max_feature_missing": max_feature_missing,
        "max_sample_missing": max_sample_missing,
    }
