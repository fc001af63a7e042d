"""Cell Ranger ATAC / ARC ``.h5`` peak matrices: ingested equal to the matrix written
(ARC: its Peaks only), and every bad file refused with one line naming the file and the
rule, quarantined, the catalog unchanged."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from atac_files import peaks_of, write_peak_h5
from resistomics.catalog import SampleRow
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import open_sparse_matrix

STUDY = "h5"
BARCODES = [f"AAAC{i:04d}-1" for i in range(30)]


def _register(ws: Workspace) -> None:
    ws.catalog.register_study(STUDY, [SampleRow(sample_id="S1", subject_id="P1")])


def _land(ws: Workspace, src: Path) -> str:
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, target)
    return str(target)


@pytest.mark.parametrize("arc", [False, True], ids=["atac", "arc"])
def test_h5_peak_matrix_ingests_equal_to_the_matrix(
    workspace: Workspace, tmp_path: Path, arc: bool
) -> None:
    _register(workspace)
    rng = np.random.default_rng(7)
    x = rng.poisson(0.8, (30, 12)).astype(float)
    genes = [f"GENE{i}" for i in range(5)] if arc else []
    src = write_peak_h5(
        tmp_path / "filtered_peak_bc_matrix.h5",
        x,
        peaks_of(12),
        BARCODES,
        genes=genes,
        gene_counts=rng.poisson(3.0, (30, 5)) if arc else None,
        version=2 if arc else 1,
    )
    out = ingest(workspace, _land(workspace, src), study=STUDY, options={"sample": "S1"})
    assert out.status == "published", out.message
    assert out.version.dataset_type == "accessibility.counts"
    assert out.version.parameters["format"] == "peak-h5"
    store = open_sparse_matrix(workspace.root, workspace.root.to_path(out.version.uri))
    assert list(store.obs.index) == BARCODES
    assert list(store.var.index) == [f"{c}:{s}-{e}" for c, s, e in peaks_of(12)]
    np.testing.assert_array_equal(store.cells().compute().toarray(), x)
    np.testing.assert_array_equal(store.genes().compute().toarray(), x)


def _not_hdf5(p: Path) -> None:
    p.write_bytes(b"chr1\t100\t200\tAAAC-1\t1\n" * 10)


def _drop(name: str) -> Callable[[Path], None]:
    def edit(p: Path) -> None:
        with h5py.File(p, "a") as f:
            del f[f"matrix/{name}"]

    return edit


def _shape(p: Path) -> None:
    with h5py.File(p, "a") as f:
        f["matrix/shape"][...] = np.array([12, 31], dtype=np.int32)


def _bad_id(p: Path) -> None:
    with h5py.File(p, "a") as f:
        ids = f["matrix/features/id"][()]
        ids[2] = b"chr1_10000_10500"
        del f["matrix/features/id"]
        f["matrix/features/id"] = ids


def _no_peaks(p: Path) -> None:
    with h5py.File(p, "a") as f:
        n = f["matrix/features/feature_type"].shape[0]
        del f["matrix/features/feature_type"]
        f["matrix/features/feature_type"] = np.array([b"Gene Expression"] * n)


def _index_beyond(p: Path) -> None:
    with h5py.File(p, "a") as f:
        f["matrix/indices"][0] = 99


DEFECTS: dict[str, tuple[Callable[[Path], None], str, str]] = {
    "not-hdf5": (_not_hdf5, "hdf5", "not a readable HDF5 file"),
    "missing-data": (_drop("data"), "10x-h5-layout", "/matrix/data is missing"),
    "missing-barcodes": (_drop("barcodes"), "10x-h5-layout", "/matrix/barcodes is missing"),
    "shape-mismatch": (_shape, "dimensions", "/matrix/shape [12, 31]"),
    "bad-peak-id": (_bad_id, "peak-id", "chr1_10000_10500"),
    "no-peaks": (_no_peaks, "10x-features", "no 'Peaks'"),
    "index-beyond-shape": (_index_beyond, "dimensions", "/matrix/indices holds 99"),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_bad_h5_is_one_line_quarantined_catalog_unchanged(
    workspace: Workspace, tmp_path: Path, defect: str
) -> None:
    _register(workspace)
    x = np.random.default_rng(8).poisson(1.0, (30, 12)).astype(float)
    src = write_peak_h5(tmp_path / "S1.h5", x, peaks_of(12), BARCODES)
    edit, rule, place = DEFECTS[defect]
    edit(src)
    before = workspace.catalog.snapshot()
    out = ingest(
        workspace,
        _land(workspace, src),
        study=STUDY,
        fmt="peak-h5",
        options={"sample": "S1"},
    )
    assert out.status == "quarantined", out.message
    assert "\n" not in out.message
    assert f"[{rule}]" in out.message and place in out.message, out.message
    assert "S1.h5" in out.message
    assert workspace.catalog.snapshot() == before
