"""Clonal evolution: planted clones under therapy must be recovered.

Each generated subject has three clones with known cancer cell fractions over
baseline / on-treatment / progression samples: a truncal clone (CCF 1 throughout), a
resistant clone carrying ESR1 Y537S (absent at baseline, expanding under therapy) and a
sensitive clone (contracting to nothing). Reads are binomial at 50-200x with purity
0.6-0.8 per subject.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import comb
from statsmodels.stats.multitest import multipletests

from resistomics.errors import MethodInputError
from resistomics.signatures import (
    cancer_cell_fraction,
    cluster_clones,
    recurrent_genes,
    variant_changes,
)

PHASES = ("baseline", "on-treatment", "progression")
TIMEPOINTS = (0.0, 90.0, 240.0)
# Planted clone prevalences (CCF) per phase, and number of mutations per clone.
CLONES = {
    "truncal": ((1.0, 1.0, 1.0), 15),
    "resistant": ((0.0, 0.5, 0.9), 8),
    "sensitive": ((0.7, 0.3, 0.0), 10),
}

type Guard = Callable[[], AbstractContextManager[None]]


@dataclass(frozen=True)
class PlantedClones:
    variants: pd.DataFrame
    design: pd.DataFrame


def _planted_clones(n_subjects: int = 4, seed: int = 11) -> PlantedClones:
    rng = np.random.default_rng(seed)
    rows, design_rows = [], []
    for s in range(n_subjects):
        subject = f"P{s}"
        purity = rng.uniform(0.6, 0.8)
        for phase, t in zip(PHASES, TIMEPOINTS, strict=True):
            design_rows.append(
                {
                    "sample_id": f"{subject}-{phase}",
                    "subject_id": subject,
                    "phase": phase,
                    "timepoint": t,
                    "purity": purity,
                }
            )
        pos = 1000
        for clone, (ccf, n_mut) in CLONES.items():
            for i in range(n_mut):
                pos += int(rng.integers(100, 10_000))
                if clone == "resistant" and i == 0:
                    gene, change, chrom = "ESR1", "p.Y537S", "6"
                else:
                    gene, change, chrom = f"{clone.upper()}{i}", f"p.A{i + 1}V", "1"
                for phase, phi in zip(PHASES, ccf, strict=True):
                    depth = int(rng.integers(50, 201))
                    alt = int(rng.binomial(depth, purity * phi / 2.0))
                    rows.append(
                        {
                            "subject_id": subject,
                            "sample_id": f"{subject}-{phase}",
                            "chrom": chrom,
                            "pos": pos,
                            "ref": "A",
                            "alt": "G",
                            "gene": gene,
                            "protein_change": change,
                            "ref_count": depth - alt,
                            "alt_count": alt,
                            "depth": depth,
                            "vaf": alt / depth,
                            "catalogue_hit": gene == "ESR1",
                            "planted_clone": clone,
                        }
                    )
    design = pd.DataFrame(design_rows).set_index("sample_id")
    return PlantedClones(variants=pd.DataFrame(rows), design=design)


@pytest.fixture(scope="session")
def _planted_session() -> PlantedClones:
    return _planted_clones()


@pytest.fixture
def planted(_planted_session: PlantedClones) -> PlantedClones:
    return PlantedClones(
        variants=_planted_session.variants.copy(), design=_planted_session.design.copy()
    )


@pytest.fixture(scope="session")
def _changes_session(_planted_session: PlantedClones) -> pd.DataFrame:
    p = _planted_session
    return variant_changes(p.variants, p.design)


@pytest.fixture
def changes(_changes_session: pd.DataFrame, _planted_session: PlantedClones) -> pd.DataFrame:
    clone = _planted_session.variants.drop_duplicates(["subject_id", "pos"])
    clone = clone.set_index(["subject_id", "pos"])["planted_clone"]
    out = _changes_session.copy()
    keys = pd.MultiIndex.from_frame(out[["subject_id", "pos"]])
    out["planted_clone"] = clone.reindex(keys).to_numpy()
    return out


def _adjusted_rand(a: np.ndarray, b: np.ndarray) -> float:
    # Hubert & Arabie (1985), from the contingency table.
    table = pd.crosstab(a, b).to_numpy()
    pairs = comb(table, 2).sum()
    rows = comb(table.sum(axis=1), 2).sum()
    cols = comb(table.sum(axis=0), 2).sum()
    expected = rows * cols / comb(table.sum(), 2)
    return float((pairs - expected) / ((rows + cols) / 2 - expected))


# --------------------------------------------------------------------------------------
# variant_changes
# --------------------------------------------------------------------------------------


def test_calls_recover_planted_clones(changes: pd.DataFrame) -> None:
    at = changes.set_index(["planted_clone", "phase"])["call"].astype(str)
    assert (at.loc[("resistant", "progression")] == "emergent").all()
    assert (at.loc[("resistant", "on-treatment")] == "emergent").mean() >= 0.9
    assert at.loc[("sensitive", "progression")].isin(["lost", "contracted"]).all()
    assert (at.loc[("sensitive", "progression")] == "lost").mean() >= 0.9
    truncal = at.loc["truncal"]
    # Null variants: BH controls the FDR at 5%, not the per-test error, so an occasional
    # truncal variant is called (0-6% over 20 generator seeds).
    assert (truncal == "stable").mean() >= 0.9
    esr1 = changes[(changes["gene"] == "ESR1") & (changes["phase"] == "progression")]
    assert len(esr1) == 4
    assert (esr1["call"] == "emergent").all()
    assert (esr1["vaf_change"] > 0.2).all()


def test_one_row_per_variant_and_later_sample(
    changes: pd.DataFrame, planted: PlantedClones
) -> None:
    n_variants = planted.variants.drop_duplicates(["subject_id", "pos"]).shape[0]
    assert len(changes) == n_variants * 2
    assert set(changes["phase"]) == {"on-treatment", "progression"}
    assert (changes["baseline_sample_id"].str.endswith("-baseline")).all()
    assert list(changes["call"].cat.categories) == [
        "emergent",
        "expanded",
        "contracted",
        "lost",
        "stable",
        "unknown",
    ]


def test_fisher_pvalues_and_bh_match_scipy_and_statsmodels(changes: pd.DataFrame) -> None:
    expected = [
        stats.fisher_exact(
            [
                [int(r.alt_count), int(r.ref_count)],
                [int(r.baseline_alt_count), int(r.baseline_ref_count)],
            ],
            alternative="two-sided",
        )
        for r in changes.itertuples()
    ]
    np.testing.assert_allclose(changes["pvalue"], [e.pvalue for e in expected], rtol=1e-12)
    np.testing.assert_allclose(changes["odds_ratio"], [e.statistic for e in expected], rtol=1e-12)
    for _, rows in changes.groupby("subject_id"):
        bh = multipletests(rows["pvalue"], method="fdr_bh")[1]
        np.testing.assert_allclose(rows["pvalue_adj"], bh, rtol=1e-12)


def test_ccf_formula_on_hand_computed_values() -> None:
    # CCF = min(1, VAF * (purity * CN + 2 * (1 - purity)) / (purity * m)).
    vaf = np.array([0.2, 0.1, 0.45, 0.1, 0.3])
    purity = np.array([0.8, 0.5, 0.6, 0.5, 0.6])
    cn = np.array([2.0, 4.0, 2.0, np.nan, 3.0])
    expected = np.array(
        [
            0.2 * (1.6 + 0.4) / 0.8,  # 0.5
            0.1 * (2.0 + 1.0) / 0.5,  # 0.6
            1.0,  # 0.45 * 2 / 0.6 = 1.5, capped
            0.1 * (1.0 + 1.0) / 0.5,  # missing CN -> diploid: 0.4
            0.3 * (1.8 + 0.8) / 0.6,  # 1.3 -> capped at 1
        ]
    )
    expected[4] = 1.0
    np.testing.assert_allclose(cancer_cell_fraction(vaf, purity, total_cn=cn), expected)
    np.testing.assert_allclose(
        cancer_cell_fraction(0.3, 0.6, total_cn=3.0, multiplicity=2.0),
        0.3 * 2.6 / 1.2,
    )
    with pytest.raises(MethodInputError, match="purity"):
        cancer_cell_fraction(0.2, 0.0)


def test_ccf_columns_use_the_design_purity(changes: pd.DataFrame, planted: PlantedClones) -> None:
    purity = planted.design["purity"].reindex(changes["sample_id"]).to_numpy()
    np.testing.assert_allclose(changes["ccf"], np.minimum(1.0, changes["vaf"] * 2.0 / purity))
    truncal = changes[changes["planted_clone"] == "truncal"]
    assert abs(truncal["ccf"].median() - 1.0) < 0.1


def test_low_baseline_depth_is_unknown(planted: PlantedClones) -> None:
    v = planted.variants
    target = v[(v["gene"] == "ESR1") & (v["subject_id"] == "P0")]["pos"].iloc[0]
    low = (v["pos"] == target) & (v["subject_id"] == "P0") & (v["sample_id"] == "P0-baseline")
    v.loc[low, ["depth", "ref_count", "alt_count", "vaf"]] = [5, 5, 0, 0.0]
    out = variant_changes(v, planted.design, min_depth=10)
    rows = out[(out["subject_id"] == "P0") & (out["pos"] == target)]
    assert (rows["call"] == "unknown").all()
    assert rows["pvalue"].isna().all()
    # A variant without a row in a later sample has no coverage information either.
    dropped = v[~((v["subject_id"] == "P1") & (v["sample_id"] == "P1-progression"))]
    dropped = dropped[~((dropped["gene"] == "TRUNCAL0") & (dropped["subject_id"] == "P1"))]
    missing_row = v[(v["subject_id"] == "P1") & (v["gene"] == "TRUNCAL0")]
    out = variant_changes(pd.concat([dropped, missing_row[:2]]), planted.design)
    row = out[(out["subject_id"] == "P1") & (out["gene"] == "TRUNCAL0")]
    assert row.set_index("phase")["call"].astype(str).to_dict() == {
        "on-treatment": "stable",
        "progression": "unknown",
    }


def test_missing_design_sample_is_a_clear_error(planted: PlantedClones) -> None:
    with pytest.raises(MethodInputError, match="not in design"):
        variant_changes(planted.variants, planted.design.drop(index="P0-progression"))


# --------------------------------------------------------------------------------------
# cluster_clones
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _clones_session(_planted_session: PlantedClones):
    p = _planted_session
    return cluster_clones(p.variants, p.design, random_state=0)


def test_clusters_recover_planted_clones(_clones_session, planted: PlantedClones) -> None:
    mutations = _clones_session.mutations
    truth = planted.variants.drop_duplicates(["subject_id", "pos"])
    merged = mutations.merge(
        truth[["subject_id", "pos", "planted_clone"]], on=["subject_id", "pos"]
    )
    assert len(merged) == len(mutations) == len(truth)
    for subject, rows in merged.groupby("subject_id"):
        assert rows["clone_id"].nunique() == 3, subject
        assert _adjusted_rand(rows["planted_clone"].to_numpy(), rows["clone_id"].to_numpy()) >= 0.9
    assert (mutations["posterior"] > 0.5).all()
    selection = _clones_session.model_selection
    assert (selection[selection["selected"]]["n_clones"] == 3).all()


def test_resistant_clone_is_flagged_with_its_trajectory(_clones_session) -> None:
    clones = _clones_session.clones
    flagged = clones[clones["carries_resistance_mutation"]]
    # One flagged clone per subject, present in all three samples' rows.
    assert flagged.groupby("subject_id")["clone_id"].nunique().eq(1).all()
    assert set(flagged["resistance_genes"]) == {"ESR1"}
    assert set(flagged["resistance_changes"]) == {"ESR1:p.Y537S"}
    prevalence = flagged.set_index(["subject_id", "phase"])["prevalence"]
    assert (prevalence.xs("baseline", level="phase") <= 0.05).all()
    assert (prevalence.xs("progression", level="phase").sub(0.9).abs() <= 0.1).all()
    assert (flagged["n_mutations"] == CLONES["resistant"][1]).all()
    truncal = clones[clones["clone_id"] == 1]
    assert (truncal["prevalence"] >= 0.9).all()
    assert not truncal["carries_resistance_mutation"].any()


def test_clustering_is_deterministic_and_accepts_changes(
    _clones_session, planted: PlantedClones, changes: pd.DataFrame
) -> None:
    again = cluster_clones(planted.variants, planted.design, random_state=0)
    pd.testing.assert_frame_equal(again.mutations, _clones_session.mutations)
    pd.testing.assert_frame_equal(again.clones, _clones_session.clones)
    from_changes = cluster_clones(changes.drop(columns="planted_clone"), planted.design)
    pd.testing.assert_frame_equal(
        from_changes.mutations[["subject_id", "pos", "clone_id", "catalogue_hit"]],
        _clones_session.mutations[["subject_id", "pos", "clone_id", "catalogue_hit"]],
    )


def test_bic_search_stops_after_patience_without_changing_the_choice(
    _clones_session, planted: PlantedClones
) -> None:
    # The default (patience 2) stops two K past the best BIC; trying every K up to
    # max_clones picks the same K and the same clones, with the same BIC for shared K.
    selection = _clones_session.model_selection
    assert selection.groupby("subject_id")["n_clones"].max().eq(3 + 2).all()
    full = cluster_clones(planted.variants, planted.design, random_state=0, patience=None)
    full_sel = full.model_selection
    assert full_sel.groupby("subject_id")["n_clones"].max().eq(10).all()
    pd.testing.assert_frame_equal(full.mutations, _clones_session.mutations)
    shared = full_sel.merge(selection, on=["subject_id", "n_clones"], suffixes=("", "_early"))
    assert len(shared) == len(selection)
    np.testing.assert_allclose(shared["bic"], shared["bic_early"], rtol=1e-12)
    assert (shared["selected"] == shared["selected_early"]).all()
    with pytest.raises(MethodInputError, match="patience"):
        cluster_clones(planted.variants, planted.design, patience=0)


# --------------------------------------------------------------------------------------
# Dask: lazy, and identical to pandas
# --------------------------------------------------------------------------------------


def test_dask_input_is_lazy_and_matches_pandas(
    planted: PlantedClones,
    changes: pd.DataFrame,
    _clones_session,
    raise_if_dask_computes: Guard,
) -> None:
    lazy_input = dd.from_pandas(
        planted.variants.drop(columns="planted_clone").set_index("subject_id"), npartitions=2
    )
    assert lazy_input.npartitions == 2
    with raise_if_dask_computes():
        lazy_changes = variant_changes(lazy_input, planted.design)
        lazy_clones = cluster_clones(lazy_input, planted.design, random_state=0)
    got_changes, got_mut, got_clones, got_sel = dask.compute(
        lazy_changes, lazy_clones.mutations, lazy_clones.clones, lazy_clones.model_selection
    )
    keys = ["subject_id", "pos", "timepoint"]
    pd.testing.assert_frame_equal(
        got_changes.sort_values(keys, ignore_index=True),
        changes.drop(columns="planted_clone").sort_values(keys, ignore_index=True),
    )
    for got, want in (
        (got_mut, _clones_session.mutations),
        (got_clones, _clones_session.clones),
        (got_sel, _clones_session.model_selection),
    ):
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want)


# --------------------------------------------------------------------------------------
# recurrent_genes
# --------------------------------------------------------------------------------------


def _planted_cohort(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Unpaired: 20 relapse patients and 20 diagnosis patients; NT5C2 in 12/20 relapses.
    # Presence only (MAF-like), no read counts.
    rng = np.random.default_rng(seed)
    rows, design = [], []
    background = [f"BG{i}" for i in range(30)]
    for group in ("relapse", "baseline"):
        for s in range(20):
            subject = f"{group[:3]}{s}"
            sample = f"{subject}-S"
            design.append({"sample_id": sample, "subject_id": subject, "phase": group})
            genes = [g for g in background if rng.random() < 0.15]
            if group == "relapse" and s < 12:
                genes += ["NT5C2", "NT5C2"]  # two hits in one subject still count once
            rows += [{"sample_id": sample, "gene": g} for g in genes]
    return pd.DataFrame(rows), pd.DataFrame(design).set_index("sample_id")


def test_recurrent_genes_puts_planted_relapse_gene_first() -> None:
    variants, design = _planted_cohort()
    out = recurrent_genes(variants, design, catalogue_genes=["NT5C2", "ESR1"])
    top = out.iloc[0]
    assert out.index[0] == "NT5C2"
    assert top["pvalue_adj"] < 0.05
    assert (top["mutated_a"], top["n_a"], top["mutated_b"], top["n_b"]) == (12, 20, 0, 20)
    assert top["proportion_a"] == pytest.approx(0.6)
    assert bool(top["catalogue_gene"]) and not out["catalogue_gene"].iloc[1:].any()
    for gene, row in out.iterrows():
        a, b = int(row["mutated_a"]), int(row["mutated_b"])
        ref = stats.fisher_exact([[a, 20 - a], [b, 20 - b]])
        assert row["pvalue"] == pytest.approx(ref.pvalue, rel=1e-12), gene
    assert out["pvalue"].is_monotonic_increasing
    np.testing.assert_allclose(
        out["pvalue_adj"], multipletests(out["pvalue"], method="fdr_bh")[1], rtol=1e-12
    )
    # Background genes are not called.
    assert (out["pvalue_adj"].iloc[1:] > 0.05).all()


def _paired_cohort(seed: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
    # Paired: 30 patients sampled at diagnosis and relapse. PML present at both in 10
    # patients and gained at relapse in 12 more; TP53 present at both in 10 (no change).
    rng = np.random.default_rng(seed)
    rows, design = [], []
    for s in range(30):
        subject = f"P{s}"
        for group in ("baseline", "relapse"):
            sample = f"{subject}-{group}"
            design.append({"sample_id": sample, "subject_id": subject, "phase": group})
            genes = [f"BG{i}" for i in range(20) if rng.random() < 0.1]
            if (group == "relapse" and s < 12) or s >= 20:
                genes.append("PML")
            if s >= 20:
                genes.append("TP53")
            rows += [{"sample_id": sample, "gene": g} for g in genes]
    return pd.DataFrame(rows), pd.DataFrame(design).set_index("sample_id")


def test_paired_recurrence_is_mcnemar_on_discordant_subjects() -> None:
    from statsmodels.stats.contingency_tables import mcnemar

    variants, design = _paired_cohort()
    out = recurrent_genes(variants, design)  # every subject in both arms: paired
    assert set(out["test"]) == {"mcnemar"}
    pml = out.loc["PML"]
    assert (pml["only_a"], pml["only_b"], pml["n_a"], pml["n_b"]) == (12, 0, 30, 30)
    assert out.index[0] == "PML" and pml["pvalue_adj"] < 0.05
    assert out.loc["TP53", "pvalue"] == 1.0  # concordant everywhere: no evidence
    # statsmodels' exact McNemar on each gene's 2x2 table of subjects
    calls = variants.assign(
        subject=design["subject_id"].reindex(variants["sample_id"]).to_numpy(),
        phase=design["phase"].reindex(variants["sample_id"]).to_numpy(),
    )
    for gene, row in out.iterrows():
        hit = calls[calls["gene"] == gene].groupby("phase")["subject"].agg(set)
        a, b = hit.get("relapse", set()), hit.get("baseline", set())
        table = [[len(a & b), len(a - b)], [len(b - a), 30 - len(a | b)]]
        ref = mcnemar(table, exact=True).pvalue
        assert row["pvalue"] == pytest.approx(ref, rel=1e-12), gene
    # Treating the arms as independent samples wastes the pairing: the 10 patients with
    # PML at both dilute Fisher's comparison of proportions (22/30 vs 10/30).
    unpaired = recurrent_genes(variants, design, paired=False)
    assert set(unpaired["test"]) == {"fisher"} and unpaired["only_a"].isna().all()
    assert unpaired.loc["PML", "pvalue"] > pml["pvalue"]


def test_paired_needs_subjects_in_both_arms() -> None:
    variants, design = _planted_cohort()  # different patients in each arm
    assert set(recurrent_genes(variants, design)["test"]) == {"fisher"}  # auto: unpaired
    with pytest.raises(MethodInputError, match="paired"):
        recurrent_genes(variants, design, paired=True)


def test_recurrent_genes_ignores_zero_alt_rows() -> None:
    variants, design = _planted_cohort()
    variants["alt_count"] = np.where(variants["gene"] == "NT5C2", 0, 5)
    out = recurrent_genes(variants, design)
    assert "NT5C2" not in out.index


def test_vectorised_fisher_equals_scipy_on_random_and_edge_tables() -> None:
    from resistomics.signatures._clonal import fisher_exact_2x2

    rng = np.random.default_rng(7)
    tables = rng.integers(0, 60, size=(400, 4))
    tables = np.vstack(
        [tables, [[0, 0, 0, 0], [0, 10, 0, 10], [5, 0, 0, 5], [0, 7, 3, 0], [50, 50, 50, 50]]]
    )
    odds, pvalue = fisher_exact_2x2(*tables.T)
    for (a, b, c, d), o, p in zip(tables, odds, pvalue, strict=True):
        ref = stats.fisher_exact([[a, b], [c, d]], alternative="two-sided")
        assert p == pytest.approx(ref.pvalue, rel=1e-10, abs=1e-300), (a, b, c, d)
        if np.isfinite(ref.statistic):
            assert o == pytest.approx(ref.statistic, rel=1e-12)
        else:
            assert (np.isnan(o) and np.isnan(ref.statistic)) or o == ref.statistic


def test_vectorised_fisher_equals_scipy_at_sequencing_depths() -> None:
    # Allele counts as a caller reports them (depths in the hundreds), plus tables whose
    # mirror image has exactly the same probability (ties decide what the tail holds).
    from resistomics.signatures._clonal import fisher_exact_2x2

    rng = np.random.default_rng(11)
    depth = rng.integers(30, 600, size=(300, 2))
    vaf = rng.uniform(0, 0.6, size=(300, 2))
    alt = rng.binomial(depth, vaf)
    tables = np.column_stack(
        [alt[:, 0], depth[:, 0] - alt[:, 0], alt[:, 1], depth[:, 1] - alt[:, 1]]
    )
    k = rng.integers(0, 150, size=60)
    m = k + rng.integers(1, 300, size=60)
    mirrored = np.column_stack([k, m - k, m - k, k])  # P(a = k) == P(a = m - k)
    # Tables with another table as likely as the observed one up to rounding (~1e-13
    # relative at these margins): a 1e-14 tie tolerance dropped it from the tail.
    rounding_ties = [[31, 144, 21, 89], [32, 99, 47, 150], [48, 196, 34, 135]]
    tables = np.vstack([tables, mirrored, rounding_ties])
    _, pvalue = fisher_exact_2x2(*tables.T)
    for (a, b, c, d), p in zip(tables, pvalue, strict=True):
        ref = stats.fisher_exact([[a, b], [c, d]], alternative="two-sided").pvalue
        assert p == pytest.approx(ref, rel=1e-8, abs=1e-300), (a, b, c, d)


OVERDISPERSED = {"truncal": (1.0, 1.0), "sensitive": (0.6, 0.05), "resistant": (0.02, 0.85)}


def _overdispersed(seed: int, rho: float = 50.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Three planted clones (``OVERDISPERSED``, 150 mutations each, purity 0.8) whose
    mutations' VAFs are beta-distributed around the clone's expected VAF with precision
    ``rho`` (library / copy-number noise), reads binomial on top; ``gene`` names the clone."""
    rng = np.random.default_rng(seed)
    purity = 0.8
    design = pd.DataFrame(
        {"subject_id": "P1", "phase": ["baseline", "progression"], "timepoint": [0, 100],
         "purity": purity},
        index=pd.Index(["P1_BL", "P1_PD"], name="sample_id"),
    )  # fmt: skip
    rows = []
    for c, (name, ccf) in enumerate(OVERDISPERSED.items()):
        for i in range(150):
            for s, sample in enumerate(design.index):
                f = max(ccf[s] * purity / 2, 1e-3)
                depth = int(rng.integers(150, 400))
                alt = int(rng.binomial(depth, rng.beta(f * rho, (1 - f) * rho)))
                rows.append(
                    {"subject_id": "P1", "sample_id": sample, "chrom": "1",
                     "pos": 1000 * c + i + 1, "ref": "A", "alt": "C", "gene": name,
                     "protein_change": "p.A1V", "alt_count": alt, "ref_count": depth - alt,
                     "depth": depth}
                )  # fmt: skip
    return pd.DataFrame(rows), design


def test_beta_binomial_keeps_overdispersed_clones_whole() -> None:
    # The binomial mixture splits over-dispersed clones; the beta-binomial at the
    # planted precision does not.
    variants, design = _overdispersed(seed=0)
    binomial = cluster_clones(variants, design)
    assert binomial.mutations["clone_id"].nunique() > 3
    fit = cluster_clones(variants, design, precision=50.0)
    mutations = fit.mutations  # the gene column names the planted clone
    assert mutations["clone_id"].nunique() == 3
    assert _adjusted_rand(mutations["gene"].to_numpy(), mutations["clone_id"].to_numpy()) >= 0.95
    by_clone = fit.clones.pivot_table(index="clone_id", columns="phase", values="prevalence")
    for name, (base, prog) in OVERDISPERSED.items():
        clone = mutations.loc[mutations["gene"] == name, "clone_id"].mode().iloc[0]
        assert abs(by_clone.loc[clone, "baseline"] - base) <= 0.05, name
        assert abs(by_clone.loc[clone, "progression"] - prog) <= 0.05, name
    with pytest.raises(MethodInputError, match="precision"):
        cluster_clones(variants, design, precision=0)


def test_auto_precision_is_chosen_by_bic() -> None:
    # Over-dispersed reads (planted precision 50) pick a beta-binomial near that precision.
    variants, design = _overdispersed(seed=1)
    fit = cluster_clones(variants, design, precision="auto")
    chosen = fit.model_selection[fit.model_selection["selected"]].iloc[0]
    assert chosen["precision"] in (25.0, 50.0, 100.0) and chosen["n_clones"] == 3
    assert fit.model_selection["precision"].isna().any()  # the binomial was tried too


def test_auto_precision_keeps_the_binomial_for_binomial_reads(
    planted: PlantedClones, _clones_session
) -> None:
    fit = cluster_clones(planted.variants, planted.design, random_state=0, precision="auto")
    chosen = fit.model_selection[fit.model_selection["selected"]]
    assert chosen["precision"].isna().all()
    pd.testing.assert_frame_equal(fit.mutations, _clones_session.mutations)
