"""The ``nhood`` analysis on a published spatial dataset: the z-scores it publishes are
those of :func:`nhood_enrichment` on the same section's kNN graph, the result revalidates,
a rerun finds it, and a dataset without labels is refused naming the columns looked for."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.catalog import SampleRow, VersionInfo
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import AnalysisNotApplicableError, InputError
from resistomics.modalities import modality
from resistomics.modalities.spatial import knn_graph, nhood_enrichment
from resistomics.modalities.spatial._analyses import (
    labels_column,
    nhood_analysis,
    nhood_artifacts,
    nhood_matrix,
)
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_spatial
from spatial_files import write_sdata

N_PERMS = 200
STUDY = "sp"


def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    ws.catalog.register_study(STUDY, [SampleRow(sample_id="S0", subject_id="P0", phase="baseline")])
    return ws


def _land(ws: Workspace, src: Path) -> str:
    import shutil

    target = Path(ws.settings.resolved_landing_zone) / STUDY / "spatial" / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, target)
    return str(target)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, VersionInfo]:
    tmp = tmp_path_factory.mktemp("nhood")
    ws = _workspace(tmp)
    out = ingest(ws, _land(ws, write_sdata(tmp, "S0", n=300, seed=3)), study=STUDY)
    assert out.status == "published" and out.version is not None, out.message
    return ws, out.version


def test_nhood_zscores_are_those_of_the_section_computed_directly(
    published: tuple[Workspace, VersionInfo], tmp_path: Path
) -> None:
    ws, version = published
    outcome = nhood_analysis(ws, version.ref, k=6, n_perms=N_PERMS, seed=7)
    assert outcome.status == "published", outcome.message
    result = outcome.version
    assert result.dataset_type == "spatial.nhood" and result.parameters["labels"] == "cell_type"
    assert result.dataset == "S0.nhood.cell_type.knn6.perms200.seed7"
    nhood, sections = outcome.tables["nhood"], outcome.tables["sections"]

    cells = open_spatial(ws.root, ws.root.to_path(version.uri)).section_cells("S0")
    coords = cells[["x", "y"]].to_numpy(dtype=float)
    direct = nhood_enrichment(
        knn_graph(coords, k=6).connectivities,
        cells["cell_type"].astype(str).to_numpy(),
        n_perms=N_PERMS,
        seed=7,
    )
    got = nhood[nhood["section"] == "S0"]
    k = len(direct.categories)
    assert len(got) == k * k
    assert list(got["label_a"].iloc[::k]) == list(direct.categories)
    np.testing.assert_array_equal(got["count"].to_numpy().reshape(k, k), direct.counts)
    np.testing.assert_allclose(got["zscore"].to_numpy().reshape(k, k), direct.zscore, rtol=1e-12)
    assert int(direct.counts.sum()) == 6 * 300  # kNN: k edges per cell
    assert sections.to_dict("records") == [{"section": "S0", "n_cells": 300, "n_edges": 1800}]
    # a different seed draws a different null: the z-scores are not a constant
    other = nhood_enrichment(
        knn_graph(coords, k=6).connectivities,
        cells["cell_type"].astype(str).to_numpy(),
        n_perms=N_PERMS,
        seed=8,
    )
    assert not np.allclose(other.zscore, direct.zscore)

    assert validate_version(ws, result).success
    again = nhood_analysis(ws, version.ref, k=6, n_perms=N_PERMS, seed=7)
    assert again.status == "unchanged" and again.version.id == result.id

    mean = nhood_matrix(nhood)
    np.testing.assert_allclose(mean.to_numpy(), direct.zscore, rtol=1e-12)
    kinds = [a.kind for a in nhood_artifacts(ws, result)]
    assert kinds == ["table", "table", "markdown"]
    plot = modality("spatial").analysis("nhood").plot
    assert plot is not None
    out = Path(plot(ws, result, tmp_path / "nhood.png"))
    assert out.stat().st_size > 1000


def test_labels_column_named_stated_default_or_refused(
    published: tuple[Workspace, VersionInfo],
) -> None:
    ws, version = published
    obs = pd.DataFrame({"cell_id": ["a"], "cell_type": ["t"], "leiden": ["1"]})
    assert labels_column(version, obs, None) == "cell_type"
    assert labels_column(version, obs, "leiden") == "leiden"
    stated = dataclasses.replace(version, parameters={"labels_column": "leiden"})
    assert labels_column(stated, obs, None) == "leiden"
    with pytest.raises(InputError, match=r"labels-column.*'leidn'.*did you mean 'leiden'"):
        labels_column(version, obs, "leidn")
    with pytest.raises(AnalysisNotApplicableError, match="'cluster', 'cell_type'"):
        labels_column(
            dataclasses.replace(version, parameters={"labels_column": "cluster"}),
            obs.drop(columns=["cell_type"]),
            None,
        )
    with pytest.raises(InputError, match="labels-column"):
        nhood_analysis(ws, version.ref, labels="no_such_column", n_perms=10)


def test_cli_spatial_nhood(
    published: tuple[Workspace, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    ws, version = published
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", ws.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    runner = CliRunner()
    r = runner.invoke(app, ["spatial", "nhood", "--help"])
    assert r.exit_code == 0 and "--labels" in r.output, r.output
    args = ["spatial", "nhood", version.ref, "--labels", "cell_type", "--n-perms", "50"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"published {STUDY}/{version.dataset}.nhood.cell_type.knn6.perms50@v1" in r.output, (
        r.output
    )
    assert "1 section(s), 300 cells, 1800 edges" in r.output, r.output
    r = runner.invoke(app, ["spatial", "nhood", version.ref, "--labels", "celltype"])
    assert r.exit_code != 0 and "did you mean 'cell_type'" in r.output, r.output
