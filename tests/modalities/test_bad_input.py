"""Every expression reader against bad input, end to end through ``ingest``.

For each reader (bulk TSV, bulk CSV, gzip TSV, 10x Matrix Market directory, h5ad) and
each defect that applies to it, the landed file must be quarantined with its report, the
one-line message must name the file, the rule and the place, and nothing published
before may change: a good dataset is published first, and every bad file is ingested
into *the same dataset*, so a leak into the published state would show.
"""

from __future__ import annotations

import gzip
import json
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from resistomics.catalog import SampleRow
from resistomics.errors import InputError, MethodInputError
from resistomics.modalities.expression import differential_expression
from resistomics.pipeline import ingest, parse_contrast
from resistomics.storage import open_sparse_matrix

STUDY = "st"
DATASET = "cohort"
SAMPLES = ("S1", "S2", "S3", "S4")
TREATMENT = {"S1": "A", "S2": "A", "S3": "B", "S4": "B"}
BULK_FORMATS = ("tsv", "csv", "tsv.gz")
FORMATS = (*BULK_FORMATS, "mtx", "h5ad")


# -- generated inputs ---------------------------------------------------------------------


def _counts(n_rows: int, n_cols: int, seed: int, lam: float = 20.0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(lam, (n_rows, n_cols)).astype(np.float64)


def _gene_ids(n: int) -> list[str]:
    return [f"ENSG{i:011d}" for i in range(n)]


def _cell_ids(n: int) -> list[str]:
    return [f"CELL{i:04d}-1" for i in range(n)]


def _fmt(v: float) -> str:
    if np.isnan(v):
        return "NA"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def write_table(
    path: Path, genes: list[str], samples: list[str], values: np.ndarray, *, sep: str | None = None
) -> Path:
    """A bulk count table: ``gene_id``, ``gene_name``, one column per sample."""
    sep = sep if sep is not None else ("," if ".csv" in path.name else "\t")
    lines = [sep.join(["gene_id", "gene_name", *samples])]
    lines += [
        sep.join([g, f"SYM{i}", *(_fmt(v) for v in row)])
        for i, (g, row) in enumerate(zip(genes, values, strict=True))
    ]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def write_10x(
    directory: Path,
    x: np.ndarray,
    genes: list[str],
    barcodes: list[str],
    samples: list[str],
    *,
    entry_sep: str = " ",
    feature_sep: str = "\t",
    gz: bool = True,
) -> Path:
    """A Cell Ranger v3 directory: cells x genes ``x`` stored genes x cells in coordinates."""
    directory.mkdir(parents=True)

    def put(name: str, text: str) -> None:
        data = text.encode()
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)

    fs = feature_sep
    put("features.tsv", "".join(f"{g}{fs}SYM{i}{fs}Gene Expression\n" for i, g in enumerate(genes)))
    put("barcodes.tsv", "".join(f"{b}\t{s}\n" for b, s in zip(barcodes, samples, strict=True)))
    gi, ci = np.nonzero(np.nan_to_num(x.T, nan=1.0))
    field = "integer" if np.all(np.floor(x[np.isfinite(x)]) == x[np.isfinite(x)]) else "real"
    lines = [
        f"%%MatrixMarket matrix coordinate {field} general",
        f"{x.shape[1]} {x.shape[0]} {len(gi)}",
    ]
    lines += [
        entry_sep.join((str(g + 1), str(c + 1), _fmt(x[c, g]).replace("NA", "nan")))
        for g, c in zip(gi, ci, strict=True)
    ]
    put("matrix.mtx", "\n".join(lines) + "\n")
    return directory


def write_h5ad(
    path: Path,
    x: np.ndarray,
    genes: list[str],
    cells: list[str],
    samples: list[str],
    *,
    layout: str = "counts",
    encoding: str = "csr",
) -> Path:
    """An h5ad with the matrix in ``layers["counts"]``, ``raw.X`` or ``X``.

    With ``counts`` and ``raw`` the main ``X`` is log-normalised, as scanpy leaves it.
    """
    as_matrix = {
        "csr": lambda m: sp.csr_matrix(m.astype(np.float32)),
        "csc": lambda m: sp.csc_matrix(m.astype(np.float32)),
        "dense": lambda m: m.astype(np.float32),
    }[encoding]
    obs = pd.DataFrame({"sample_id": samples}, index=pd.Index(cells))
    var = pd.DataFrame(
        {"gene_symbol": [f"SYM{i}" for i in range(len(genes))]}, index=pd.Index(genes)
    )
    lognorm = np.log1p(np.nan_to_num(x, nan=0.0).clip(0) / 10.0)
    with warnings.catch_warnings():
        # duplicate obs/var names are what some of these tests are about
        warnings.simplefilter("ignore", UserWarning)
        if layout == "counts":
            a = ad.AnnData(as_matrix(lognorm), obs=obs, var=var, layers={"counts": as_matrix(x)})
        elif layout == "raw":
            a = ad.AnnData(as_matrix(lognorm), obs=obs, var=var)
            a.raw = ad.AnnData(as_matrix(x), obs=obs, var=var)
        else:
            a = ad.AnnData(as_matrix(x), obs=obs, var=var)
        a.write_h5ad(path)
    return path


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# -- the bad inputs -----------------------------------------------------------------------

DEFECTS = {
    "truncated-gzip": ("tsv.gz", "mtx", "h5ad"),
    "wrong-delimiter": ("tsv", "csv", "tsv.gz", "mtx"),
    "wrong-delimiter-features": ("mtx",),
    "negative-count": FORMATS,
    "fractional-count": FORMATS,
    "nan": FORMATS,
    "duplicate-gene-id": FORMATS,
    "duplicate-sample-id": FORMATS,
    "unregistered-sample": FORMATS,
    "empty-file": FORMATS,
}
CASES = [(fmt, defect) for defect, fmts in DEFECTS.items() for fmt in fmts]


@dataclass(frozen=True)
class BadInput:
    path: Path
    rule: str
    place: str  # what the message must point at: a line, a column, a cell/gene


def make_bad_input(src: Path, fmt: str, defect: str) -> BadInput:
    """Write one defective input for ``fmt`` under ``src``."""
    big = defect == "truncated-gzip"  # a cut must land in the data, not the header
    if fmt in BULK_FORMATS:
        genes = _gene_ids(3000 if big else 50)
        columns = list(SAMPLES)
        values = _counts(len(genes), len(columns), seed=7)  # genes x samples
        r, c = 3, 1
        where = f"{columns[c]}/{genes[r]}"
    else:
        genes = _gene_ids(300 if big else 30)
        cells = _cell_ids(400 if big else 40)
        labels = [SAMPLES[i % len(SAMPLES)] for i in range(len(cells))]
        values = _counts(len(cells), len(genes), seed=7, lam=1.5)  # cells x genes
        r, c = 3, 4
        where = f"{cells[r]}/{genes[c]}"
    rule, place = {
        "negative-count": ("non-negative-counts", where),
        "fractional-count": ("integer-counts", where),
        "nan": ("no-nan", where),
        "duplicate-gene-id": ("unique-gene-ids", genes[1]),
        "empty-file": ("not-empty", ""),
    }.get(defect, ("", ""))
    if defect == "negative-count":
        values[r, c] = -5
    elif defect == "fractional-count":
        values[r, c] = 2.5
    elif defect == "nan":
        values[r, c] = np.nan
    elif defect == "duplicate-gene-id":
        genes[7] = genes[1]

    if fmt in BULK_FORMATS:
        path = src / f"{defect}.{fmt}"
        sep = None
        if defect == "duplicate-sample-id":
            columns[3] = columns[1]
            rule, place = "unique-columns", f"line 1, column {columns[1]!r}"
        elif defect == "unregistered-sample":
            columns[2] = "S9"
            rule, place = "registered-samples", "column 'S9'"
        elif defect == "wrong-delimiter":
            sep = "\t" if fmt == "csv" else ","
            rule, place = "delimiter", "line 1"
        if defect == "empty-file":
            # plain files are zero bytes; a .gz is a valid gzip stream of nothing
            path.write_bytes(gzip.compress(b"") if fmt.endswith(".gz") else b"")
            return BadInput(path, rule, place)
        write_table(path, genes, columns, values, sep=sep)
        if defect == "truncated-gzip":
            _truncate(path)
            rule, place = "gzip-integrity", "line "
        return BadInput(path, rule, place)

    if defect == "duplicate-sample-id":
        cells[7] = cells[1]
        rule, place = "unique-cell-ids", cells[1]
    elif defect == "unregistered-sample":
        labels[5] = "S9"
        rule, place = "registered-samples", "sample 'S9'"

    if fmt == "mtx":
        path = src / defect
        sep = "," if defect == "wrong-delimiter" else " "
        fsep = "," if defect == "wrong-delimiter-features" else "\t"
        write_10x(path, values, genes, cells, labels, entry_sep=sep, feature_sep=fsep)
        matrix = path / "matrix.mtx.gz"
        if defect == "wrong-delimiter":
            # banner, size line, then the first entry
            rule, place = "mtx-entries", "/matrix.mtx.gz (line 3)"
        elif defect == "wrong-delimiter-features":
            # read as one column, the IDs would be "ENSG...,SYM0,Gene Expression"
            rule, place = "delimiter", "/features.tsv.gz (line 1)"
        elif defect == "truncated-gzip":
            _truncate(matrix)
            rule, place = "gzip-integrity", "/matrix.mtx.gz (line "
        elif defect == "empty-file":
            matrix.write_bytes(gzip.compress(b""))
            place = "/matrix.mtx.gz: [not-empty]"
        elif defect == "unregistered-sample":
            place = "/barcodes.tsv.gz: [registered-samples] sample 'S9'"
        return BadInput(path, rule, place)

    path = src / f"{defect}.h5ad"
    if defect == "empty-file":
        path.write_bytes(b"")
        return BadInput(path, rule, place)
    write_h5ad(path, values, genes, cells, labels, layout="counts")
    if defect == "truncated-gzip":  # h5ad is not gzip: the HDF5 analogue, a cut file
        _truncate(path)
        rule, place = "h5ad-format", "truncated"
    return BadInput(path, rule, place)


# -- fixtures ------------------------------------------------------------------------------


def _register(ws) -> None:  # type: ignore[no-untyped-def]
    ws.catalog.register_study(
        STUDY,
        [SampleRow(sample_id=s, subject_id=s, treatment=TREATMENT[s]) for s in SAMPLES],
    )


def _published_state(ws) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [v for v in ws.catalog.snapshot() if v[4] in ("published", "superseded")]


def _store_content(ws, ref: str) -> tuple[np.ndarray, list[str], list[str], str]:  # type: ignore[no-untyped-def]
    version = ws.catalog.resolve(ref)
    store = open_sparse_matrix(ws.root, ws.root.to_path(version.uri))
    dense = store.cells().compute().toarray()
    return dense, list(store.obs.index), list(store.var.index), store.value_kind


@pytest.fixture(scope="module")
def published_root(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A data root with one good bulk dataset published as ``st/cohort`` (built once)."""
    from resistomics.config import ClusterSettings, Settings
    from resistomics.pipeline import Workspace

    root = tmp_path_factory.mktemp("published") / "root"
    ws = Workspace.open(
        Settings(data_root=str(root), cluster=ClusterSettings(n_workers=1, processes=False))
    )
    _register(ws)
    landed = Path(ws.settings.resolved_landing_zone) / STUDY / "expression" / "good.tsv"
    landed.parent.mkdir(parents=True)
    write_table(landed, _gene_ids(50), list(SAMPLES), _counts(50, 4, seed=1))
    outcome = ingest(ws, str(landed), study=STUDY, dataset=DATASET)
    assert outcome.status == "published", outcome.message
    ws.close()
    return root


@pytest.fixture
def study(settings, published_root):  # type: ignore[no-untyped-def]
    """A private copy of the published root: cheap, and each test may change it freely."""
    from resistomics.pipeline import Workspace

    shutil.copytree(published_root, settings.data_root)
    ws = Workspace.open(settings)  # URIs are relative to the root: the copy just works
    yield ws
    ws.close()


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "defect"), CASES, ids=[f"{f}-{d}" for f, d in CASES])
def test_bad_input_is_quarantined_and_published_state_is_untouched(
    study, land, tmp_path, fmt, defect
):  # type: ignore[no-untyped-def]
    ws = study
    src = tmp_path / "src"
    src.mkdir()
    bad = make_bad_input(src, fmt, defect)
    before = _published_state(ws)
    content_before = _store_content(ws, f"{STUDY}/{DATASET}")
    landed = land(ws, bad.path, STUDY)

    outcome = ingest(ws, landed, study=STUDY, dataset=DATASET)

    assert outcome.status == "quarantined", outcome.message
    message = outcome.message
    assert "\n" not in message
    assert landed in message, message  # the file (or the file inside the 10x directory)
    assert bad.rule in message, message
    assert bad.place in message, message
    # the landed file moved into quarantine/<study>/<uid>/ next to its report
    quarantine = Path(outcome.quarantine_uri)
    assert quarantine.parent == Path(ws.settings.data_root) / "quarantine" / STUDY
    assert not Path(landed).exists()
    assert (quarantine / Path(landed).name).exists()
    report = json.loads((quarantine / "report.json").read_text())
    assert report["success"] is False
    assert report["file"] == landed
    if report["stage"] == "read":
        assert report["rule"] == bad.rule
    else:
        failing = [e["rule"] for e in report["expectations"] if not e["success"]]
        assert bad.rule in failing
    assert bad.rule in (quarantine / "report.md").read_text()
    # nothing published changed, and the published store still reads the same
    assert _published_state(ws) == before
    assert ws.catalog.resolve(f"{STUDY}/{DATASET}").number == 1
    content_after = _store_content(ws, f"{STUDY}/{DATASET}")
    np.testing.assert_array_equal(content_after[0], content_before[0])
    assert content_after[1:] == content_before[1:]


@pytest.mark.parametrize("fmt", FORMATS)
def test_input_outside_landing_zone_is_refused_and_not_moved(study, tmp_path, fmt):  # type: ignore[no-untyped-def]
    ws = study
    src = tmp_path / "elsewhere"
    src.mkdir()
    path = make_bad_input(src, fmt, "negative-count").path  # content does not matter here
    snapshot = ws.catalog.snapshot()

    with pytest.raises(InputError) as info:
        ingest(ws, str(path), study=STUDY, dataset=DATASET)

    assert info.value.rule == "landing-zone"
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert path.exists()
    assert ws.catalog.snapshot() == snapshot
    assert not (Path(ws.settings.data_root) / "quarantine").exists()


# -- good input ----------------------------------------------------------------------------


def _read_published(outcome, ws) -> ad.AnnData:  # type: ignore[no-untyped-def]
    assert outcome.status == "published", outcome.message
    return ad.read_zarr(f"{ws.root.to_path(outcome.version.uri)}/expression.zarr")


@pytest.mark.parametrize("fmt", BULK_FORMATS)
def test_good_bulk_table_round_trips(workspace, land, tmp_path, fmt):  # type: ignore[no-untyped-def]
    _register(workspace)
    genes, values = _gene_ids(120), _counts(120, 4, seed=3)
    path = write_table(tmp_path / f"counts.{fmt}", genes, list(SAMPLES), values)

    outcome = ingest(workspace, land(workspace, path, STUDY), study=STUDY)

    adata = _read_published(outcome, workspace)
    assert outcome.version.dataset_type == "expression.counts"
    assert list(adata.obs_names) == list(SAMPLES)
    assert list(adata.var_names) == genes
    assert list(adata.var["gene_symbol"]) == [f"SYM{i}" for i in range(120)]
    np.testing.assert_array_equal(adata.X.toarray(), values.T)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_good_10x_directory_round_trips(workspace, land, tmp_path, gz):  # type: ignore[no-untyped-def]
    _register(workspace)
    genes, cells = _gene_ids(60), _cell_ids(90)
    labels = [SAMPLES[i % 4] for i in range(90)]
    values = _counts(90, 60, seed=4, lam=0.8)
    path = write_10x(tmp_path / "pbmc", values, genes, cells, labels, gz=gz)

    outcome = ingest(workspace, land(workspace, path, STUDY), study=STUDY)

    adata = _read_published(outcome, workspace)
    assert list(adata.obs_names) == cells
    assert list(adata.obs["sample_id"]) == labels
    assert list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X.toarray(), values)


@pytest.mark.parametrize(
    ("layout", "encoding"),
    [("counts", "csr"), ("raw", "csr"), ("X", "csr"), ("X", "csc"), ("X", "dense")],
)
def test_good_h5ad_takes_the_counts(workspace, land, tmp_path, layout, encoding):  # type: ignore[no-untyped-def]
    _register(workspace)
    genes, cells = _gene_ids(50), _cell_ids(70)
    labels = [SAMPLES[i % 4] for i in range(70)]
    values = _counts(70, 50, seed=5, lam=1.0)
    path = write_h5ad(
        tmp_path / "cells.h5ad", values, genes, cells, labels, layout=layout, encoding=encoding
    )

    outcome = ingest(workspace, land(workspace, path, STUDY), study=STUDY)

    adata = _read_published(outcome, workspace)
    assert outcome.version.dataset_type == "expression.counts"
    assert (
        outcome.version.parameters["matrix"]
        == {"counts": "layers/counts", "raw": "raw/X", "X": "X"}[layout]
    )
    assert list(adata.obs_names) == cells
    assert list(adata.obs["sample_id"]) == labels
    assert list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X.toarray(), values)


def test_lognormalised_h5ad_is_stored_as_normalized_and_refused_by_deseq2(
    workspace, land, tmp_path
):  # type: ignore[no-untyped-def]
    _register(workspace)
    genes, cells = _gene_ids(50), _cell_ids(80)
    labels = [SAMPLES[i % 4] for i in range(80)]
    counts = _counts(80, 50, seed=6, lam=2.0)
    lognorm = np.log1p(counts / counts.sum(axis=1, keepdims=True) * 1e4).astype(np.float32)
    path = write_h5ad(tmp_path / "norm.h5ad", lognorm, genes, cells, labels, layout="X")

    outcome = ingest(workspace, land(workspace, path, STUDY), study=STUDY)

    adata = _read_published(outcome, workspace)
    assert outcome.version.dataset_type == "expression.normalized"
    np.testing.assert_array_equal(adata.X.toarray(), lognorm)
    with pytest.raises(
        MethodInputError,
        match=r"st/norm@v1: \[counts-required\] holds normalised expression.*DESeq2 needs raw",
    ):
        differential_expression(
            workspace, "st/norm", parse_contrast("treatment:A vs B"), method="deseq2"
        )
