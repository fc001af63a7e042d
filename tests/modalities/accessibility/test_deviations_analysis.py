"""The ``deviations`` analysis end to end: chromVAR's GM12878 / H1 example (the two
cell types separate on their own peak sets), a generated cohort whose planted program
opens in persisters and expands at progression (found through the built-in programs
and a genes BED), GC matching with a generated FASTA, and the missing-input errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from atac_cohort import Cohort, ingest_cohort
from atac_files import peaks_of, write_peak_matrix
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import AnalysisNotApplicableError, InputError, MethodInputError
from resistomics.knowledge import load_gene_sets
from resistomics.modalities import modality
from resistomics.modalities.accessibility._chromvar import (
    GC_MATCHED,
    GC_NOT_MATCHED,
    background_peaks,
)
from resistomics.modalities.accessibility._deviations_analysis import (
    accessibility_deviations,
    deviations_artifacts,
    plot_deviations_heatmap,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.publishing import result_table
from shared_data import SHARED_DATA

CHROMVAR = SHARED_DATA / "atac_chromvar_example"
STUDY = "atac"


def _auc(high: np.ndarray, low: np.ndarray) -> float:
    """P(a value of ``high`` > one of ``low``): Mann-Whitney U / (n1 n2)."""
    u = stats.mannwhitneyu(high, low, alternative="two-sided").statistic
    return float(u / (len(high) * len(low)))


# -- real data: chromVAR's example ---------------------------------------------------------


@pytest.fixture(scope="module")
def chromvar(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str, Path]:
    """The GM12878 / H1 peak matrix ingested (cells mapped to samples GM and H1) and a
    BED of its peaks named by the cell type whose calls produced them."""
    if not CHROMVAR.exists():
        pytest.skip(f"shared data not found at {CHROMVAR}")
    base = tmp_path_factory.mktemp("chromvar")
    ws = Workspace.open(
        Settings(
            data_root=str(base / "root"), cluster=ClusterSettings(n_workers=1, processes=False)
        )
    )
    ws.catalog.register_study(
        STUDY,
        [SampleRow(sample_id="GM", subject_id="GM"), SampleRow(sample_id="H1", subject_id="H1")],
    )
    cells = pd.read_csv(CHROMVAR / "cells.tsv", sep="\t")
    table = base / "barcodes.tsv"
    table.write_text(
        "barcode\tsample_id\n"
        + "".join(f"{b}\t{t}\n" for b, t in zip(cells.barcode, cells.Cell_Type, strict=True))
    )
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / "peaks"
    target.parent.mkdir(parents=True)
    shutil.copytree(CHROMVAR, target)
    out = ingest(ws, str(target), study=STUDY, options={"barcode_samples": str(table)})
    assert out.status == "published" and out.version is not None, out.message
    bed = pd.read_csv(CHROMVAR / "peaks.bed", sep="\t", header=None)
    bed[3] = bed[3].str.split("_").str[0]  # GM_peak_6 -> GM
    sets = base / "cell_type_peaks.bed"
    bed.to_csv(sets, sep="\t", header=False, index=False)
    yield ws, out.version.ref, sets
    ws.close()


def test_gm12878_and_h1_separate_on_their_peak_sets(
    chromvar: tuple[Workspace, str, Path], tmp_path: Path
) -> None:
    """Known biology: the peaks called in GM12878 are more open in GM12878 cells (and
    H1's in H1), so each set's z separates the cell types (AUC > 0.95; chromVAR's own
    vignette separates them on these sets), with the sign of the cell type; both sets
    vary across cells far beyond chance (BH < 1e-6), CI around the sd."""
    ws, ref, sets = chromvar
    out = accessibility_deviations(ws, ref, sets=str(sets), bootstrap_samples=300)
    assert out.status == "published", out.message
    cells = out.tables["cells"]
    assert len(cells) == 50 * 2 and set(cells["set"]) == {"GM", "H1"}
    for name in ("GM", "H1"):
        z = cells[cells["set"] == name]
        own = z.loc[z["sample_id"] == name, "z"].to_numpy()
        other = z.loc[z["sample_id"] != name, "z"].to_numpy()
        assert len(own) == 25 and len(other) == 25
        assert _auc(own, other) > 0.95, name
        assert own.mean() > 0 > other.mean()
    var = out.tables["variability"].set_index("set")
    assert (var["p_adj"] < 1e-6).all()
    assert (var["bootstrap_lower_bound"] < var["variability"]).all()
    assert (var["variability"] < var["bootstrap_upper_bound"]).all()
    assert var["n_peaks"].sum() == 29_269 - out.version.parameters["n_peaks_without_counts"]
    assert (var["note"] == GC_NOT_MATCHED).all()
    samples = out.tables["samples"].set_index(["sample_id", "set"])
    assert samples.loc[("GM", "GM"), "mean_z"] > samples.loc[("H1", "GM"), "mean_z"]
    assert samples.loc[("H1", "H1"), "mean_z"] > samples.loc[("GM", "H1"), "mean_z"]
    assert samples["n_cells"].eq(25).all() and "subject_id" in samples.columns
    # no FASTA: the parameters and the summary artifact say GC was not matched
    params = out.version.parameters
    assert params["gc_matched"] is False and params["background"] == GC_NOT_MATCHED
    arts = {a.key_parts[-1]: a for a in deviations_artifacts(ws, out.version)}
    assert "GC not matched" in (arts["summary"].markdown or "")
    assert arts["variable-sets"].table is not None and len(arts["variable-sets"].table) == 2
    png = plot_deviations_heatmap(ws, out.version, tmp_path / "z.png")
    assert Path(png).stat().st_size > 1000
    # the same call again is the same result
    again = accessibility_deviations(ws, ref, sets=str(sets), bootstrap_samples=300)
    assert again.status == "unchanged"


def test_builtin_sets_without_gene_coordinates_are_not_applicable(
    chromvar: tuple[Workspace, str, Path],
) -> None:
    ws, ref, _ = chromvar
    with pytest.raises(AnalysisNotApplicableError, match="gene coordinates"):
        accessibility_deviations(ws, ref)
    analysis = modality("accessibility").analysis("deviations")
    assert analysis.default and analysis.result_type == "accessibility.deviations"


def test_bad_set_inputs_are_one_line_errors(
    chromvar: tuple[Workspace, str, Path], tmp_path: Path
) -> None:
    ws, ref, _ = chromvar
    unnamed = tmp_path / "unnamed.bed"
    unnamed.write_text("chr1\t713932\t714432\n")
    with pytest.raises(InputError, match="name column"):
        accessibility_deviations(ws, ref, sets=str(unnamed))
    elsewhere = tmp_path / "elsewhere.bed"
    elsewhere.write_text("chr22\t10\t20\tA\n")
    with pytest.raises(AnalysisNotApplicableError, match="no peak set overlaps"):
        accessibility_deviations(ws, ref, sets=str(elsewhere))
    backwards = tmp_path / "backwards.bed"
    backwards.write_text("chr1\t713932\t714432\tA\nchr1\t900\t800\tB\n")
    with pytest.raises(InputError) as err:
        accessibility_deviations(ws, ref, sets=str(backwards))
    assert err.value.location.line == 2 and err.value.rule == "peak-interval"
    one = tmp_path / "one.bed"
    one.write_text("chr1\t713932\t714432\tA\n")
    result = accessibility_deviations(ws, ref, sets=str(one), bootstrap_samples=0)
    with pytest.raises(MethodInputError, match=r"not accessibility\.counts"):
        accessibility_deviations(ws, result.version.ref, sets=str(one))


# -- planted: a persister program opening at progression -----------------------------------

PROGRAM = "DRUG_TOLERANT_PERSISTER"
NULL_PROGRAM = "EMT_MESENCHYMAL"


def program_renames() -> dict[str, str]:
    """Planted genes GENE0001-14 -> the persister program's genes; GENE0101-0118 (chr2,
    not planted) -> the EMT program's genes (a null program)."""
    programs = load_gene_sets("builtin").as_mapping()
    persister = list(programs[PROGRAM])
    emt = [g for g in programs[NULL_PROGRAM] if g not in persister]
    renames = {f"GENE{i + 1:04d}": g for i, g in enumerate(persister)}
    renames |= {f"GENE{101 + i:04d}": g for i, g in enumerate(emt)}
    return renames


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    c = ingest_cohort(
        tmp_path_factory.mktemp("cohort"),
        rename=program_renames(),
        n_subjects=3,
        cells_per_sample=60,
        n_planted_genes=len(load_gene_sets("builtin").as_mapping()[PROGRAM]),
        seed=7,
    )
    yield c
    c.ws.close()


def test_planted_program_is_high_in_persisters_and_rises_at_progression(
    cohort: Cohort, tmp_path: Path
) -> None:
    """Built-in programs through the genes BED: the persister program's peaks (body +
    promoter of its genes, all planted) have z far higher in persister cells than in the
    others (AUC > 0.9); its per-sample mean z rises from baseline to progression in
    every subject, more than the null program's."""
    out = accessibility_deviations(
        cohort.ws, cohort.ref, genes=str(cohort.genes_bed), bootstrap_samples=200
    )
    assert out.status == "published", out.message
    sets = out.tables["sets"].set_index("set")
    assert sets.loc[PROGRAM, "n_genes_located"] == sets.loc[PROGRAM, "n_genes"]
    assert sets.loc[PROGRAM, "n_peaks"] == 2 * sets.loc[PROGRAM, "n_genes"]
    assert not sets.loc["ANTIGEN_PRESENTATION", "scored"]  # none of its genes in the BED
    truth = cohort.sim.cells.set_index("barcode")["persister"]
    cells = out.tables["cells"]
    z = cells[cells["set"] == PROGRAM].set_index("cell_id")["z"]
    persister = truth.reindex(z.index).to_numpy(dtype=bool)
    assert persister.sum() >= 20
    assert _auc(z[persister].to_numpy(), z[~persister].to_numpy()) > 0.9
    samples = out.tables["samples"]
    wide = samples.pivot_table(index=["subject_id", "set"], columns="phase", values="mean_z")
    rise = (wide["progression"] - wide["baseline"]).unstack("set")
    assert (rise[PROGRAM] > 1.0).all()
    assert (rise[PROGRAM] > rise[NULL_PROGRAM] + 1.0).all()
    var = out.tables["variability"].set_index("set")
    assert var.loc[PROGRAM, "variability"] > var.loc[NULL_PROGRAM, "variability"]
    assert var.loc[PROGRAM, "p_adj"] < 1e-6
    assert out.version.parameters["genes"] == str(cohort.genes_bed)
    png = plot_deviations_heatmap(cohort.ws, out.version, tmp_path / "heat.png", top=5)
    assert Path(png).exists()


# -- GC matching ---------------------------------------------------------------------------


def _fasta(path: Path, peaks: list[tuple[str, int, int]], gc: np.ndarray, seed: int) -> Path:
    """A genome of chr1/chr2 whose peak sequences have the given GC fractions (AT
    elsewhere and between peaks), indexed by pysam.faidx."""
    import pysam

    rng = np.random.default_rng(seed)
    length = max(e for _, _, e in peaks) + 5_000
    seqs = {c: np.array(list("AT" * (length // 2)), dtype="<U1") for c in ("chr1", "chr2")}
    for (c, s, e), g in zip(peaks, gc, strict=True):
        n = e - s
        is_gc = rng.random(n) < g
        seqs[c][s:e] = np.where(is_gc, rng.choice(["G", "C"], n), rng.choice(["A", "T"], n))
    with path.open("w") as f:
        for c, seq in seqs.items():
            text = "".join(seq.tolist())
            f.write(f">{c}\n" + "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n")
    pysam.faidx(str(path))
    return path


def test_background_peaks_match_gc_with_a_fasta(tmp_path: Path) -> None:
    """Peaks of GC 0.3-0.75 (independent of their accessibility): with the FASTA, each
    peak's background peaks have about its GC (mean |difference| < 0.03, correlation >
    0.9), recorded in the parameters and the note; matched on accessibility only, the
    backgrounds differ from their peaks' GC at least twice as much."""
    rng = np.random.default_rng(3)
    n_peaks, n_cells = 400, 80
    peaks = peaks_of(n_peaks)
    gc = rng.uniform(0.3, 0.75, n_peaks)
    rate = np.exp(rng.normal(-1.0, 0.5, n_peaks))
    x = rng.poisson(rate[None, :] * 2.0, (n_cells, n_peaks)).astype(np.float64)
    x[0, x.sum(axis=0) == 0] = 1.0
    fasta = _fasta(tmp_path / "genome.fa", peaks, gc, seed=4)
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"), cluster=ClusterSettings(n_workers=1, processes=False)
        )
    )
    try:
        ws.catalog.register_study(STUDY, [SampleRow(sample_id="S1", subject_id="S1")])
        src = write_peak_matrix(
            Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / "m",
            x,
            peaks,
            [f"AAAC{i:05d}-1" for i in range(n_cells)],
            ["S1"] * n_cells,
        )
        out = ingest(ws, str(src), study=STUDY)
        assert out.status == "published" and out.version is not None
        sets = tmp_path / "sets.bed"
        sets.write_text("".join(f"{c}\t{s}\t{e}\tA\n" for c, s, e in peaks[:40]))
        res = accessibility_deviations(
            ws, out.version.ref, sets=str(sets), fasta=str(fasta), bootstrap_samples=0
        )
        assert res.version.parameters["gc_matched"] is True
        assert res.version.parameters["background"] == GC_MATCHED
        assert (res.tables["variability"]["note"] == GC_MATCHED).all()
        table = res.tables["peaks"]
        measured = table["gc"].to_numpy()
        assert np.abs(measured - gc).max() < 0.1  # read back from the FASTA
        matched = np.abs(table["background_mean_gc"] - measured).mean()
        assert matched < 0.03
        assert np.corrcoef(table["background_mean_gc"], measured)[0, 1] > 0.9
        unmatched = background_peaks(sp.csr_matrix(x.T), gc=None, n_iterations=50, seed=0)
        off = np.abs(measured[unmatched.indices].mean(axis=1) - measured).mean()
        assert off > 2 * matched
        stored = result_table(ws, res.version, "peaks")
        assert stored["background_mean_gc"].notna().all()
        # a FASTA without the peaks' contig is a one-line error naming it
        other = tmp_path / "other.fa"
        other.write_text(">chrZ\nACGT\n")
        with pytest.raises(InputError, match="does not have"):
            accessibility_deviations(ws, out.version.ref, sets=str(sets), fasta=str(other))
    finally:
        ws.close()


# -- the command ---------------------------------------------------------------------------


def test_deviations_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``resistomics accessibility deviations DATASET --sets BED``: publishes, prints the
    background note and the variable sets; --help shows the examples; builtin without
    genes is one line and a non-zero exit."""
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("COLUMNS", "250")
    assert runner.invoke(app, ["init"]).exit_code == 0
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tsubject_id\nS1\tP1\nS2\tP2\n")
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", "st"]).exit_code == 0
    rng = np.random.default_rng(2)
    x = rng.poisson(1.0, (30, 60)).astype(float)
    x[:15, :10] += rng.poisson(4.0, (15, 10))  # S1's cells open the first 10 peaks
    peaks = peaks_of(60)
    src = write_peak_matrix(
        tmp_path / "m", x, peaks, [f"BC{i}-1" for i in range(30)], ["S1"] * 15 + ["S2"] * 15
    )
    r = runner.invoke(app, ["ingest", str(src), "--study", "st", "--modality", "accessibility"])
    assert r.exit_code == 0, r.output
    bed = tmp_path / "sets.bed"
    bed.write_text(
        "".join(
            f"{c}\t{s}\t{e}\t{'OPEN' if i < 10 else 'REST'}\n" for i, (c, s, e) in enumerate(peaks)
        )
    )
    r = runner.invoke(app, ["accessibility", "deviations", "st/m", "--sets", str(bed)])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "published st/m.deviations.sets@v1" in text and "GC not matched" in text
    assert "OPEN" in text
    r = runner.invoke(app, ["accessibility", "deviations", "st/m"])
    assert r.exit_code != 0 and "gene coordinates" in " ".join(r.output.split())
    r = runner.invoke(app, ["accessibility", "deviations", "--help"])
    assert r.exit_code == 0 and "--fasta" in r.output and "Examples" in r.output
