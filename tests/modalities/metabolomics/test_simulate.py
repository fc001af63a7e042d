"""The generated study's oracle: drift correction, planted DA, the reader round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from resistomics.modalities.metabolomics._limma import limma_moderated_t
from resistomics.modalities.metabolomics._processing import (
    correct_drift_qc_rlsc,
    impute_half_minimum,
    log_transform,
    pqn_normalize,
)
from resistomics.modalities.metabolomics._readers import MetaboliteReadContext, read_feature_table
from resistomics.modalities.metabolomics._simulate import (
    SimulatedStudy,
    simulate_study,
    write_feature_table,
)

N_FEATURES = 300
PROGRAM = [f"CHEBI:{100000 + i}" for i in range(0, N_FEATURES, 10)]  # 30 features


@pytest.fixture(scope="module", params=[False, True], ids=["unpaired", "paired"])
def study(request: pytest.FixtureRequest) -> SimulatedStudy:
    return simulate_study(
        n_study=80, n_features=N_FEATURES, program=PROGRAM, paired=request.param, seed=4
    )


def _qc_rsd(x: np.ndarray, qc: np.ndarray) -> float:
    v = x[:, qc]
    return float(np.nanmedian(np.nanstd(v, axis=1, ddof=1) / np.nanmean(v, axis=1)))


def _corrected(study: SimulatedStudy) -> tuple[np.ndarray, np.ndarray]:
    s = study.samples
    qc = (s["sample_type"] == "qc").to_numpy()
    batch = s["batch"].to_numpy()
    seen = np.isfinite(study.values)
    enough = np.all([seen[:, qc & (batch == b)].sum(axis=1) >= 5 for b in (1, 2)], axis=0)
    x = correct_drift_qc_rlsc(
        study.values[enough], injection_order=s["injection_order"].to_numpy(), qc=qc, batch=batch
    )
    return x, enough


def test_design_and_missingness(study: SimulatedStudy) -> None:
    s = study.samples
    qc = (s["sample_type"] == "qc").to_numpy()
    assert (s["injection_order"].to_numpy() == np.arange(1, len(s) + 1)).all()
    assert qc.sum() == 16 and (~qc).sum() == 80  # a QC per 6 injections, one per batch end
    assert set(s["batch"]) == {1, 2} and (s.loc[~qc, "group"].value_counts() == 40).all()
    assert study.features["planted"].sum() == 30
    missing = np.isnan(study.values)
    assert 0.05 < missing.mean() < 0.2
    # not at random: missing values come from the feature's low end
    clean = np.log(study.clean)
    z = (clean - clean.mean(axis=1, keepdims=True)) / clean.std(axis=1, keepdims=True)
    assert z[missing].mean() < -0.8 < z[~missing].mean() + 0.9


def test_qc_rlsc_removes_the_drift(study: SimulatedStudy) -> None:
    qc = (study.samples["sample_type"] == "qc").to_numpy()
    x, enough = _corrected(study)
    before, after = _qc_rsd(study.values[enough], qc), _qc_rsd(x, qc)
    # seed 4, 80 samples, 16 QCs: median QC RSD 0.287 / 0.298 (unpaired / paired) before,
    # 0.052 / 0.052 after: down to the technical noise (SD 0.05)
    assert before > 0.25 and after < 0.08 and after < before / 4
    # the study samples move towards their drift-free values (up to a factor per feature)
    cols = ~qc

    def spread(v: np.ndarray) -> float:
        return float(
            np.nanmedian(np.nanstd(np.log(v[:, cols] / study.clean[enough][:, cols]), axis=1))
        )

    assert spread(x) < spread(study.values[enough]) / 3


def test_planted_program_tops_the_differential_abundance(study: SimulatedStudy) -> None:
    s = study.samples
    x, enough = _corrected(study)
    study_cols = (s["sample_type"] == "study").to_numpy()
    keep = np.isfinite(x[:, study_cols]).mean(axis=1) >= 0.5
    y = log_transform(pqn_normalize(impute_half_minimum(x[keep][:, study_cols])))
    group = (s.loc[study_cols, "group"] == "B").to_numpy(dtype=float)
    if s.loc[study_cols, "subject"].duplicated().any():  # paired: ~ subject + group
        subjects = s.loc[study_cols, "subject"].to_numpy()
        levels = np.unique(subjects)
        design = np.column_stack([(subjects == lv).astype(float) for lv in levels] + [group])
    else:
        design = np.column_stack([np.ones(group.size), group])
    res = limma_moderated_t(y.T, design, coef=design.shape[1] - 1)
    planted = study.features["planted"].to_numpy()[enough][keep]
    truth = study.features["log2_fc"].to_numpy()[enough][keep]
    n = int(planted.sum())
    top = np.argsort(res.p)[:n]
    assert n >= 25 and planted[top].mean() >= 0.9
    assert (np.sign(res.log_fc[planted]) == np.sign(truth[planted])).all()
    # a null set of the same size (features not in the program) does not rank on top
    null = np.flatnonzero(~planted)[::7][:n]
    assert np.isin(null, top).mean() <= 0.1
    assert (res.p_adj[~planted] < 0.05).mean() < 0.05


def test_the_feature_table_reader_ingests_it(tmp_path: Path) -> None:
    study = simulate_study(n_study=12, n_features=20, program=PROGRAM[:1], qc_every=4, seed=1)
    table_path, sheet = write_feature_table(study, tmp_path)
    got = read_feature_table(table_path, MetaboliteReadContext())
    assert list(got.samples["sample_id"]) == list(study.samples["sample_id"])
    assert list(got.samples["sample_type"]) == list(study.samples["sample_type"])
    assert list(got.features["ChEBI"]) == list(study.features["chebi"])
    assert list(got.samples["injection_order"]) == list(study.samples["injection_order"])
    assert list(got.samples["batch"].astype(str)) == list(study.samples["batch"].astype(str))
    np.testing.assert_allclose(got.values, study.values, rtol=1e-5)
    assert sheet.read_text().splitlines()[0] == (
        "sample_id,sample_type,group,subject,injection_order,batch"
    )
