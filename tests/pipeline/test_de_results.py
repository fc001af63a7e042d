"""DE results as users get them: fold change by value scale, result names that carry
the options that change the statistic, and --where / --contrast values checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.errors import InputError
from resistomics.modalities.expression import differential_expression
from resistomics.pipeline import ingest, parse_contrast

WT = [f"veh_WT_rep{i}" for i in range(1, 5)]
MUT = [f"veh_Y537S_rep{i}" for i in range(1, 5)]


def _normalised_table(path: Path, values: np.ndarray) -> Path:
    genes = [f"G{i}" for i in range(values.shape[1])]
    frame = pd.DataFrame(values.T, index=pd.Index(genes, name="gene_id"), columns=WT + MUT)
    frame.to_csv(path, sep="\t")
    return path


def _log2_values(planted: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(11)
    base = rng.uniform(6, 14, planted.size)  # log2 intensities: max above log1p(1e4)
    values = base + rng.normal(0, 0.05, (8, planted.size))
    values[4:] += planted
    return values


def test_log2_data_gives_the_planted_fold_change_and_says_so(t47d_study, land, tmp_path):  # type: ignore[no-untyped-def]
    planted = np.array([2.0, -2.0, 1.0, 0.0, 0.0, 0.0])
    src = _normalised_table(tmp_path / "log2.tsv", _log2_values(planted))
    out = ingest(
        t47d_study, land(t47d_study, src, "t47d"), study="t47d", options={"values": "normalized"}
    )
    assert out.status == "published", out.message
    contrast = parse_contrast("esr1_genotype:Y537S vs WT", ["treatment=veh"])
    res = differential_expression(t47d_study, out.version.ref, contrast)
    de = res.tables["de"].set_index("gene_id").loc[[f"G{i}" for i in range(6)]]
    np.testing.assert_allclose(de["log2_fold_change"], planted, atol=0.1)
    assert set(de["fold_change_rule"]) == {"difference-of-log2-means"}
    params = res.version.parameters
    assert (params["scale"], params["scale_source"]) == ("log2", "detected")
    assert ".log2." in res.version.dataset


def test_scale_recorded_at_ingest_is_what_de_uses(t47d_study, land, tmp_path):  # type: ignore[no-untyped-def]
    # z-scores declared as log2 at ingest: DE takes the recorded scale, not its guess
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, (8, 50))
    src = _normalised_table(tmp_path / "declared.tsv", values)
    out = ingest(
        t47d_study,
        land(t47d_study, src, "t47d"),
        study="t47d",
        options={"values": "normalized", "scale": "log2"},
    )
    assert out.status == "published", out.message
    assert out.version.parameters["scale"] == "log2"
    contrast = parse_contrast("esr1_genotype:Y537S vs WT")
    res = differential_expression(t47d_study, out.version.ref, contrast)
    assert (res.version.parameters["scale"], res.version.parameters["scale_source"]) == (
        "log2",
        "recorded",
    )
    assert set(res.tables["de"]["fold_change_rule"]) == {"difference-of-log2-means"}


def test_scale_of_counts_is_refused_at_ingest(t47d_study, land):  # type: ignore[no-untyped-def]
    from shared_data import T47D

    out = ingest(
        t47d_study,
        land(t47d_study, T47D / "counts.tsv.gz", "t47d"),
        study="t47d",
        options={"scale": "log2"},
    )
    assert out.status == "quarantined"
    assert "[option]" in out.message and "--values normalized" in out.message


def test_zscored_data_never_gives_nan(t47d_study, land, tmp_path):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2)
    values = rng.normal(0, 1, (8, 300))
    values[4:, :40] += 1.5
    values = (values - values.mean(0)) / values.std(0)
    src = _normalised_table(tmp_path / "z.tsv", values)
    out = ingest(
        t47d_study, land(t47d_study, src, "t47d"), study="t47d", options={"values": "normalized"}
    )
    contrast = parse_contrast("esr1_genotype:Y537S vs WT")
    de = differential_expression(t47d_study, out.version.ref, contrast).tables["de"]
    assert "log2_fold_change" not in de.columns
    assert np.isfinite(de["mean_difference"]).all()
    by_gene = de.set_index("gene_id")
    expected = values[4:].mean(0) - values[:4].mean(0)
    np.testing.assert_allclose(
        by_gene.loc[[f"G{i}" for i in range(300)], "mean_difference"], expected, atol=1e-5
    )
    # the scale given explicitly publishes under its own name
    given = differential_expression(t47d_study, out.version.ref, contrast, scale="log2")
    assert given.version.dataset.endswith(".de.t-test.log2.esr1_genotype_Y537S_vs_WT")
    assert given.version.parameters["scale_source"] == "given"


def test_tie_corrected_result_coexists_with_the_uncorrected(t47d_published):  # type: ignore[no-untyped-def]
    contrast = parse_contrast("esr1_genotype:Y537S vs WT", ["treatment=veh"])
    plain = differential_expression(t47d_published, "t47d/counts", contrast, method="wilcoxon")
    tied = differential_expression(
        t47d_published, "t47d/counts", contrast, method="wilcoxon", tie_correct=True
    )
    assert plain.version.dataset != tied.version.dataset
    assert (
        tied.version.dataset
        == "counts.de.wilcoxon-tie-corrected.esr1_genotype_Y537S_vs_WT_treatment-veh"
    )
    published = {
        v.dataset
        for v in t47d_published.catalog.versions(study="t47d")
        if v.status.value == "published"
    }
    assert {plain.version.dataset, tied.version.dataset} <= published
    # tie correction changes the statistic, so both tables exist and differ
    assert not np.allclose(plain.tables["de"]["score"], tied.tables["de"]["score"])


def test_where_value_that_does_not_exist_lists_the_values(t47d_published):  # type: ignore[no-untyped-def]
    contrast = parse_contrast("esr1_genotype:Y537S vs WT", ["treatment=vehicle"])
    with pytest.raises(InputError, match="where-value") as info:
        differential_expression(t47d_published, "t47d/counts", contrast)
    message = str(info.value)
    assert "treatment='vehicle'" in message and "did you mean 'veh'" in message
    assert "'E2', 'veh'" in message
    assert "\n" not in message


def test_unknown_where_column_and_contrast_arm_say_did_you_mean(t47d_published):  # type: ignore[no-untyped-def]
    contrast = parse_contrast("esr1_genotype:Y537S vs WT", ["treatmnet=veh"])
    with pytest.raises(InputError, match="did you mean 'treatment'"):
        differential_expression(t47d_published, "t47d/counts", contrast)
    contrast = parse_contrast("esr1_genotype:Y537 vs WT")
    with pytest.raises(InputError, match="contrast-arm") as info:
        differential_expression(t47d_published, "t47d/counts", contrast)
    assert "did you mean 'Y537S'" in str(info.value) and "'D538G'" in str(info.value)


def _scanpy_log1p_h5ad(path: Path, base: float | None) -> Path:
    """An h5ad normalised by scanpy's own ``sc.pp.log1p`` (which writes uns["log1p"])."""
    import anndata as ad
    import scanpy as sc

    rng = np.random.default_rng(5)
    counts = rng.poisson(30_000, (8, 30)).astype(np.float32)  # log1p max ~10.3 > 9.21
    counts[4:, :5] *= 4
    adata = ad.AnnData(
        counts,
        obs=pd.DataFrame({"sample_id": WT + MUT}, index=[f"c{i}" for i in range(8)]),
        var=pd.DataFrame(index=[f"G{i}" for i in range(30)]),
    )
    if base is None:
        sc.pp.log1p(adata)
    else:
        sc.pp.log1p(adata, base=base)
    assert "log1p" in adata.uns
    adata.write_h5ad(path)
    return path


@pytest.mark.parametrize(
    ("base", "scale", "rule"),
    [
        (None, "log1p", "log2-ratio-of-expm1-means"),  # scanpy's own rule
        (2, "log2", "difference-of-log2-means"),
        (10, "log", "difference-of-means"),
    ],
)
def test_h5ad_log1p_of_scanpy_is_recorded_and_used_by_de(  # type: ignore[no-untyped-def]
    t47d_study, land, tmp_path, base, scale, rule
):
    src = _scanpy_log1p_h5ad(tmp_path / "lognorm.h5ad", base)
    out = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d")  # --values auto
    assert out.status == "published", out.message
    assert out.version.dataset_type == "expression.normalized"
    assert (out.version.parameters["scale"], out.version.parameters["scale_source"]) == (
        scale,
        "file",
    )
    res = differential_expression(
        t47d_study, out.version.ref, parse_contrast("esr1_genotype:Y537S vs WT")
    )
    params = res.version.parameters
    # the value range alone (max ~10.3) would be guessed as log2: the file's word wins
    assert (params["scale"], params["scale_source"]) == (scale, "recorded")
    de = res.tables["de"].set_index("gene_id")
    assert set(de["fold_change_rule"]) == {rule}
    if scale == "log1p":  # x4 planted in the first five genes
        np.testing.assert_allclose(
            de.loc[[f"G{i}" for i in range(5)], "log2_fold_change"], 2, atol=0.05
        )


def test_h5ad_without_log1p_entry_is_guessed(t47d_study, land, tmp_path):  # type: ignore[no-untyped-def]
    import h5py

    src = _scanpy_log1p_h5ad(tmp_path / "bare.h5ad", None)
    with h5py.File(src, "r+") as f:
        del f["uns/log1p"]
    out = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d")
    assert out.status == "published", out.message
    assert "scale" not in out.version.parameters
    res = differential_expression(
        t47d_study, out.version.ref, parse_contrast("esr1_genotype:Y537S vs WT")
    )
    assert (res.version.parameters["scale"], res.version.parameters["scale_source"]) == (
        "log2",
        "detected",
    )
