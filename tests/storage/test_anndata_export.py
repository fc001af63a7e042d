"""Published expression stores for scanpy users: the study design in obs, an h5ad
export that round-trips, and an export hint that opens."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from resistomics.storage import export_h5ad


def _store_path(ws) -> str:  # type: ignore[no-untyped-def]
    version = ws.catalog.resolve("t47d/counts")
    return ws.root.to_path(version.uri)


def test_obs_carries_the_study_design(t47d_published) -> None:  # type: ignore[no-untyped-def]
    adata = ad.read_zarr(f"{_store_path(t47d_published)}/expression.zarr")
    obs = adata.obs.set_index("sample_id")
    for column in ("subject_id", "phase", "timepoint", "treatment", "response", "batch", "site"):
        assert column in obs.columns, column
    assert obs.loc["veh_WT_rep1", "treatment"] == "veh"
    assert obs.loc["E2_Y537S_rep3", "esr1_genotype"] == "Y537S"
    assert obs.loc["E2_Y537S_rep3", "replicate"] == "rep3"
    assert obs["phase"].isna().all()  # not in this sheet: missing, not the text "None"
    assert {"total_counts", "n_genes_by_counts"} <= set(obs.columns)


def test_h5ad_export_round_trips_with_scanpy(t47d_published, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import scanpy as sc

    path = _store_path(t47d_published)
    out = tmp_path / "t47d.h5ad"
    summary = export_h5ad(t47d_published.root, path, out, elements_per_block=100_000)
    back = sc.read_h5ad(out)
    expected = ad.read_zarr(f"{path}/expression.zarr")
    assert back.shape == expected.shape == (summary.n_obs, summary.n_vars)
    assert (back.X != expected.X).nnz == 0 and back.X.nnz == summary.nnz
    pd.testing.assert_frame_equal(back.obs, expected.obs)
    pd.testing.assert_frame_equal(back.var, expected.var)
    assert back.obs["esr1_genotype"].tolist() == expected.obs["esr1_genotype"].tolist()
    # scanpy works on it as on any AnnData
    sc.pp.normalize_total(back, target_sum=1e4)
    np.testing.assert_allclose(np.asarray(back.X.sum(axis=1)).ravel(), 1e4, rtol=1e-4)
    assert not list(tmp_path.glob(".*.partial"))


def test_export_command_h5ad_and_hint(
    t47d_published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(t47d_published.settings.data_root))
    monkeypatch.setenv("COLUMNS", "250")
    runner = CliRunner()
    r = runner.invoke(app, ["export", "t47d/counts", "-o", str(tmp_path / "x.tsv")])
    assert r.exit_code == 1
    hint = r.stderr.strip().split("open ", 1)[1].split(" with ")[0]
    assert hint.endswith("/expression.zarr") and "--format h5ad" in r.stderr
    assert ad.read_zarr(hint).shape[0] == 24  # the hint opens
    out = tmp_path / "x.h5ad"
    r = runner.invoke(app, ["export", "t47d/counts", "--format", "h5ad", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert ad.read_h5ad(out).obs["treatment"].notna().all()
