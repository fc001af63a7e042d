"""The plot of a source spatial dataset: a section's cells where they lie, coloured.

A generated dataset of 14 sections (three cell types in bands of x, a fourth only in
S05; EPCAM planted in tumour cells) is published through the real writer; the tests look
at the figure the plot draws (a spy on the save) as well as the PNG: each label's cells
carry that label's legend colour, a gene's colours are its log-normalised counts, only the
drawn section's rows are read, ``--section all`` stops at 12 panels and says so.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

import resistomics.plots as plots
from flows.cli import app
from resistomics.catalog import SampleRow, VersionInfo
from resistomics.cluster import dask_client
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.modalities import plot_dataset
from resistomics.modalities._plugin import Reader
from resistomics.modalities.spatial import SpatialReadContext
from resistomics.modalities.spatial._modality import SpatialModality
from resistomics.modalities.spatial._raw import SpatialInput
from resistomics.modalities.spatial._section_plot import colour_of
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import SpatialStore

STUDY = "plot"
SECTIONS = [f"S{i:02d}" for i in range(14)]
GENES = ["EPCAM", "VIM", "CD68"]
CLUSTER = ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB")
runner = CliRunner()


def _cell_types(x: np.ndarray, section: str) -> np.ndarray:
    types_ = np.where(x < 300, "tumour", np.where(x < 600, "fibroblast", "macrophage"))
    if section == "S05":
        types_[::7] = "T cell"
    return types_


def _read_sections(path: str, ctx: SpatialReadContext) -> SpatialInput:
    """A multi-section source (as a SpatialData store with several regions would be)."""
    rng = np.random.default_rng(11)
    frames, blocks = [], []
    for k, name in enumerate(SECTIONS):
        n = 30 + k
        x, y = rng.uniform(0, 900, n), rng.uniform(0, 700, n)
        kind = _cell_types(x, name)
        frames.append(
            pd.DataFrame(
                {
                    "x": x,
                    "y": y,
                    "section": name,
                    "cell_type": kind,
                    "area": rng.uniform(20, 80, n),
                },
                index=[f"{name}-c{i}" for i in range(n)],
            )
        )
        counts = rng.poisson(1.0, (n, len(GENES))) + 1
        counts[kind == "tumour", 0] += rng.poisson(20.0, int((kind == "tumour").sum()))
        blocks.append(counts)
    cells = pd.concat(frames)
    cells.index.name = "cell_id"
    return SpatialInput(
        platform="spatialdata",
        source=path,
        cells=cells,
        counts=sp.csr_matrix(np.vstack(blocks)),
        genes=pd.DataFrame({"feature_type": "gene"}, index=pd.Index(GENES, name="feature")),
    )


@dataclass
class Published:
    ws: Workspace
    version: VersionInfo
    truth: SpatialInput


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Published]:
    base = tmp_path_factory.mktemp("section-plot")
    reader = Reader("test-sections", (), "generated sections", lambda p: False, _read_sections)
    with pytest.MonkeyPatch.context() as mp, dask_client(CLUSTER, reuse=False):
        mp.setattr(SpatialModality, "readers", (*SpatialModality.readers, reader))
        mp.setenv("RESISTOMICS_DATA_ROOT", str(base / "root"))
        mp.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
        mp.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
        ws = Workspace.open(Settings(data_root=str(base / "root"), cluster=CLUSTER))
        ws.catalog.register_study(
            STUDY, [SampleRow(sample_id=s, subject_id=f"P{s}", phase="baseline") for s in SECTIONS]
        )
        landed = Path(ws.settings.resolved_landing_zone) / STUDY / "spatial" / "cohort"
        landed.mkdir(parents=True)
        (landed / "sections.txt").write_text("generated\n")
        out = ingest(
            ws,
            str(landed),
            study=STUDY,
            fmt="test-sections",
            options={"labels_column": "cell_type"},
        )
        assert out.status == "published" and out.version is not None, out.message
        yield Published(ws, out.version, _read_sections(str(landed), SpatialReadContext()))
        ws.close()


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every figure the plots save, kept for the test to look at."""
    kept: list[Any] = []
    save = plots._save

    def spy(plt: Any, fig: Any, output: Any, **kwargs: Any) -> Path:
        kept.append(fig)
        return save(plt, fig, output, **kwargs)

    monkeypatch.setattr(plots, "_save", spy)
    return kept


def _scatter(ax: Any) -> tuple[np.ndarray, Any]:
    (collection,) = ax.collections
    return np.asarray(collection.get_offsets()), collection


def _png_is_a_picture(path: Path) -> None:
    import matplotlib.image

    assert path.stat().st_size > 10_000
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 20  # not blank


def _truth(p: Published, section: str) -> pd.DataFrame:
    cells = p.truth.cells
    return cells[cells["section"] == section]


def test_categorical_plot_colours_each_label_as_its_legend_entry(
    published: Published, figures: list[Any], tmp_path: Path
) -> None:
    out = tmp_path / "s03.png"
    plot_dataset(published.ws, published.version, out, section="S03", color="cell_type")
    _png_is_a_picture(out)
    (fig,) = figures
    (legend,) = fig.legends
    names = [t.get_text() for t in legend.get_texts()]
    truth = _truth(published, "S03")
    assert sorted(names) == sorted(set(truth["cell_type"])) and len(names) == 3
    legend_colour = {
        t.get_text(): tuple(np.round(h.get_markerfacecolor(), 6))
        for t, h in zip(legend.get_texts(), legend.legend_handles, strict=True)
    }
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 1
    xy, collection = _scatter(visible[0])
    assert len(xy) == len(truth)  # every cell of S03, none of another section
    colours = np.round(collection.get_facecolors(), 6)
    # each drawn point is a cell of the truth: its label's legend colour
    key = {
        (round(x, 6), round(y, 6)): t
        for x, y, t in truth[["x", "y", "cell_type"]].itertuples(index=False)
    }
    for (x, y), colour in zip(xy, colours, strict=True):
        assert tuple(colour) == legend_colour[key[(round(x, 6), round(y, 6))]]
    assert len(set(legend_colour.values())) == len(names)
    assert "S03" in visible[0].get_title() and "33 cells" in visible[0].get_title()


def test_default_colour_is_the_labels_column(
    published: Published, figures: list[Any], tmp_path: Path
) -> None:
    plot_dataset(published.ws, published.version, tmp_path / "default.png")
    (fig,) = figures
    (legend,) = fig.legends
    first = _truth(published, "S00")
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(set(first["cell_type"]))
    # without labels (no labels_column, no cell_type column): total counts, a colour bar
    obs = pd.DataFrame({"x": [0.0], "y": [0.0], "total_counts": [3]})
    store = types.SimpleNamespace(obs=obs, var=pd.DataFrame(index=GENES))
    bare = dataclasses.replace(published.version, parameters={})
    assert colour_of(bare, store, None) == ("total_counts", "numeric")  # type: ignore[arg-type]


def test_gene_plot_is_log_normalised_expression_of_that_section_only(
    published: Published, figures: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []
    section_counts = SpatialStore.section_counts

    def spy(self: SpatialStore, section: str) -> sp.csr_matrix:
        read.append(section)
        return section_counts(self, section)

    monkeypatch.setattr(SpatialStore, "section_counts", spy)
    out = tmp_path / "epcam.png"
    plot_dataset(published.ws, published.version, out, section="S07", color="EPCAM")
    _png_is_a_picture(out)
    assert read == ["S07"]
    (fig,) = figures
    assert not fig.legends and len(fig.axes) == 2  # the panel and its colour bar
    xy, collection = _scatter(fig.axes[0])
    truth = _truth(published, "S07")
    rows = np.flatnonzero(published.truth.cells["section"].to_numpy() == "S07")
    counts = published.truth.counts[rows].toarray().astype(float)
    target = published.ws.settings.normalize_target_sum
    expected = np.log1p(counts[:, 0] / counts.sum(axis=1) * target)
    where = {(round(x, 6), round(y, 6)): i for i, (x, y) in enumerate(truth[["x", "y"]].to_numpy())}
    drawn = np.asarray(collection.get_array())
    order = [where[(round(x, 6), round(y, 6))] for x, y in xy]
    np.testing.assert_allclose(drawn, expected[order], rtol=1e-6)
    tumour = truth["cell_type"].to_numpy()[order] == "tumour"
    assert drawn[tumour].mean() > drawn[~tumour].mean() + 1  # the planted marker
    assert "EPCAM, log1p(counts / total x 10000)" in fig.axes[1].get_ylabel()

    # a numeric cell column: its values on a colour bar
    figures.clear()
    plot_dataset(published.ws, published.version, tmp_path / "area.png", color="area")
    (fig,) = figures
    _, collection = _scatter(fig.axes[0])
    np.testing.assert_allclose(
        np.sort(np.asarray(collection.get_array())), np.sort(_truth(published, "S00")["area"])
    )


def test_all_sections_are_small_multiples_cut_at_twelve(
    published: Published, figures: list[Any], tmp_path: Path
) -> None:
    out = tmp_path / "all.png"
    plot_dataset(published.ws, published.version, out, section="all")
    _png_is_a_picture(out)
    (fig,) = figures
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split()[0] for ax in panels] == SECTIONS[:12]
    assert "the first 12 of 14 sections" in fig._suptitle.get_text()
    (legend,) = fig.legends  # one legend for all panels: the union of the types drawn
    assert sorted(t.get_text() for t in legend.get_texts()) == sorted(
        ["tumour", "fibroblast", "macrophage", "T cell"]
    )
    for ax, name in zip(panels, SECTIONS, strict=False):
        assert len(_scatter(ax)[0]) == len(_truth(published, name))


def test_unknown_section_or_colour_names_what_there_is(
    published: Published, tmp_path: Path
) -> None:
    out = tmp_path / "x.png"
    with pytest.raises(InputError) as exc:
        plot_dataset(published.ws, published.version, out, section="S0")
    text = str(exc.value)
    assert text.startswith("--section 'S0': [option]") and "choose all or one of S00, S01" in text
    with pytest.raises(InputError) as exc:
        plot_dataset(published.ws, published.version, out, color="EPCAN")
    text = str(exc.value)
    assert text.startswith("--color 'EPCAN': [option]") and "did you mean 'EPCAM'?" in text
    assert "cell_type" in text and "genes: EPCAM, VIM, CD68" in text
    with pytest.raises(InputError) as exc:
        plot_dataset(published.ws, published.version, out, colour="EPCAM")
    assert "did you mean --color?" in str(exc.value)
    assert not out.exists()


def test_a_large_section_is_subsampled_and_says_so(figures: list[Any], tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    cells = plots.SectionCells("big", rng.uniform(0, 9, 120), rng.uniform(0, 9, 120), np.zeros(120))
    plots.plot_section_cells([cells], tmp_path / "big.png", categories=["a"], max_cells=50)
    (fig,) = figures
    ax = fig.axes[0]
    assert "random 50 of 120 cells" in ax.get_title()
    assert len(_scatter(ax)[0]) == 50
    assert plots.MAX_CELLS_DRAWN == 200_000


def test_cli_plots_a_section_or_fails_with_one_line(published: Published, tmp_path: Path) -> None:
    ref = f"{STUDY}/{published.version.dataset}"
    out = tmp_path / "cli.png"
    r = runner.invoke(
        app, ["plot", ref, "-o", str(out), "--section", "S01", "--color", "cell_type"]
    )
    assert r.exit_code == 0, r.output
    _png_is_a_picture(out)
    r = runner.invoke(app, ["plot", ref, "-o", str(tmp_path / "no.png"), "--section", "nope"])
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--section 'nope': [option]" in lines[0], r.stderr
    r = runner.invoke(app, ["plot", "--help"])
    assert r.exit_code == 0 and "spatial datasets" in r.output and "--section" in r.output
