"""limma parity on Su 2020 (reference: limma 3.54.1, ``limma_su2020.R``) and planted signal."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.modalities.metabolomics._limma import limma_moderated_t

DATA = Path("/work/shared/data/metabolomics_su2020")


@pytest.mark.skipif(not DATA.exists(), reason="shared Su 2020 data not present")
def test_limma_matches_limma_3_54_1_on_su2020() -> None:
    d = pd.read_csv(DATA / "Su_covid_metabolomics_processed.csv.gz")
    ref = pd.read_csv(DATA / "limma_3.54.1" / "limma_covid_vs_healthy.tsv.gz", sep="\t")
    features = [c for c in d.columns if c not in ("sample_id", "WHO_status", "Group")]
    assert features == list(ref["chebi"].astype(str))
    covid = (d["Group"].str.strip() == "COVID19").to_numpy(dtype=float)  # trailing space
    design = np.column_stack([np.ones(len(covid)), covid])
    res = limma_moderated_t(d[features].to_numpy(), design, coef=1)
    # relative 1e-6 on every column (absolute 1e-12 floor for p-values near zero)
    for ours, theirs in [
        (res.log_fc, "logFC"),
        (res.t, "t"),
        (res.p, "P.Value"),
        (res.p_adj, "adj.P.Val"),
        (res.s2_post, "s2_post"),
        (res.df_total, "df_total"),
    ]:
        np.testing.assert_allclose(ours, ref[theirs].to_numpy(), rtol=1e-6, atol=1e-12)


def test_limma_recovers_planted_changes_with_missing_values() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(0, 1, size=(40, 200))
    group = np.repeat([0.0, 1.0], 20)
    y[group == 1, :10] += 2.0
    y[rng.random(y.shape) < 0.1] = np.nan
    res = limma_moderated_t(y, np.column_stack([np.ones(40), group]), coef=1)
    assert set(np.argsort(res.p)[:10]) == set(range(10))
    assert (res.p_adj[:10] < 0.01).all() and (res.p_adj[10:] > 0.05).mean() > 0.9
    assert res.df_residual.min() < 38  # missing values lower each feature's own df


def test_lm_fit_without_missing_values_equals_the_masked_fit() -> None:
    from resistomics.modalities.metabolomics._limma import lm_fit

    rng = np.random.default_rng(8)
    y = rng.normal(0, 1, size=(30, 50))
    design = np.column_stack([np.ones(30), np.repeat([0.0, 1.0], 15), rng.normal(size=30)])
    with_gap = np.column_stack([y, np.full(30, np.nan)])  # one NaN: the per-feature path
    with_gap[0, -1] = 1.0
    fast = lm_fit(y, design, coef=1)
    masked = lm_fit(with_gap, design, coef=1)
    for a, b in zip(fast, masked, strict=True):
        np.testing.assert_allclose(a, b[:50], rtol=1e-10)
