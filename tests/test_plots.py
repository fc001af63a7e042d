"""Plots render from real results (checked by size and by image content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.plots import plot_de_volcano, plot_sample_scores


def test_sample_scores_and_volcano(tmp_path: Path) -> None:
    from matplotlib.image import imread

    rng = np.random.default_rng(0)
    rows = [
        {
            "sample_id": f"P{s}_{ph}",
            "subject_id": f"P{s}",
            "phase": ph,
            "method": "score_genes",
            "gene_set": gs,
            "mean_score": rng.normal(1.0 if (ph == "progression" and gs == "X") else 0.0, 0.1),
        }
        for s in range(4)
        for ph in ("baseline", "progression")
        for gs in ("X", "Y", "Z")
    ]
    out = plot_sample_scores(pd.DataFrame(rows), tmp_path / "s.png")
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas
    de = pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(200)],
            "gene_symbol": [f"G{i}" for i in range(200)],
            "log2_fold_change": rng.normal(0, 1, 200),
            "pval_adj": rng.uniform(0, 1, 200),
        }
    )
    de.loc[:5, "pval_adj"] = 1e-8
    v = plot_de_volcano(de, tmp_path / "v.png", title="t")
    assert imread(v).shape[0] > 300


def _awkward_de(rng: np.random.Generator) -> pd.DataFrame:
    n = 300
    de = pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(n)],
            "gene_symbol": [f"G{i}" for i in range(n)],
            "log2_fold_change": rng.normal(0, 1, n),
            "fold_change_rule": "log2-ratio-of-expm1-means",
            "pval_adj": rng.uniform(0.01, 1, n),
            "pct_nz_a": rng.uniform(0.2, 1, n),
            "pct_nz_b": rng.uniform(0.2, 1, n),
        }
    )
    de.loc[:9, "pval_adj"] = 1e-8
    de.loc[10:14, "pval_adj"] = 0.0  # underflow: -log10 is infinite
    de.loc[15:19, "log2_fold_change"] = np.nan
    de.loc[20:21, "log2_fold_change"] = np.inf
    de.loc[22:61, ["log2_fold_change", "pct_nz_b"]] = [-29.9, 0.0]  # one arm all zeros
    de.loc[22:61, "pval_adj"] = 1e-12
    de.loc[62:63, ["pct_nz_a", "pct_nz_b", "log2_fold_change"]] = [0.0, 0.0, 0.0]
    return de


def test_volcano_draws_every_gene_and_marks_the_odd_ones(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from resistomics.plots import volcano_points

    de = _awkward_de(np.random.default_rng(1))
    pts = volcano_points(de)
    assert len(pts.x) == len(de) and np.isfinite(pts.x).all() and np.isfinite(pts.y).all()
    assert pts.y_clipped.sum() == 5 and pts.no_effect.sum() == 5
    assert pts.one_arm_zero.sum() == 40 and pts.not_detected.sum() == 2
    # the zero-arm genes do not set the axis: it follows the genes measured in both arms
    measured = de["log2_fold_change"].iloc[64:].abs().max()
    assert pts.x_limit == pytest.approx(1.1 * measured)
    assert pts.x_clipped.sum() == 42  # 40 zero-arm genes and the two infinite ones
    out = plot_de_volcano(
        de, tmp_path / "v.png", title="esr1_genotype: Y537S vs WT", arms=("Y537S", "WT")
    )
    assert imread(out).shape[0] > 300


def test_plot_of_a_source_dataset_and_of_an_unplottable_type(
    t47d_published, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from matplotlib.image import imread

    from resistomics.errors import MethodInputError
    from resistomics.modalities import plot_dataset

    version = t47d_published.catalog.resolve("t47d/counts")
    image = imread(plot_dataset(t47d_published, version, tmp_path / "qc.png"))
    assert image.shape[1] > 600 and image[..., :3].std() > 0.05
    with pytest.raises(MethodInputError, match=r"no plot for .*expression datasets: per-sample QC"):
        plot_dataset(
            t47d_published,
            replace(version, modality="variants", dataset_type="variants.calls"),
            tmp_path / "x.png",
        )


def test_signatures_plot_draws_the_one_program_asked_for(t47d_published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``--gene-set`` is the signatures analysis's own declared plot option: one program
    gives one panel (a quarter of the width of the four-column grid of every program), and
    a program the result did not score is refused with the closest one."""
    from matplotlib.image import imread

    from resistomics.errors import InputError
    from resistomics.modalities import plot_dataset
    from resistomics.modalities.expression import score_signatures

    outcome = score_signatures(t47d_published, "t47d/counts", gene_sets="builtin")
    assert outcome.version is not None
    programs = set(outcome.tables["sample_scores"]["gene_set"])
    assert len(programs) >= 4 and "DRUG_TOLERANT_PERSISTER" in programs
    every = imread(plot_dataset(t47d_published, outcome.version, tmp_path / "all.png"))
    one = imread(
        plot_dataset(
            t47d_published,
            outcome.version,
            tmp_path / "one.png",
            gene_set="DRUG_TOLERANT_PERSISTER",
        )
    )
    assert one.shape[1] == pytest.approx(every.shape[1] / 4, abs=2)
    assert one.shape[0] < every.shape[0]  # one row of panels, not several
    with pytest.raises(InputError, match="did you mean 'DRUG_TOLERANT_PERSISTER'") as err:
        plot_dataset(
            t47d_published, outcome.version, tmp_path / "x.png", gene_set="DRUG_TOLERANT_PERSISTR"
        )
    assert err.value.file == "--gene-set 'DRUG_TOLERANT_PERSISTR'" and err.value.rule == "option"
    assert not (tmp_path / "x.png").exists()
