"""Accessibility ingest end to end: peak matrices (real chromVAR data and generated),
bulk peak tables and narrowPeak sets; every bad input quarantined with one line."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atac_files import (
    PEAK_DEFECTS,
    break_peaks,
    peaks_of,
    write_narrowpeak,
    write_peak_matrix,
    write_peak_table,
)
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_sparse_matrix, read_table
from shared_data import SHARED_DATA

STUDY = "atac"
SAMPLES = ("S1", "S2", "S3")
CHROMVAR = SHARED_DATA / "atac_chromvar_example"


def _register(ws: Workspace, samples: tuple[str, ...] = SAMPLES) -> None:
    ws.catalog.register_study(STUDY, [SampleRow(sample_id=s, subject_id=s) for s in samples])


def _land(ws: Workspace, src: Path, name: str | None = None) -> str:
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / (name or src.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy(src, target)
    return str(target)


def _matrix(n_cells: int, n_peaks: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).poisson(0.6, (n_cells, n_peaks)).astype(np.float64)


def _barcodes(n: int) -> list[str]:
    return [f"AAACGAA{i:05d}-1" for i in range(n)]


# -- real data ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromvar(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, str]:
    """The chromVAR GM12878/H1 peak matrix ingested once, cells mapped to samples GM and
    H1 by a barcode table (``--barcode-samples``)."""
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
    landed = _land(ws, CHROMVAR, "filtered_peak_bc_matrix")
    out = ingest(ws, landed, study=STUDY, options={"barcode_samples": str(table)})
    assert out.status == "published", out.message
    assert out.version is not None
    return ws, out.version.ref


def test_chromvar_peaks_called_in_a_cell_type_are_more_open_in_it(
    chromvar: tuple[Workspace, str],
) -> None:
    """Known biology (../shared/data/README.md): of the peaks called in GM12878, 74 % have
    a higher mean depth-normalised count in GM12878 cells; of H1's peaks, 90 % in H1.
    Computed from the stored matrix (peak-major copy), depth = a cell's counts in peaks."""
    ws, ref = chromvar
    version = ws.catalog.resolve(ref)
    assert version.dataset_type == "accessibility.counts"
    store = open_sparse_matrix(ws.root, ws.root.to_path(version.uri))
    assert store.shape == (50, 29269)
    x = store.genes().compute().toarray()
    depth = store.obs["total_counts"].to_numpy()
    normalised = x / depth[:, None]
    gm = store.obs["sample_id"].astype(str).to_numpy() == "GM"
    higher_in_gm = normalised[gm].mean(axis=0) > normalised[~gm].mean(axis=0)
    called_in_gm = store.var["name"].astype(str).str.startswith("GM_peak").to_numpy()
    assert called_in_gm.sum() > 0 and (~called_in_gm).sum() > 0
    assert higher_in_gm[called_in_gm].mean() == pytest.approx(0.74, abs=0.01)
    lower_in_gm = normalised[gm].mean(axis=0) < normalised[~gm].mean(axis=0)
    assert lower_in_gm[~called_in_gm].mean() == pytest.approx(0.90, abs=0.01)
    # the store holds exactly the file's counts: 113,572 entries, the peak table in order
    assert int(x.astype(bool).sum()) == 113_572
    bed = pd.read_csv(CHROMVAR / "peaks.bed", sep="\t", header=None)
    peaks = read_table(ws.root, f"{ws.root.to_path(version.uri)}/peaks.parquet")
    assert peaks["start"].tolist() == bed[1].tolist() and peaks["name"].tolist() == bed[3].tolist()
    assert peaks["peak_id"].iloc[0] == f"{bed[0][0]}:{bed[1][0]}-{bed[2][0]}"
    assert validate_version(ws, version).success


# -- generated peak matrices -----------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_peak_matrix_round_trips_in_both_orientations(
    workspace: Workspace, tmp_path: Path, gz: bool
) -> None:
    _register(workspace)
    x, peaks, barcodes = _matrix(40, 30, seed=1), peaks_of(30), _barcodes(40)
    samples = [SAMPLES[i % 3] for i in range(40)]
    src = write_peak_matrix(tmp_path / "m", x, peaks, barcodes, samples, gz=gz)

    out = ingest(workspace, _land(workspace, src), study=STUDY)

    assert out.status == "published", out.message
    store = open_sparse_matrix(workspace.root, workspace.root.to_path(out.version.uri))
    np.testing.assert_array_equal(store.cells().compute().toarray(), x)
    np.testing.assert_array_equal(store.genes().compute().toarray(), x)
    assert list(store.obs.index) == barcodes and list(store.obs["sample_id"]) == samples
    assert list(store.var.index) == [f"{c}:{s}-{e}" for c, s, e in peaks]
    assert store.var[["contig", "start", "end"]].to_records(index=False).tolist() == peaks


def test_one_sample_per_directory_by_option(workspace: Workspace, tmp_path: Path) -> None:
    _register(workspace)
    src = write_peak_matrix(tmp_path / "m", _matrix(10, 8, 2), peaks_of(8), _barcodes(10), None)
    landed = _land(workspace, src)
    out = ingest(workspace, landed, study=STUDY, options={"sample": "S2"})
    assert out.status == "published", out.message
    store = open_sparse_matrix(workspace.root, workspace.root.to_path(out.version.uri))
    assert set(store.obs["sample_id"]) == {"S2"}


def _peak_matrix_defect(src: Path, defect: str) -> tuple[Path, str, str]:
    """A peak-matrix folder with ``defect``: (path, rule, file and place the message names)."""
    x, peaks, barcodes = _matrix(12, 10, seed=3), peaks_of(10), _barcodes(12)
    samples = [SAMPLES[i % 3] for i in range(12)]
    if defect in PEAK_DEFECTS:
        path = write_peak_matrix(src / defect, x, break_peaks(peaks, defect), barcodes, samples)
        return path, PEAK_DEFECTS[defect], "/peaks.bed (line 3)"
    if defect == "unregistered-sample":
        samples[4] = "S9"
        return (
            write_peak_matrix(src / defect, x, peaks, barcodes, samples),
            "registered-samples",
            "sample 'S9'",
        )
    path = write_peak_matrix(src / defect, x, peaks, barcodes, samples)
    matrix = path / "matrix.mtx.gz"
    if defect == "truncated-gzip":
        big = write_peak_matrix(
            src / "big",
            _matrix(400, 300, 4),
            peaks_of(300),
            _barcodes(400),
            [SAMPLES[i % 3] for i in range(400)],
        )
        shutil.rmtree(path)
        big.rename(path)
        data = (path / "matrix.mtx.gz").read_bytes()
        (path / "matrix.mtx.gz").write_bytes(data[: len(data) // 2])
        return path, "gzip-integrity", "/matrix.mtx.gz (line "
    if defect == "field-count":
        lines = gzip.decompress(matrix.read_bytes()).decode().splitlines()
        lines[5] = lines[5].rsplit(" ", 1)[0]
        matrix.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        return path, "field-count", "/matrix.mtx.gz (line 6)"
    if defect == "peaks-short":
        bed = path / "peaks.bed"
        bed.write_text("".join(bed.read_text().splitlines(keepends=True)[:-1]))
        return path, "dimensions", "/matrix.mtx.gz"
    raise AssertionError(defect)


MATRIX_DEFECTS = [
    *PEAK_DEFECTS,
    "unregistered-sample",
    "truncated-gzip",
    "field-count",
    "peaks-short",
]


@pytest.mark.parametrize("defect", MATRIX_DEFECTS)
def test_bad_peak_matrix_is_quarantined_with_one_line(
    workspace: Workspace, tmp_path: Path, defect: str
) -> None:
    _register(workspace)
    good = write_peak_matrix(
        tmp_path / "good",
        _matrix(12, 10, 5),
        peaks_of(10),
        _barcodes(12),
        [SAMPLES[i % 3] for i in range(12)],
    )
    first = ingest(workspace, _land(workspace, good, "cohort"), study=STUDY, dataset="cohort")
    assert first.status == "published", first.message
    before = workspace.catalog.snapshot()
    path, rule, place = _peak_matrix_defect(tmp_path / "bad", defect)
    landed = _land(workspace, path, "cohort2")

    out = ingest(workspace, landed, study=STUDY, dataset="cohort")

    assert out.status == "quarantined", out.message
    assert "\n" not in out.message
    assert landed in out.message and f"[{rule}]" in out.message and place in out.message, (
        out.message
    )
    assert out.report["stage"] == "read"
    assert workspace.catalog.snapshot() == before
    assert not Path(landed).exists() and out.quarantine_uri is not None


def test_negative_count_reads_but_fails_validation(workspace: Workspace, tmp_path: Path) -> None:
    _register(workspace)
    x = _matrix(12, 10, 6)
    x[3, 4] = -2
    src = write_peak_matrix(
        tmp_path / "m", x, peaks_of(10), _barcodes(12), [SAMPLES[i % 3] for i in range(12)]
    )
    out = ingest(workspace, _land(workspace, src), study=STUDY)
    assert out.status == "quarantined", out.message
    assert "[validation]" in out.message and "non-negative-counts" in out.message
    assert f"{_barcodes(12)[3]}/chr1:" in out.message  # the cell and peak


def test_counts_in_peaks_bound_is_configurable(tmp_path: Path) -> None:
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={"accessibility": {"min_counts_in_peaks": 5}},
    )
    ws = Workspace.open(settings)
    try:
        _register(ws)
        x = _matrix(12, 10, 7) + 1
        x[5] = 0
        x[5, 0] = 2  # one barcode with 2 counts in peaks
        barcodes = _barcodes(12)
        src = write_peak_matrix(
            tmp_path / "m", x, peaks_of(10), barcodes, [SAMPLES[i % 3] for i in range(12)]
        )
        out = ingest(ws, _land(ws, src), study=STUDY)
        assert out.status == "quarantined", out.message
        assert "counts-in-peaks" in out.message and barcodes[5] in out.message
    finally:
        ws.close()


def test_peak_beyond_the_contig_is_refused_with_a_chrom_sizes_file(tmp_path: Path) -> None:
    sizes = tmp_path / "hg.chrom.sizes"
    sizes.write_text("chr1\t20000\nchr2\t1000000\n")
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={"accessibility": {"chrom_sizes": str(sizes)}},
    )
    ws = Workspace.open(settings)
    try:
        _register(ws)
        src = write_peak_matrix(
            tmp_path / "m", _matrix(6, 12, 8), peaks_of(12), _barcodes(6), ["S1"] * 6
        )
        out = ingest(ws, _land(ws, src), study=STUDY)
        assert out.status == "quarantined"
        # chr1's sixth peak (line 6) ends at 20,500 > 20,000
        assert "[within-contig]" in out.message and "peaks.bed (line 6)" in out.message, out.message
    finally:
        ws.close()


# -- bulk peak tables ---------------------------------------------------------------------------


@pytest.mark.parametrize("featurecounts", [False, True], ids=["bed", "featurecounts"])
@pytest.mark.parametrize("suffix", ["tsv", "tsv.gz"])
def test_bulk_peak_table_round_trips(
    workspace: Workspace, tmp_path: Path, featurecounts: bool, suffix: str
) -> None:
    _register(workspace)
    peaks = peaks_of(40)
    values = np.random.default_rng(9).poisson(30, (40, 3))
    src = write_peak_table(
        tmp_path / f"peaks.{suffix}", peaks, SAMPLES, values, featurecounts=featurecounts
    )

    out = ingest(workspace, _land(workspace, src), study=STUDY, fmt="peak-table")

    assert out.status == "published", out.message
    assert out.version.dataset_type == "accessibility.counts"
    store = open_sparse_matrix(workspace.root, workspace.root.to_path(out.version.uri))
    assert list(store.obs.index) == list(SAMPLES)
    np.testing.assert_array_equal(store.cells().compute().toarray(), values.T)
    # featureCounts' SAF coordinates (1-based, inclusive) are stored as BED ones
    assert store.var[["contig", "start", "end"]].to_records(index=False).tolist() == peaks
    assert list(store.var["name"]) == [f"peak{i}" for i in range(40)]


def _table_defect(src: Path, defect: str) -> tuple[Path, str, str]:
    peaks, samples = peaks_of(20), list(SAMPLES)
    values = np.random.default_rng(10).poisson(30, (20, 3))
    path = src / f"{defect}.tsv"
    if defect in PEAK_DEFECTS:
        write_peak_table(path, break_peaks(peaks, defect), samples, values)
        return path, PEAK_DEFECTS[defect], "(line 4)"  # header, then the third peak
    if defect == "unregistered-sample":
        samples[1] = "S9"
        write_peak_table(path, peaks, samples, values)
        return path, "registered-samples", "column 'S9'"
    if defect == "field-count":
        write_peak_table(path, peaks, samples, values)
        lines = path.read_text().splitlines()
        lines[7] = lines[7].rsplit("\t", 1)[0]
        path.write_text("\n".join(lines) + "\n")
        return path, "field-count", "(line 8)"
    if defect == "truncated-gzip":
        path = src / "truncated.tsv.gz"
        write_peak_table(
            path, peaks_of(4000), samples, np.random.default_rng(1).poisson(30, (4000, 3))
        )
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path, "gzip-integrity", "(line "
    raise AssertionError(defect)


TABLE_DEFECTS = [*PEAK_DEFECTS, "unregistered-sample", "field-count", "truncated-gzip"]


@pytest.mark.parametrize("defect", TABLE_DEFECTS)
def test_bad_peak_table_is_quarantined_with_one_line(
    workspace: Workspace, tmp_path: Path, defect: str
) -> None:
    _register(workspace)
    before = workspace.catalog.snapshot()
    path, rule, place = _table_defect(tmp_path, defect)
    landed = _land(workspace, path)
    out = ingest(workspace, landed, study=STUDY, fmt="peak-table")
    assert out.status == "quarantined", out.message
    assert "\n" not in out.message
    assert landed in out.message and f"[{rule}]" in out.message and place in out.message, (
        out.message
    )
    assert workspace.catalog.snapshot() == before


# -- narrowPeak peak sets ----------------------------------------------------------------------


def test_narrowpeak_is_stored_as_a_peak_set(workspace: Workspace, tmp_path: Path) -> None:
    _register(workspace)
    peaks = peaks_of(25, contigs=("chr2", "chr1"))
    src = write_narrowpeak(tmp_path / "sample_peaks.narrowPeak", peaks)
    out = ingest(workspace, _land(workspace, src), study=STUDY)
    assert out.status == "published", out.message
    assert out.version.dataset_type == "accessibility.peaks"
    assert validate_version(workspace, out.version).success
    from resistomics.storage import layout

    spec = layout("partitioned-table@1")
    assert spec.read_table is not None
    table = spec.read_table(workspace.root, workspace.root.to_path(out.version.uri), "peaks")
    got = sorted(zip(table["contig"].astype(str), table["start"], table["end"], strict=True))
    assert got == sorted(peaks)
    assert set(table.columns) >= {"peak_id", "name", "signal_value", "p_value", "q_value", "summit"}


@pytest.mark.parametrize("defect", list(PEAK_DEFECTS))
def test_bad_narrowpeak_is_quarantined(workspace: Workspace, tmp_path: Path, defect: str) -> None:
    _register(workspace)
    before = workspace.catalog.snapshot()
    src = write_narrowpeak(tmp_path / "x_peaks.narrowPeak", break_peaks(peaks_of(10), defect))
    landed = _land(workspace, src)
    out = ingest(workspace, landed, study=STUDY)
    assert out.status == "quarantined"
    assert f"[{PEAK_DEFECTS[defect]}]" in out.message and "(line 3)" in out.message, out.message
    assert workspace.catalog.snapshot() == before
