"""The ``subcellular`` analysis: nuclear fractions per section and gene, read tile part by
tile part, equal to :func:`nuclear_fractions` on the section's whole transcript table;
Wilson intervals; revalidates; rerun unchanged; refusals; CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.catalog import SampleRow, VersionInfo
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.modalities.spatial import nuclear_fractions, wilson_interval
from resistomics.modalities.spatial._subcellular_analysis import (
    subcellular_analysis,
    subcellular_artifacts,
)
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_spatial
from spatial_files import write_sdata

STUDY = "sub"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, VersionInfo]:
    tmp = tmp_path_factory.mktemp("subcellular")
    # 100 um tiles over a 500 um field: the section's transcripts are ~25 parts
    ws = Workspace.open(
        Settings(
            data_root=str(tmp / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
            modalities={"spatial": {"tile_size": 100.0}},
        )
    )
    ws.catalog.register_study(STUDY, [SampleRow(sample_id="S0", subject_id="P0")])
    src = write_sdata(tmp, "S0", n=200, n_unassigned=30, seed=5)
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "spatial" / src.name
    target.parent.mkdir(parents=True)
    shutil.copytree(src, target)
    out = ingest(ws, str(target), study=STUDY)
    assert out.status == "published" and out.version is not None, out.message
    yield ws, out.version
    ws.close()


def test_nuclear_fractions_tile_by_tile_equal_the_whole_section(
    published: tuple[Workspace, VersionInfo],
) -> None:
    ws, version = published
    store = open_spatial(ws.root, ws.root.to_path(version.uri))
    assert len(store.transcript_parts("S0")) > 5
    outcome = subcellular_analysis(ws, version.ref)
    assert outcome.status == "published", outcome.message
    assert outcome.version.dataset == "S0.subcellular"
    got = outcome.tables["per_section"].set_index("gene")
    want = nuclear_fractions(store.transcripts("S0")).set_index("gene")
    assert list(got.index) == list(want.index)
    for column in ("n_transcripts", "n_nuclear"):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy())
    np.testing.assert_allclose(got["nuclear_fraction"], want["nuclear_fraction"], rtol=1e-12)
    np.testing.assert_allclose(got["ci_low"], want["ci_low"], rtol=1e-12)
    # the assigned transcripts are the table's counts (controls included: they are
    # molecules too), the unassigned ones are not counted
    tx = store.transcripts("S0")
    assigned = tx[tx["cell_id"].notna()].groupby("gene", observed=True).size()
    pd.testing.assert_series_equal(
        got["n_transcripts"], assigned.astype(np.int64).rename("n_transcripts"), check_names=False
    )
    per_gene = outcome.tables["per_gene"].set_index("gene")
    assert (per_gene["n_sections"] == 1).all()
    lo, hi = wilson_interval(per_gene["n_nuclear"], per_gene["n_transcripts"])
    np.testing.assert_allclose(per_gene["ci_low"], lo, rtol=1e-12)
    np.testing.assert_allclose(per_gene["ci_high"], hi, rtol=1e-12)
    # write_sdata flags 40 % of the assigned molecules as nuclear
    frac = per_gene["n_nuclear"].sum() / per_gene["n_transcripts"].sum()
    assert 0.33 < frac < 0.47
    assert validate_version(ws, outcome.version).success
    again = subcellular_analysis(ws, version.ref)
    assert again.status == "unchanged"
    assert [a.kind for a in subcellular_artifacts(ws, outcome.version)] == ["table", "markdown"]


def test_chosen_genes_and_refusals(published: tuple[Workspace, VersionInfo]) -> None:
    ws, version = published
    two = subcellular_analysis(ws, version.ref, genes="KRT8, EPCAM", confidence=0.9)
    assert list(two.tables["per_gene"]["gene"]) == ["EPCAM", "KRT8"]
    with pytest.raises(InputError, match=r"--genes: \[transcript-gene\] 'NOPE'"):
        subcellular_analysis(ws, version.ref, genes="NOPE")
    with pytest.raises(InputError, match=r"--confidence: \[option\]"):
        subcellular_analysis(ws, version.ref, confidence=1.0)


def test_cli_spatial_subcellular(
    published: tuple[Workspace, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    ws, version = published
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", ws.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("RESISTOMICS_MODALITIES__SPATIAL__TILE_SIZE", "100")
    runner = CliRunner()
    r = runner.invoke(app, ["spatial", "subcellular", "--help"])
    assert r.exit_code == 0 and "--genes" in r.output, r.output
    r = runner.invoke(app, ["spatial", "subcellular", version.ref, "--genes", "MKI67"])
    assert r.exit_code == 0 and "MKI67" in r.output, r.output
