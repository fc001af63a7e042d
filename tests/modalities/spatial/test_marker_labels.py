"""Cell-type labels from marker scoring at ingest, and the section plot by program score.

A generated two-section dataset (a 309-gene panel: every built-in marker gene,
the HYPOXIA_GLYCOLYSIS program and 200 background genes) where each cell of five types expresses
its type's built-in markers (Poisson) over a low leak of every marker, a few cells have
no marker signal at all, and tumour cells on the left of each section are hypoxic, is
ingested through the pipeline with ``--label-markers builtin``. The labels stored must
recover the planted types and leave the signal-less cells unassigned, ``nhood`` must run
on them without ``--labels``, and ``--color program:NAME`` must colour each cell by the
program's score_genes score computed directly from the counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import resistomics.plots as plots
import resistomics.signatures as signatures
from flows.cli import app
from resistomics.catalog import SampleRow, VersionInfo
from resistomics.cluster import dask_client
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.knowledge import builtin_cell_type_markers, builtin_programs
from resistomics.modalities import plot_dataset
from resistomics.modalities._plugin import Reader
from resistomics.modalities.spatial import SpatialReadContext
from resistomics.modalities.spatial._analyses import nhood_analysis
from resistomics.modalities.spatial._modality import SpatialModality
from resistomics.modalities.spatial._raw import SpatialInput
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import open_spatial

STUDY = "labels"
SECTIONS = ["S1", "S2"]
TYPES = ["epithelial_tumour", "fibroblast", "macrophage", "T_cell", "endothelial"]
PROGRAM = "HYPOXIA_GLYCOLYSIS"
CLUSTER = ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB")
runner = CliRunner()


def _panel() -> tuple[list[str], dict[str, list[str]], list[str]]:
    markers = builtin_cell_type_markers().as_mapping()
    program = next(s for s in builtin_programs().sets if s.name == PROGRAM).genes
    genes = list(
        dict.fromkeys(
            [g for m in markers.values() for g in m]
            + list(program)
            + [f"BG{i:02d}" for i in range(200)]
        )
    )
    return genes, markers, list(program)


def _read_sections(path: str, ctx: SpatialReadContext) -> SpatialInput:
    rng = np.random.default_rng(5)
    genes, markers, program = _panel()
    col = {g: j for j, g in enumerate(genes)}
    all_markers = [col[g] for m in markers.values() for g in m]
    frames, blocks = [], []
    for name in SECTIONS:
        n = 150
        x, y = rng.uniform(0, 600, n), rng.uniform(0, 400, n)
        truth = rng.choice([*TYPES, "none"], size=n, p=[0.3, 0.2, 0.15, 0.15, 0.12, 0.08])
        rate = np.zeros((n, len(genes)))
        rate[:, [col[f"BG{i:02d}"] for i in range(200)]] = rng.uniform(0.05, 4.0, 200)
        typed = truth != "none"
        rate[np.ix_(typed, all_markers)] = 0.2
        rate[np.ix_(np.ones(n, bool), [col[g] for g in program])] = 0.3
        for t in TYPES:
            rate[np.ix_(truth == t, [col[g] for g in markers[t]])] = 2.5
        hypoxic = (truth == "epithelial_tumour") & (x < 300)
        rate[np.ix_(hypoxic, [col[g] for g in program])] = 2.0
        blocks.append(rng.poisson(rate))
        frames.append(
            pd.DataFrame(
                {"x": x, "y": y, "section": name, "truth": truth, "hypoxic": hypoxic},
                index=[f"{name}-c{i}" for i in range(n)],
            )
        )
    cells = pd.concat(frames)
    cells.index.name = "cell_id"
    return SpatialInput(
        platform="spatialdata",
        source=path,
        cells=cells,
        counts=sp.csr_matrix(np.vstack(blocks)),
        genes=pd.DataFrame({"feature_type": "gene"}, index=pd.Index(genes, name="feature")),
    )


@dataclass
class Published:
    ws: Workspace
    version: VersionInfo
    truth: SpatialInput
    landing: Path


def _land(ws: Workspace, name: str) -> Path:
    landed = Path(ws.settings.resolved_landing_zone) / STUDY / "spatial" / name
    landed.mkdir(parents=True)
    (landed / "sections.txt").write_text(f"generated {name}\n")
    return landed


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    base = tmp_path_factory.mktemp("marker-labels")
    reader = Reader("test-sections", (), "generated sections", lambda p: False, _read_sections)
    with pytest.MonkeyPatch.context() as mp, dask_client(CLUSTER, reuse=False):
        mp.setattr(SpatialModality, "readers", (*SpatialModality.readers, reader))
        mp.setenv("RESISTOMICS_DATA_ROOT", str(base / "root"))
        mp.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
        mp.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
        ws = Workspace.open(Settings(data_root=str(base / "root"), cluster=CLUSTER))
        ws.catalog.register_study(
            STUDY, [SampleRow(sample_id=s, subject_id="P1", phase="baseline") for s in SECTIONS]
        )
        landed = _land(ws, "cohort")
        out = ingest(
            ws, str(landed), study=STUDY, fmt="test-sections", options={"label_markers": "builtin"}
        )
        assert out.status == "published" and out.version is not None, out.message
        yield Published(
            ws, out.version, _read_sections(str(landed), SpatialReadContext()), base / "root"
        )
        ws.close()


def test_marker_labels_recover_the_planted_types(published: Published) -> None:
    store = open_spatial(published.ws.root, published.ws.root.to_path(published.version.uri))
    obs = store.obs.set_index("cell_id")
    truth = published.truth.cells.loc[obs.index, "truth"].to_numpy()
    labels = obs["marker_label"].astype(str).to_numpy()
    typed = truth != "none"
    accuracy = (labels[typed] == truth[typed]).mean()
    assert accuracy >= 0.9, accuracy
    assert (labels[~typed] == "unassigned").all() and (~typed).sum() >= 10
    scores = obs["marker_score"].to_numpy(dtype=np.float64)
    assert np.isfinite(scores).all() and (scores[~typed] <= 0).all()
    p = published.version.parameters or {}
    assert p["labels_column"] == "marker_label"
    assert p["label_markers"] == "builtin:cell_type_markers"
    assert p["label_markers_version"] == builtin_cell_type_markers().version


def test_nhood_runs_on_marker_labels_without_labels_option(published: Published) -> None:
    outcome = nhood_analysis(published.ws, published.version.ref, n_perms=20)
    result = outcome.version
    assert result is not None and result.parameters["labels"] == "marker_label"
    table = pd.read_parquet(published.ws.root.to_path(result.uri) + "/nhood.parquet")
    assert "unassigned" in set(table["label_a"]) and set(TYPES) <= set(table["label_a"])
    assert set(table["section"]) == set(SECTIONS)


def _direct_program_scores(truth: SpatialInput, section: str, target: float) -> np.ndarray:
    """score_genes of the program on the whole log-normalised table, rows of one section."""
    counts = truth.counts.astype(np.float64)
    genes = list(truth.genes.index)
    x = signatures.log_normalize(
        da.from_array(counts, chunks=(100, len(genes)), asarray=False), target_sum=target
    )
    (means,) = dask.compute(signatures.gene_means(x))
    program = next(s for s in builtin_programs().sets if s.name == PROGRAM).genes
    scored = signatures.score_genes(
        x,
        genes,
        {PROGRAM: [g for g in program if g in genes]},
        gene_means=np.asarray(means),
        n_bins=min(25, len(genes) // 2),
        random_state=0,
    )
    (values,) = dask.compute(scored.scores)
    rows = truth.cells["section"].to_numpy() == section
    return np.asarray(values)[rows, 0]


def test_section_plot_by_program_score_follows_the_direct_score(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept: list[Any] = []
    save = plots._save
    monkeypatch.setattr(
        plots, "_save", lambda plt, fig, out, **kw: (kept.append(fig), save(plt, fig, out, **kw))[1]
    )
    scored_rows: list[int] = []
    score_genes = signatures.score_genes

    def spy(X: Any, *args: Any, **kwargs: Any) -> Any:
        scored_rows.append(X.shape[0])
        return score_genes(X, *args, **kwargs)

    monkeypatch.setattr(signatures, "score_genes", spy)
    out = tmp_path / "hypoxia.png"
    plot_dataset(published.ws, published.version, out, section="S2", color=f"program:{PROGRAM}")
    assert out.stat().st_size > 10_000
    truth = published.truth.cells[published.truth.cells["section"] == "S2"]
    assert scored_rows == [len(truth)]  # only the drawn section's rows were scored
    (fig,) = kept
    (collection,) = fig.axes[0].collections
    xy = np.asarray(collection.get_offsets())
    drawn = np.asarray(collection.get_array())
    where = {(round(a, 6), round(b, 6)): i for i, (a, b) in enumerate(truth[["x", "y"]].to_numpy())}
    order = [where[(round(a, 6), round(b, 6))] for a, b in xy]
    monkeypatch.setattr(signatures, "score_genes", score_genes)
    expected = _direct_program_scores(
        published.truth, "S2", published.ws.settings.normalize_target_sum
    )
    # the store keeps float32 log-normalised values; the direct score is float64
    np.testing.assert_allclose(drawn, expected[order], rtol=1e-5, atol=1e-6)
    hypoxic = truth["hypoxic"].to_numpy()[order]
    assert drawn[hypoxic].mean() > drawn[~hypoxic].mean() + 0.5  # the planted program
    assert f"{PROGRAM} score (score_genes, 15 genes)" in fig.axes[1].get_ylabel()


def test_unknown_program_or_one_outside_the_panel_is_one_line(
    published: Published, tmp_path: Path
) -> None:
    out = tmp_path / "x.png"
    with pytest.raises(InputError) as exc:
        plot_dataset(published.ws, published.version, out, color="program:HYPOXIA_GLYCOLISIS")
    text = str(exc.value)
    assert text.startswith("--color 'program:HYPOXIA_GLYCOLISIS': [program]"), text
    assert "did you mean 'HYPOXIA_GLYCOLYSIS'?" in text and "\n" not in text
    with pytest.raises(InputError, match=r"\[program-genes\] none of the 20 genes"):
        plot_dataset(published.ws, published.version, out, color="program:DNA_REPAIR_HR")
    assert not out.exists()


def test_bad_marker_options_are_refused_before_anything_moves(
    published: Published, tmp_path: Path
) -> None:
    ws = published.ws
    landed = _land(ws, "bad")
    empty = tmp_path / "empty.gmt"
    empty.write_text("# no sets\n")
    for spec, rule in ((str(tmp_path / "absent.gmt"), "file-exists"), (str(empty), "not-empty")):
        with pytest.raises(InputError) as exc:
            ingest(
                ws, str(landed), study=STUDY, fmt="test-sections", options={"label_markers": spec}
            )
        assert exc.value.rule == rule and spec in str(exc.value) and "\n" not in str(exc.value)
        assert (landed / "sections.txt").exists()  # not claimed, not quarantined
    # markers of which no two types are in the panel: the landed data is refused
    foreign = tmp_path / "foreign.gmt"
    foreign.write_text("a\tx\tNOPE1\tNOPE2\tNOPE3\nb\tx\tEPCAM\tKRT8\tKRT18\n")
    out = ingest(
        ws, str(landed), study=STUDY, fmt="test-sections", options={"label_markers": str(foreign)}
    )
    assert out.status == "quarantined" and "[marker-genes]" in out.message, out.message


def test_cli_refuses_a_missing_marker_file_with_one_line(
    published: Published, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = Reader("test-sections", (), "generated sections", lambda p: False, _read_sections)
    monkeypatch.setattr(SpatialModality, "readers", (*SpatialModality.readers, reader))
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "sections.txt").write_text("generated\n")
    args = ["ingest", str(folder), "--study", STUDY, "--modality", "spatial"]
    r = runner.invoke(app, [*args, "--format", "test-sections", "--label-markers", "nope.gmt"])
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nope.gmt: [file-exists] no such gene-set file" in lines[0], r.stderr
    r = runner.invoke(app, ["modalities"])
    assert r.exit_code == 0 and "--label-markers" in r.output
