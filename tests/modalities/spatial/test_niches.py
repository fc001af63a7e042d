"""Resistance niches: a hand-made section, hand-made per-section tables, and generated
cohorts with and without fibroblasts planted around program-high tumour cells."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from resistomics.contrasts import parse_contrast
from resistomics.errors import InputError
from resistomics.modalities.spatial import (
    CELL_TYPES,
    Section,
    cohort_niche_tests,
    map_niches,
    niche_changes,
    niche_composition,
    resistance_niches,
    section_niches,
    simulate_niche_cohort,
)

CONTRAST = parse_contrast("phase:progression vs baseline")
TYPES = ["tumour", "fibroblast", "T cell", "macrophage"]


def _tiny() -> tuple[sp.csr_matrix, pd.Categorical, np.ndarray]:
    """Six tumour cells scored 5..0 (thirds: cells 0, 1 high; 4, 5 low), then two
    fibroblasts (6, 7), a T cell (8) and a macrophage (9); row i lists i's neighbours."""
    nbrs = {
        0: [6, 7, 1],  # 2/3 fibroblast, 1/3 tumour
        1: [6, 8],  # 1/2 fibroblast, 1/2 T cell
        2: [0, 3],
        3: [2, 9],
        4: [8, 9, 5, 2],  # 1/4 T, 1/4 macrophage, 1/2 tumour
        5: [4],  # all tumour
        6: [0],
        7: [0],
        8: [1],
        9: [],
    }
    rows = [i for i, js in nbrs.items() for _ in js]
    cols = [j for js in nbrs.values() for j in js]
    adj = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(10, 10))
    labels = pd.Categorical(
        ["tumour"] * 6 + ["fibroblast"] * 2 + ["T cell", "macrophage"], categories=TYPES
    )
    score = np.array([5, 4, 3, 2, 1, 0, np.nan, np.nan, np.nan, np.nan])
    return adj, labels, score


def test_composition_of_a_hand_made_section() -> None:
    adj, labels, score = _tiny()
    got = niche_composition(adj, labels, score, tumour="tumour", min_cells=2, section="s1")
    got = got.set_index("neighbour_type").loc[TYPES]
    assert (got["n_high"] == 2).all() and (got["n_low"] == 2).all()
    high = {"tumour": (1 / 3 + 0) / 2, "fibroblast": (2 / 3 + 1 / 2) / 2, "T cell": 1 / 4}
    low = {"tumour": (1 / 2 + 1) / 2, "T cell": 1 / 8, "macrophage": 1 / 8}
    mh = np.array([high.get(t, 0.0) for t in TYPES])
    ml = np.array([low.get(t, 0.0) for t in TYPES])
    np.testing.assert_allclose(got["mean_high"], mh, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got["mean_low"], ml, rtol=0, atol=1e-15)
    np.testing.assert_allclose(got["difference"], mh - ml, atol=1e-15)
    np.testing.assert_allclose(got["log2_ratio"], np.log2((mh + 0.01) / (ml + 0.01)), atol=1e-12)
    # fibroblasts: high cells (2/3, 1/2) both above low cells (0, 0): U = 2 * 2
    assert got.loc["fibroblast", "u_statistic"] == 4.0
    ref = stats.mannwhitneyu([2 / 3, 1 / 2], [0, 0], method="asymptotic")
    assert got.loc["fibroblast", "pvalue"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert (got["section"] == "s1").all()
    # too few cells for the default min_cells=3: counts reported, effects NaN
    few = niche_composition(adj, labels, score, tumour="tumour")
    assert few["difference"].isna().all() and (few["n_high"] == 2).all()


def test_composition_rules() -> None:
    adj, labels, score = _tiny()
    bad = score.copy()
    bad[3] = np.nan
    with pytest.raises(
        InputError, match=r"s1 \(row '3'\): \[finite-score\] tumour cell 3 has program score nan"
    ):
        niche_composition(adj, labels, bad, tumour="tumour", section="s1")
    with pytest.raises(InputError, match=r"\[tumour-label\].*'cancer'"):
        niche_composition(adj, labels, score, tumour="cancer")
    with pytest.raises(InputError, match=r"\[niche-quantile\]"):
        niche_composition(adj, labels, score, tumour="tumour", quantile=0.7)
    with pytest.raises(InputError, match=r"\[score-length\]"):
        niche_composition(adj, labels, score[:5], tumour="tumour")
    s = Section(name="s2", coords=np.zeros((3, 2)))
    with pytest.raises(InputError, match=r"s2: \[section-labels\]"):
        section_niches(s, program="resistance", tumour="tumour")


def _per_section() -> pd.DataFrame:
    # patient A: baseline sections 0.1 and 0.3 (mean 0.2), progression 0.5 -> change 0.3;
    # patient B: baseline 0.0, progression 0.1 and a section with too few cells (NaN)
    rows = [
        ("A-b1", 0.1),
        ("A-b2", 0.3),
        ("A-p1", 0.5),
        ("B-b1", 0.0),
        ("B-p1", 0.1),
        ("B-p2", np.nan),
    ]
    return pd.DataFrame(
        {
            "section": [r[0] for r in rows],
            "neighbour_type": "fibroblast",
            "difference": [r[1] for r in rows],
            "log2_ratio": [2 * r[1] for r in rows],
        }
    )


def _samples() -> pd.DataFrame:
    names = ["A-b1", "A-b2", "A-p1", "B-b1", "B-p1", "B-p2"]
    return pd.DataFrame(
        {
            "section": names,
            "patient": [n[0] for n in names],
            "phase": ["baseline" if n[2] == "b" else "progression" for n in names],
        }
    )


def test_patient_change_averages_sections_by_hand() -> None:
    got = niche_changes(_per_section(), _samples(), CONTRAST).set_index("subject")
    assert got.loc["A", "difference_b"] == pytest.approx(0.2)
    assert got.loc["A", "difference_change"] == pytest.approx(0.3)
    assert got.loc["B", "difference_change"] == pytest.approx(0.1)
    assert got.loc["B", "log2_ratio_change"] == pytest.approx(0.2)
    assert got.loc["A", "n_sections_b"] == 2 and got.loc["B", "n_sections_a"] == 1
    with pytest.raises(InputError, match=r"\[section-registered\].*'A-b2'"):
        niche_changes(_per_section(), _samples().iloc[[0, 2, 3, 4, 5]], CONTRAST)
    with pytest.raises(InputError, match=r"\[contrast-arm\].*'relapse'"):
        niche_changes(_per_section(), _samples(), parse_contrast("phase:relapse vs baseline"))


def test_cohort_tests_equal_scipy_and_exact_wilcoxon() -> None:
    rng = np.random.default_rng(3)
    before, after = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)) + np.array([1.0, 0.0])
    per_patient = pd.DataFrame(
        {
            "subject": np.repeat([f"P{i}" for i in range(6)], 2),
            "neighbour_type": ["fibroblast", "T cell"] * 6,
            "difference_change": (after - before).ravel(),
            "log2_ratio_change": (after - before).ravel(),
        }
    )
    got = cohort_niche_tests(per_patient)
    t = got[(got.effect == "difference") & (got.test == "paired_t")].set_index("neighbour_type")
    ref = stats.ttest_rel(after, before, axis=0)
    np.testing.assert_allclose(t.loc[["fibroblast", "T cell"], "pvalue"], ref.pvalue, rtol=1e-12)
    p = t.loc[["fibroblast", "T cell"], "pvalue"].to_numpy()
    fdr = np.minimum(1, np.minimum.accumulate((np.sort(p) * 2 / [1, 2])[::-1])[::-1])
    np.testing.assert_allclose(np.sort(t["fdr"]), fdr, rtol=1e-12)
    # all six changes of the same sign: the exact two-sided signed-rank p is 2 / 2**6
    same = per_patient.assign(difference_change=np.abs(per_patient["difference_change"]))
    w = cohort_niche_tests(same)
    w = w[(w.effect == "difference") & (w.test == "wilcoxon")]
    assert w["pvalue"].tolist() == [2 / 64, 2 / 64]
    assert w["n_increased"].tolist() == [6, 6]


def _analyse(planted: bool, seed: int) -> pd.DataFrame:
    cohort = simulate_niche_cohort(planted=planted, seed=seed)
    parts = map_niches(
        cohort.sections.__getitem__, list(cohort.sections), program="resistance", tumour="tumour"
    )
    per_section = dask.compute(*parts, scheduler="threads")
    result = resistance_niches(list(per_section), cohort.samples, CONTRAST)
    assert set(result.per_section["neighbour_type"]) == set(CELL_TYPES)
    assert result.per_section["section"].nunique() == len(cohort.sections)
    return result


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_planted_fibroblasts_found_in_every_patient(seed: int) -> None:
    result = _analyse(True, seed)
    fib = result.per_patient[result.per_patient.neighbour_type == "fibroblast"]
    assert len(fib) == 6 and (fib["difference_change"] > 0).all()
    assert (fib["log2_ratio_change"] > 0).all()
    c = result.cohort
    t = c[(c.effect == "difference") & (c.test == "paired_t")].reset_index(drop=True)
    assert t.loc[0, "neighbour_type"] == "fibroblast" and t.loc[0, "fdr"] < 0.05
    # fractions sum to one: fibroblasts displace other types around high cells, so other
    # types may pass the FDR too, but only ever as a decrease
    others = t[(t.neighbour_type != "fibroblast") & (t.fdr < 0.05)]
    assert (others["mean_change"] < 0).all()
    w = c[(c.effect == "difference") & (c.test == "wilcoxon")].set_index("neighbour_type")
    assert w.loc["fibroblast", "pvalue"] == 2 / 64  # six of six patients increased


def test_null_cohort_finds_nothing() -> None:
    """Seeds 0, 1 and 2 (the first three, not chosen). Over seeds 0-19, 3 of 20 null
    cohorts had some type at paired-t FDR < 0.05 (the eight fractions are negatively
    dependent, which BH does not cover exactly), so the rule is "most seeds": at least two
    of three with nothing at FDR < 0.05 by either test or effect."""
    clean = 0
    section_p = []
    for seed in (0, 1, 2):
        result = _analyse(False, seed)
        clean += int(result.cohort["fdr"].min() > 0.05)
        section_p.append(result.per_section["pvalue"].dropna().to_numpy())
    assert clean >= 2
    # the within-section Mann-Whitney test is calibrated under the null: 576 p-values,
    # binomial 99.9 % range of the share below 0.05 at n=576 is about 0.02-0.085
    share = float(np.mean(np.concatenate(section_p) < 0.05))
    assert 0.02 <= share <= 0.085


def test_map_niches_is_lazy_and_equals_direct() -> None:
    cohort = simulate_niche_cohort(n_patients=1, sections_per_sample=1, n_cells=400, seed=5)
    loaded: list[str] = []

    def load(name: str) -> Section:
        loaded.append(name)
        return cohort.sections[name]

    parts = map_niches(load, list(cohort.sections), program="resistance", tumour=["tumour"])
    assert loaded == []
    got = dask.compute(*parts, scheduler="sync")
    for name, frame in zip(cohort.sections, got, strict=True):
        direct = section_niches(cohort.sections[name], program="resistance", tumour="tumour")
        pd.testing.assert_frame_equal(frame, direct)
