"""The ``activity`` analysis end to end on the generated cohort: ArchR gene activity
from the peak counts equals ``_gene_activity.gene_activity`` of the stored matrix, the
planted genes are more active in persisters, and a program of the planted genes scores
higher at progression (as on expression), a null program does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from scipy import stats

from atac_cohort import Cohort, ingest_cohort
from resistomics.errors import AnalysisNotApplicableError, InputError
from resistomics.knowledge import load_gene_sets
from resistomics.modalities import modality
from resistomics.modalities.accessibility._activity_analysis import (
    accessibility_activity,
    activity_artifacts,
    plot_activity_programs,
    unique_genes,
)
from resistomics.modalities.accessibility._gene_activity import gene_activity
from resistomics.modalities.accessibility._regions import read_named_bed
from resistomics.modalities.accessibility._tiles import Intervals
from resistomics.storage import open_sparse_matrix

PLANTED = 12


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    base = tmp_path_factory.mktemp("cohort")
    c = ingest_cohort(
        base,
        modality_settings={"tile_size": 500},
        n_subjects=3,
        cells_per_sample=50,
        n_planted_genes=PLANTED,
        seed=5,
    )
    yield c
    c.ws.close()


def _gmt(path: Path, sets: dict[str, list[str]]) -> Path:
    path.write_text("".join(f"{k}\tgenerated\t" + "\t".join(v) + "\n" for k, v in sets.items()))
    return path


@pytest.mark.parametrize("features", ["auto", "peaks"])
def test_planted_program_scores_higher_at_progression(
    cohort: Cohort, tmp_path: Path, features: str
) -> None:
    """From the tile matrix (``auto``: the version keeps one, ArchR's input) or the peaks:
    the stored activity is ``gene_activity`` of that matrix; planted genes are more
    active in persisters; the planted program's score separates persister cells and rises
    at progression in every subject (both scorers), the null program's barely moves."""
    sim = cohort.sim
    planted = sim.planted_genes
    null = [g for g in sim.genes["name"] if g not in planted][40 : 40 + PLANTED]
    gmt = _gmt(tmp_path / "programs.gmt", {"PLANTED": planted, "NULL": null})
    out = accessibility_activity(
        cohort.ws, cohort.ref, genes=str(cohort.genes_bed), gene_sets=str(gmt), features=features
    )
    assert out.status == "published", out.message
    # the activity matrix is ArchR's model on the stored peak counts
    version = out.version
    group = zarr.open_group(
        cohort.ws.root.mapper(f"{cohort.ws.root.to_path(version.uri)}/activity.zarr"), mode="r"
    )
    stored = np.asarray(group["activity"][:])
    counts = cohort.ws.catalog.resolve(cohort.ref)
    tiles = {"adata": "tiles/expression.zarr", "by_gene": "tiles/by_gene.zarr"}
    store = open_sparse_matrix(
        cohort.ws.root,
        cohort.ws.root.to_path(counts.uri),
        **(tiles if features == "auto" else {}),
    )
    assert version.parameters["features"] == ("tiles" if features == "auto" else "peaks")
    var = store.var
    peaks = Intervals(
        contig=var["contig"].astype(str).to_numpy(),
        start=var["start"].to_numpy(),
        end=var["end"].to_numpy(),
    )
    genes = unique_genes(
        read_named_bed(
            cohort.genes_bed,
            modality("accessibility").genome(
                modality("accessibility").settings_of(cohort.ws.settings)
            ),
            what="genes",
        )
    )
    direct = gene_activity(store.cells().compute(), peaks, genes)
    np.testing.assert_allclose(stored, direct, rtol=1e-6, atol=1e-3)  # float32 on disk
    assert list(group["activity"].attrs["genes"]) == list(genes.name)
    # planted genes are more active in persister cells
    persister = sim.cells.set_index("barcode")["persister"].reindex(store.obs.index).to_numpy()
    col = np.isin(np.asarray(genes.name), planted)
    share = direct[:, col].sum(axis=1)
    assert share[persister].mean() > 2 * share[~persister].mean()
    # the program of the planted genes: per cell higher in persisters, per sample up at
    # progression in every subject; the null program's change is small
    cells = out.tables["cells"]
    sg = cells[(cells["method"] == "score_genes") & (cells["gene_set"] == "PLANTED")]
    sg = sg.set_index("cell_id")["score"]
    p = sim.cells.set_index("barcode")["persister"].reindex(sg.index).to_numpy(dtype=bool)
    auc = stats.mannwhitneyu(sg[p], sg[~p]).statistic / (p.sum() * (~p).sum())
    assert auc > 0.9
    samples = out.tables["samples"]
    for method in ("score_genes", "singscore"):
        s = samples[samples["method"] == method]
        wide = s.pivot_table(index=["subject_id", "gene_set"], columns="phase", values="mean_score")
        rise = (wide["progression"] - wide["baseline"]).unstack("gene_set")
        assert (rise["PLANTED"] > 0).all(), method
        assert (rise["PLANTED"] > 3 * rise["NULL"].abs()).all(), method
    sets = out.tables["gene_sets"].set_index("gene_set")
    assert sets.loc["PLANTED", "n_found"] == PLANTED and sets["scored"].all()
    arts = {a.key_parts[-1]: a for a in activity_artifacts(cohort.ws, version)}
    assert arts["program-scores"].table is not None and "phase" in arts["program-scores"].table
    png = plot_activity_programs(cohort.ws, version, tmp_path / "programs.png")
    assert Path(png).stat().st_size > 1000


def test_builtin_programs_need_gene_symbols_and_coordinates(cohort: Cohort) -> None:
    """The generated genes are GENE0001...: no built-in program gene is among them, which
    is 'not applicable' (noted by the deployment), as is a run without a genes BED."""
    with pytest.raises(AnalysisNotApplicableError, match="gene symbols"):
        accessibility_activity(cohort.ws, cohort.ref, genes=str(cohort.genes_bed))
    with pytest.raises(AnalysisNotApplicableError, match="gene coordinates"):
        accessibility_activity(cohort.ws, cohort.ref)
    with pytest.raises(InputError, match="methods are"):
        accessibility_activity(cohort.ws, cohort.ref, methods=("aucell",))
    analysis = modality("accessibility").analysis("activity")
    assert analysis.result_type == "accessibility.activity"
    assert len(load_gene_sets("builtin")) > 0
    assert isinstance(pd.__version__, str)


def test_activity_command(cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``resistomics accessibility activity DATASET --genes BED --gene-sets GMT``."""
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", cohort.ws.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv(
        "RESISTOMICS_MODALITIES__ACCESSIBILITY__CHROM_SIZES", str(cohort.sim.chrom_sizes)
    )
    monkeypatch.setenv("COLUMNS", "250")
    gmt = _gmt(tmp_path / "one.gmt", {"PLANTED": cohort.sim.planted_genes})
    args = ["accessibility", "activity", cohort.ref, "--genes", str(cohort.genes_bed)]
    r = runner.invoke(app, [*args, "--gene-sets", str(gmt)])
    assert r.exit_code == 0, r.output
    assert "activity.one" in r.output and "PLANTED" in r.output
    r = runner.invoke(app, ["accessibility", "activity", "--help"])
    assert r.exit_code == 0 and "--genes" in r.output and "Example" in r.output
