"""The ``autocorr``, ``cooccurrence`` and ``neighbors`` analyses on a published spatial
dataset.

Oracles: the published Moran's I is that of :func:`morans_i` on the same section's
log-normalised counts (normalised here from the whole store through the expression
path, and once more by hand), and a planted gene (EPCAM following a smooth field, KRT8
its complement) has high I and a tiny p while the noise genes do not; the published
co-occurrence is :func:`co_occurrence` of the section; the published kNN, radius and
Delaunay edges are those of :func:`knn_graph` / :func:`radius_graph` /
:func:`delaunay_graph`. Each result revalidates, a rerun finds it, bad options are one
line, and the CLI commands run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from resistomics.catalog import SampleRow, VersionInfo
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError, MethodInputError
from resistomics.modalities import modality
from resistomics.modalities.spatial import (
    co_occurrence,
    delaunay_graph,
    knn_graph,
    morans_i,
    radius_graph,
)
from resistomics.modalities.spatial._stats_analyses import (
    autocorr_analysis,
    autocorr_artifacts,
    autocorr_summary,
    cooccurrence_analysis,
    cooccurrence_artifacts,
    neighbors_analysis,
    neighbors_artifacts,
    parse_interval,
)
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.signatures import log_normalize
from resistomics.storage import open_spatial
from spatial_files import write_sdata

STUDY = "sp"
N_CELLS = 300
PLANTED = ["EPCAM", "KRT8"]
NOISE = ["COL1A1", "CD68", "PTPRC", "MKI67"]


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
    tmp = tmp_path_factory.mktemp("stats")
    ws = _workspace(tmp)
    src = write_sdata(tmp, "S0", n=N_CELLS, seed=3, planted=True)
    out = ingest(ws, _land(ws, src), study=STUDY)
    assert out.status == "published" and out.version is not None, out.message
    return ws, out.version


def _section(ws: Workspace, version: VersionInfo) -> tuple[pd.DataFrame, np.ndarray]:
    cells = open_spatial(ws.root, ws.root.to_path(version.uri)).section_cells("S0")
    return cells, cells[["x", "y"]].to_numpy(dtype=float)


def _plot(ws: Workspace, result: VersionInfo, name: str, out: Path, **options: object) -> Path:
    from resistomics.modalities import plot_dataset

    path = Path(plot_dataset(ws, result, out / f"{name}.png", **options))
    assert path.stat().st_size > 1000
    return path


# -- autocorr ----------------------------------------------------------------------------


def test_autocorr_is_morans_i_of_the_section_and_finds_the_planted_gene(
    published: tuple[Workspace, VersionInfo], tmp_path: Path
) -> None:
    ws, version = published
    outcome = autocorr_analysis(ws, version.ref, k=6, n_perms=99, seed=4)
    assert outcome.status == "published", outcome.message
    result = outcome.version
    assert result.dataset_type == "spatial.autocorr"
    assert result.dataset == "S0.autocorr.knn6.perms99.seed4"
    table = outcome.tables["autocorr"].set_index("gene")
    assert list(table.index) == PLANTED + NOISE and set(table["section"]) == {"S0"}
    assert outcome.tables["sections"].to_dict("records") == [
        {"section": "S0", "n_cells": N_CELLS, "n_edges": 6 * N_CELLS}
    ]

    # the oracle: the whole matrix log-normalised as the expression analyses do, the
    # section's rows, morans_i on knn_graph
    store = open_spatial(ws.root, ws.root.to_path(version.uri))
    _, coords = _section(ws, version)
    libs = store.obs["total_counts"].to_numpy(dtype=float)
    x = log_normalize(store.matrix.cells(), target_sum=1e4, size_factors=libs).compute()
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    counts = store.section_counts("S0").toarray().astype(np.float32)
    by_hand = np.log1p(counts / (libs.astype(np.float32)[:, None] / np.float32(1e4)))
    np.testing.assert_allclose(x, by_hand, rtol=1e-6)
    graph = knn_graph(coords, k=6)
    direct = morans_i(graph.connectivities, x, genes=list(store.var.index), n_perms=99, seed=4)
    for column in ("I", "expected", "var_norm", "pval_norm", "pval_norm_fdr_bh", "pval_sim"):
        np.testing.assert_allclose(
            table[column].to_numpy(), direct[column].to_numpy(), rtol=1e-12, err_msg=column
        )
    # and Moran's I itself by its formula, row-normalised weights
    w = graph.connectivities.toarray().astype(float)
    w /= w.sum(axis=1, keepdims=True)
    z = x - x.mean(axis=0)
    formula = N_CELLS / w.sum() * np.einsum("ig,ij,jg->g", z, w, z) / (z * z).sum(axis=0)
    np.testing.assert_allclose(table["I"].to_numpy(), formula, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        table["z_norm"], (table["I"] - table["expected"]) / np.sqrt(table["var_norm"])
    )

    # planted: the field and its complement are autocorrelated, the noise genes are not
    assert (table.loc[PLANTED, "I"] > 0.2).all() and (table.loc[PLANTED, "pval_norm"] < 1e-10).all()
    assert (table.loc[PLANTED, "pval_sim"] == 1 / 100).all()  # above every permutation
    assert (table.loc[NOISE, "z_norm"].abs() < 2.5).all()
    assert (table.loc[NOISE, "pval_norm_fdr_bh"] > 0.05).all()

    assert validate_version(ws, result).success
    again = autocorr_analysis(ws, version.ref, k=6, n_perms=99, seed=4)
    assert again.status == "unchanged" and again.version.id == result.id
    summary = autocorr_summary(outcome.tables["autocorr"])
    assert list(summary["gene"].iloc[:2]) == ["KRT8", "EPCAM"]
    assert [a.kind for a in autocorr_artifacts(ws, result)] == ["table", "table", "markdown"]
    _plot(ws, result, "autocorr", tmp_path, top=3)


def test_autocorr_of_chosen_genes_without_permutations(
    published: tuple[Workspace, VersionInfo],
) -> None:
    ws, version = published
    outcome = autocorr_analysis(ws, version.ref, genes="MKI67, EPCAM", k=4)
    table = outcome.tables["autocorr"]
    assert list(table["gene"]) == ["EPCAM", "MKI67"]  # panel order
    assert table["pval_sim"].isna().all() and table["var_sim"].isna().all()
    assert outcome.version.dataset.startswith("S0.autocorr.knn4.genes-")
    assert outcome.version.parameters["genes"] == ["EPCAM", "MKI67"]
    assert validate_version(ws, outcome.version).success
    # the same genes named in another order are the same result
    again = autocorr_analysis(ws, version.ref, genes=["EPCAM", "MKI67"], k=4)
    assert again.status == "unchanged"


def test_autocorr_of_a_program_score_is_morans_i_of_the_score(
    published: tuple[Workspace, VersionInfo],
) -> None:
    """A program's per-cell score (score_genes on the log-normalised table, the scores
    the niche analysis and the section plot use) is tested as a row program:<NAME>: its
    I equals morans_i of the score computed directly, on the same kNN graph."""
    from resistomics.knowledge import builtin_programs
    from resistomics.modalities.spatial._program_scores import program_scores

    ws, version = published
    outcome = autocorr_analysis(ws, version.ref, genes="EPCAM", programs="EMT_MESENCHYMAL", k=6)
    table = outcome.tables["autocorr"].set_index("gene")
    assert list(table.index) == ["EPCAM", "program:EMT_MESENCHYMAL"]
    assert outcome.version.parameters["programs"] == ["EMT_MESENCHYMAL"]
    assert ".programs-" in outcome.version.dataset
    emt = next(p for p in builtin_programs().sets if p.name == "EMT_MESENCHYMAL")
    scores, genes = program_scores(ws, version, [(emt.name, emt.genes)])
    assert genes[emt.name] == ("COL1A1",)
    _, coords = _section(ws, version)
    direct = morans_i(knn_graph(coords, k=6).connectivities, scores, genes=["score"])
    for column in ("I", "var_norm", "pval_norm"):
        np.testing.assert_allclose(
            table.loc["program:EMT_MESENCHYMAL", column], direct[column].iloc[0], rtol=1e-12
        )
    assert validate_version(ws, outcome.version).success
    with pytest.raises(
        InputError, match=r"--programs: \[program\].*did you mean 'EMT_MESENCHYMAL'"
    ):
        autocorr_analysis(ws, version.ref, programs="EMT_MESENCHYMA")
    with pytest.raises(InputError, match=r"--programs: \[program-genes\]"):
        autocorr_analysis(ws, version.ref, programs="DNA_REPAIR_HR")


def test_autocorr_bad_options_are_one_line(published: tuple[Workspace, VersionInfo]) -> None:
    ws, version = published
    with pytest.raises(InputError, match=r"--genes: \[panel-gene\] 'EPCA'.*did you mean 'EPCAM'"):
        autocorr_analysis(ws, version.ref, genes="EPCA")
    with pytest.raises(InputError, match=r"\[panel-gene\] names no gene"):
        autocorr_analysis(ws, version.ref, genes=" , ")
    with pytest.raises(InputError, match=r"--k: \[option\] 300 is not below the 300 cells"):
        autocorr_analysis(ws, version.ref, k=N_CELLS)
    with pytest.raises(InputError, match=r"--k: \[option\] 0 is not >= 1"):
        autocorr_analysis(ws, version.ref, k=0)
    with pytest.raises(InputError, match=r"--n-perms: \[option\]"):
        autocorr_analysis(ws, version.ref, n_perms=-1)
    result = autocorr_analysis(ws, version.ref, genes="EPCAM")
    for call in (autocorr_analysis, cooccurrence_analysis, neighbors_analysis):
        with pytest.raises(MethodInputError, match=r"\[dataset-type\].*not spatial\.cells"):
            call(ws, result.version.ref)


# -- cooccurrence ------------------------------------------------------------------------


def test_cooccurrence_is_that_of_the_section(
    published: tuple[Workspace, VersionInfo], tmp_path: Path
) -> None:
    ws, version = published
    outcome = cooccurrence_analysis(ws, version.ref, labels="cell_type", interval=12)
    assert outcome.status == "published", outcome.message
    result = outcome.version
    assert result.dataset == "S0.cooccurrence.cell_type.interval12"
    table = outcome.tables["cooccurrence"]
    cells, coords = _section(ws, version)
    direct = co_occurrence(coords, cells["cell_type"].astype(str).to_numpy(), interval=12)
    k, n_bins = len(direct.categories), len(direct.interval) - 1
    assert len(table) == k * k * n_bins
    assert list(dict.fromkeys(table["label_a"])) == list(direct.categories)
    np.testing.assert_array_equal(table["ratio"].to_numpy().reshape(k, k, n_bins), direct.ratio)
    np.testing.assert_array_equal(table["pairs"].to_numpy().reshape(k, k, n_bins), direct.counts)
    np.testing.assert_array_equal(
        table["distance"].to_numpy()[:n_bins], direct.interval[1:].astype(float)
    )
    # the ratio is symmetric in the two types, and near 1 for random labels far out
    ratio = direct.ratio
    np.testing.assert_allclose(ratio, ratio.transpose(1, 0, 2), rtol=1e-12)
    assert np.abs(ratio[:, :, -1] - 1).max() < 0.1
    sections = outcome.tables["sections"]
    assert sections[["section", "n_cells", "n_distances"]].to_dict("records") == [
        {"section": "S0", "n_cells": N_CELLS, "n_distances": 11}
    ]

    assert validate_version(ws, result).success
    again = cooccurrence_analysis(ws, version.ref, labels="cell_type", interval="12")
    assert again.status == "unchanged" and again.version.id == result.id
    assert [a.kind for a in cooccurrence_artifacts(ws, result)] == ["table", "table", "markdown"]
    _plot(ws, result, "cooc", tmp_path, cell_type="tumour")
    with pytest.raises(InputError, match=r"--cell-type: \[option\] 'tumor'.*did you mean 'tumour'"):
        _plot(ws, result, "cooc", tmp_path, cell_type="tumor")

    given = cooccurrence_analysis(ws, version.ref, interval="0, 20,50,100")
    assert given.version.dataset.startswith("S0.cooccurrence.cell_type.distances-")
    explicit = co_occurrence(
        coords, cells["cell_type"].astype(str).to_numpy(), interval=[0, 20, 50, 100]
    )
    np.testing.assert_array_equal(
        given.tables["cooccurrence"]["ratio"].to_numpy().reshape(k, k, 3), explicit.ratio
    )
    assert sorted(set(given.tables["cooccurrence"]["distance"])) == [20.0, 50.0, 100.0]


def test_cooccurrence_bad_options_are_one_line(published: tuple[Workspace, VersionInfo]) -> None:
    ws, version = published
    assert parse_interval("5") == 5 and parse_interval("10,0,5") == (0.0, 5.0, 10.0)
    for bad, rule in [
        ("1", "give at least 2"),
        ("ten", "neither a count nor"),
        ("0,x", "must be numbers"),
        ("0,5,5", "repeated"),
        ("-1,5", "finite distances >= 0"),
    ]:
        with pytest.raises(InputError, match=rf"--interval: \[option\].*{rule}"):
            cooccurrence_analysis(ws, version.ref, interval=bad)
    with pytest.raises(InputError, match=r"labels-column.*'celltype'.*did you mean 'cell_type'"):
        cooccurrence_analysis(ws, version.ref, labels="celltype")


# -- neighbors ---------------------------------------------------------------------------


def _edges_as_matrix(edges: pd.DataFrame, ids: list[str], column: str) -> sp.csr_matrix:
    index = {c: i for i, c in enumerate(ids)}
    rows = edges["cell_a"].map(index).to_numpy()
    cols = edges["cell_b"].map(index).to_numpy()
    values = np.ones(len(edges)) if column == "ones" else edges[column].to_numpy()
    return sp.csr_matrix((values, (rows, cols)), shape=(len(ids), len(ids)))


def test_neighbors_edges_are_those_of_the_section_graph(
    published: tuple[Workspace, VersionInfo], tmp_path: Path
) -> None:
    ws, version = published
    cells, coords = _section(ws, version)
    ids = list(cells["cell_id"].astype(str))

    outcome = neighbors_analysis(ws, version.ref, k=5)
    result = outcome.version
    assert result.dataset == "S0.neighbors.knn5" and result.parameters["k"] == 5
    graph, edges = outcome.tables["graph"], outcome.tables["edges"]
    assert len(edges) == 5 * N_CELLS
    assert graph.iloc[0][["n_cells", "n_edges", "max_degree", "isolated_cells"]].tolist() == [
        N_CELLS,
        5 * N_CELLS,
        5,
        0,
    ]
    direct = knn_graph(coords, k=5)
    got = _edges_as_matrix(edges, ids, "ones")
    assert (got != direct.connectivities).nnz == 0
    np.testing.assert_allclose(
        _edges_as_matrix(edges, ids, "distance").toarray(), direct.distances.toarray(), rtol=1e-12
    )
    assert graph["median_edge_length"].iloc[0] == pytest.approx(np.median(direct.distances.data))
    assert validate_version(ws, result).success
    assert neighbors_analysis(ws, version.ref, method="knn", k=5).status == "unchanged"
    assert [a.kind for a in neighbors_artifacts(ws, result)] == ["table", "markdown"]
    _plot(ws, result, "graph", tmp_path)

    radius = neighbors_analysis(ws, version.ref, method="radius", radius=30)
    assert radius.version.dataset == "S0.neighbors.radius30"
    want = radius_graph(coords, radius=30)
    assert (_edges_as_matrix(radius.tables["edges"], ids, "ones") != want.connectivities).nnz == 0
    degree = np.diff(want.connectivities.indptr)
    row = radius.tables["graph"].iloc[0]
    assert row["isolated_cells"] == int((degree == 0).sum()) > 0
    assert row["mean_degree"] == pytest.approx(degree.mean())
    assert row["max_degree"] == degree.max()
    assert validate_version(ws, radius.version).success

    tri = neighbors_analysis(ws, version.ref, method="delaunay")
    want = delaunay_graph(coords)
    assert (_edges_as_matrix(tri.tables["edges"], ids, "ones") != want.connectivities).nnz == 0
    assert tri.tables["graph"].iloc[0]["n_edges"] == want.n_edges


def test_neighbors_bad_options_are_one_line(published: tuple[Workspace, VersionInfo]) -> None:
    ws, version = published
    cases: list[tuple[dict[str, object], str]] = [
        ({"method": "knnn"}, r"--method: \[option\] 'knnn'.*did you mean 'knn'"),
        ({"method": "radius"}, r"--radius: \[option\] --method radius needs a --radius"),
        ({"method": "radius", "radius": -2.0}, r"--radius: \[option\] -2.0 is not a positive"),
        ({"method": "delaunay", "k": 4}, r"--k: \[option\] applies to --method knn"),
        ({"method": "knn", "radius": 5.0}, r"--radius: \[option\] applies to --method radius"),
        ({"k": 400}, r"--k: \[option\] 400 is not below the 300 cells of section 'S0'"),
    ]
    for options, message in cases:
        with pytest.raises(InputError, match=message):
            neighbors_analysis(ws, version.ref, **options)  # type: ignore[arg-type]


# -- registry and CLI --------------------------------------------------------------------


def test_registered_as_non_default_analyses() -> None:
    spatial = modality("spatial")
    for name, result_type in [
        ("autocorr", "spatial.autocorr"),
        ("cooccurrence", "spatial.cooccurrence"),
        ("neighbors", "spatial.neighbors"),
    ]:
        analysis = spatial.analysis(name)
        assert analysis.result_type == result_type and not analysis.default
        assert analysis.plot is not None and analysis.artifacts is not None
    assert [a.name for a in spatial.default_analyses()] == ["nhood", "niches"]
    with pytest.raises(InputError, match=r"--top"):
        spatial.analysis("autocorr").parse_plot_options({"top": 0})


def test_cli_spatial_stats_commands(
    published: tuple[Workspace, VersionInfo], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    ws, version = published
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", ws.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    runner = CliRunner()
    for command, flag in [
        ("autocorr", "--genes"),
        ("cooccurrence", "--interval"),
        ("neighbors", "--method"),
    ]:
        r = runner.invoke(app, ["spatial", command, "--help"])
        assert r.exit_code == 0 and flag in r.output and "Example:" in r.output, r.output

    r = runner.invoke(
        app, ["spatial", "autocorr", version.ref, "--genes", "EPCAM,CD68", "--k", "3"]
    )
    assert r.exit_code == 0, r.output
    assert (
        "published sp/S0.autocorr.knn3.genes-" in r.output
        and "1 section(s), 300 cells, 2 genes" in r.output
    ), r.output
    assert r.output.index("EPCAM") < r.output.index("CD68"), r.output  # by mean I
    r = runner.invoke(app, ["spatial", "autocorr", version.ref, "--genes", "EPCMA"])
    assert r.exit_code != 0 and "did you mean 'EPCAM'" in r.output, r.output

    r = runner.invoke(app, ["spatial", "cooccurrence", version.ref, "--interval", "0,40,80"])
    assert r.exit_code == 0, r.output
    assert "3 types, 2 distances" in r.output and "ratio_nearest" in r.output, r.output
    r = runner.invoke(app, ["spatial", "cooccurrence", version.ref, "--interval", "1"])
    assert r.exit_code != 0 and "--interval: [option]" in r.output, r.output

    r = runner.invoke(app, ["spatial", "neighbors", version.ref, "--method", "knn", "--k", "4"])
    assert r.exit_code == 0, r.output
    assert f"published {STUDY}/S0.neighbors.knn4@v1" in r.output, r.output
    assert "1 section(s), 300 cells, 1200 edges" in r.output, r.output
    r = runner.invoke(app, ["spatial", "neighbors", version.ref, "--method", "radius"])
    assert r.exit_code != 0 and "needs a --radius" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
