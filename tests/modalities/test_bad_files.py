"""Bad files through every text reader and the h5ad reader, end to end through ``ingest``.

A good expression dataset and a good variants dataset are published first; every bad
file is then landed under the same dataset names, so a leak into the published state
would show. Each must be quarantined with a report, give one line naming the file, the
rule and the place, and leave the catalog's published versions and every stored byte
as they were. The text defects come from :mod:`modalities.bad_files` and are applied
to every text file a reader reads (bulk TSV/CSV/gzip, the three files of a 10x
directory, MAF, VCF, and the metabolomics MetaboAnalyst table, MS-DIAL feature table,
mzTab-M and mwTab text); the metabolomics content defects (negative abundance, a
duplicate feature, an unregistered sample, text in a numeric column, an empty table, an
all-missing feature) go through every metabolomics reader.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from atac_files import (
    peaks_of,
    write_fragments,
    write_narrowpeak,
    write_peak_matrix,
    write_peak_table,
)
from modalities.bad_files import TEXT_DEFECTS, BadFile, extra_field, missing_field
from modalities.metabolomics import metabolomics_files as mf
from modalities.test_bad_input import write_10x, write_h5ad, write_table
from modalities.variants.test_maf import COLUMNS as MAF_COLUMNS
from modalities.variants.test_maf import ROWS as MAF_ROWS
from modalities.variants.variant_files import GOOD_RECORDS, vcf_header, write_text
from resistomics.catalog import Phase, SampleRow, VersionStatus
from resistomics.pipeline import ingest

STUDY = "st"
EXPRESSION_SAMPLES = ("S1", "S2", "S3", "S4")
MAF_SAMPLES = ("TCGA-AB-01", "TCGA-AB-02")
VCF_SAMPLES = ("P1_baseline", "P1_relapse", "P1_relapse2")
# registered study samples (the expression ones) and a pooled QC, which needs no registration
METABOLOMICS_SAMPLES = (*EXPRESSION_SAMPLES, "QC_pool_1")
DATASETS = {
    "expression": "data",
    "variants": "calls",
    "metabolomics": "metabolites",
    "accessibility": "atac",
}


def _genes(n: int) -> list[str]:
    return [f"ENSG{i:011d}" for i in range(n)]


def _cells(n: int) -> list[str]:
    return [f"CELL{i:04d}-1" for i in range(n)]


def _counts(rows: int, cols: int, seed: int, lam: float = 5.0) -> np.ndarray:
    return np.random.default_rng(seed).poisson(lam, (rows, cols)).astype(np.float64)


def _labels(n: int) -> list[str]:
    return [EXPRESSION_SAMPLES[i % 4] for i in range(n)]


def _maf(path: Path) -> Path:
    rows = [[*r[:3], str(int(r[3]) + i), *r[4:]] for i in range(4) for r in MAF_ROWS]
    lines = ["#version 2.4", "\t".join(MAF_COLUMNS), *("\t".join(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _vcf(path: Path) -> Path:
    braf = GOOD_RECORDS[0]
    body = "".join(GOOD_RECORDS) + "".join(
        braf.replace("\t140453136\t", f"\t{140453136 + i}\t") for i in range(1, 5)
    )
    return write_text(path, vcf_header() + body)


@dataclass(frozen=True)
class TextInput:
    """A good input of one reader and which of its files a defect goes into."""

    modality: str
    write: Callable[[Path], Path]  # writes the input under a directory, returns it
    target: str | None  # the file inside a 10x directory to break; None: the input itself
    sep: str = "\t"
    rules: tuple[tuple[str, str], ...] = ()  # defect -> rule, where the reader differs
    options: tuple[tuple[str, str], ...] = ()  # ingest options the input needs


def _bulk(name: str, seed: int = 1) -> Callable[[Path], Path]:
    return lambda d: write_table(
        d / name, _genes(40), list(EXPRESSION_SAMPLES), _counts(40, 4, seed)
    )


def _tenx(d: Path) -> Path:
    return write_10x(
        d / "pbmc", _counts(40, 30, 2, 1.5), _genes(30), _cells(40), _labels(40), gz=False
    )


def _metabolomics(write: Callable[..., Path], name: str) -> Callable[[Path], Path]:
    # 40 features: the middle line of every file is a data row
    v = mf.values(40, len(METABOLOMICS_SAMPLES))
    return lambda d: write(d / name, METABOLOMICS_SAMPLES, v)


def _atac_matrix(d: Path) -> Path:
    x = _counts(40, 40, 3, 1.0)
    return write_peak_matrix(d / "atac", x, peaks_of(40), _cells(40), _labels(40), gz=False)


def _atac_fragments(d: Path) -> Path:
    rows = [("chr1", 1000 + 50 * i, 1200 + 50 * i, f"BC{i % 7}-1", 1 + i % 3) for i in range(40)]
    return write_fragments(d / "S1.fragments.tsv.gz", rows, index=False)


TEXT_INPUTS: dict[str, TextInput] = {
    "bulk-tsv": TextInput("expression", _bulk("counts.tsv"), None),
    "bulk-csv": TextInput("expression", _bulk("counts.csv"), None, sep=","),
    "bulk-tsv-gz": TextInput("expression", _bulk("counts.tsv.gz"), None),
    "10x-matrix": TextInput("expression", _tenx, "matrix.mtx", sep=" "),
    "10x-features": TextInput("expression", _tenx, "features.tsv"),
    "10x-barcodes": TextInput("expression", _tenx, "barcodes.tsv"),
    "atac-peaks-bed": TextInput("accessibility", _atac_matrix, "peaks.bed"),
    "atac-barcodes": TextInput("accessibility", _atac_matrix, "barcodes.tsv"),
    "atac-peak-table": TextInput(
        "accessibility",
        lambda d: write_peak_table(
            d / "peaks.tsv", peaks_of(40), EXPRESSION_SAMPLES, _counts(40, 4, 4)
        ),
        None,
    ),
    "atac-narrowpeak": TextInput(
        "accessibility", lambda d: write_narrowpeak(d / "x_peaks.narrowPeak", peaks_of(40)), None
    ),
    "atac-fragments": TextInput(
        "accessibility", _atac_fragments, None, options=(("sample", "S1"),)
    ),
    "maf": TextInput("variants", lambda d: _maf(d / "calls.maf"), None),
    "vcf": TextInput("variants", lambda d: _vcf(d / "calls.vcf"), None),
    "metaboanalyst": TextInput(
        "metabolomics", _metabolomics(mf.write_metaboanalyst, "metabolites.csv"), None, sep=","
    ),
    "feature-table": TextInput(
        "metabolomics", _metabolomics(mf.write_feature_table, "msdial.txt"), None
    ),
    "mztab-m": TextInput("metabolomics", _metabolomics(mf.write_mztab_m, "run.mztab"), None),
    # the cut last line is the closing #END: the reader names the truncation itself
    "mwtab": TextInput(
        "metabolomics",
        _metabolomics(mf.write_mwtab, "ST009901.txt"),
        None,
        rules=(("truncated", "truncated"),),
    ),
}
TEXT_CASES = [(r, d) for r in TEXT_INPUTS for d in TEXT_DEFECTS]


def _stored_bytes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and "quarantine" not in p.parts
        and "landing" not in p.parts
        and not p.name.startswith("catalog.sqlite")
    }


@pytest.fixture(scope="module")
def published_root(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A data root with an expression dataset ``st/data`` and a variants dataset
    ``st/calls`` published (built once; each test works on a copy)."""
    from conftest import land
    from resistomics.config import ClusterSettings, Settings
    from resistomics.pipeline import Workspace

    root = tmp_path_factory.mktemp("published") / "root"
    src = tmp_path_factory.mktemp("good")
    ws = Workspace.open(
        Settings(data_root=str(root), cluster=ClusterSettings(n_workers=1, processes=False))
    )
    rows = [SampleRow(sample_id=s, subject_id=s, treatment="A") for s in EXPRESSION_SAMPLES]
    rows += [SampleRow(sample_id=s, subject_id=s) for s in MAF_SAMPLES]
    rows += [SampleRow(sample_id=s, subject_id="P1") for s in VCF_SAMPLES]
    ws.catalog.register_study(STUDY, rows)
    # other bytes than the inputs the tests break (identical bytes are "unchanged")
    good = _bulk("good.tsv", seed=99)(src)
    out = ingest(ws, land(ws, good, STUDY), study=STUDY, dataset="data")
    assert out.status == "published", out.message
    good = write_text(src / "good.vcf", vcf_header() + "".join(GOOD_RECORDS))
    out = ingest(
        ws, land(ws, good, STUDY, modality="variants"), study=STUDY, modality="variants",
        dataset="calls",
    )  # fmt: skip
    assert out.status == "published", out.message
    ws.close()
    return root


@pytest.fixture
def study(settings, published_root):  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from resistomics.catalog._models import Version
    from resistomics.pipeline import Workspace

    shutil.copytree(published_root, settings.data_root)
    ws = Workspace.open(settings)
    with ws.catalog.session() as s:  # URIs may be absolute: point them at the copy
        for v in s.scalars(select(Version)):
            v.uri = v.uri.replace(str(published_root), settings.data_root)
    yield ws
    ws.close()


def _ingest_bad(ws, land, path: Path, *, modality: str, **options):  # type: ignore[no-untyped-def]
    """Land and ingest ``path``; check it was quarantined and changed nothing stored."""
    root = Path(ws.settings.data_root)
    published = [v for v in ws.catalog.snapshot() if v[4] == "published"]
    stored = _stored_bytes(root)
    landed = land(ws, path, STUDY, modality=modality)
    dataset = DATASETS[modality]
    out = ingest(ws, landed, study=STUDY, modality=modality, dataset=dataset, **options)
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1, out.message
    assert landed.rstrip("/") in out.message, out.message
    assert [v for v in ws.catalog.snapshot() if v[4] == "published"] == published
    after = _stored_bytes(root)
    assert {k: after.get(k) for k in stored} == stored  # every stored byte as it was
    assert out.quarantine_uri is not None and (Path(out.quarantine_uri) / "report.json").exists()
    assert not ws.catalog.versions(study=STUDY, status=VersionStatus.STAGED)
    return out


def _rule_and_place(message: str, rule: str, place: str) -> None:
    assert f"[{rule}]" in message or f"[validation] {rule}:" in message, message
    assert place in message, message


# -- every text defect in every text reader ---------------------------------------------


@pytest.mark.parametrize(("reader", "defect"), TEXT_CASES, ids=[f"{r}-{d}" for r, d in TEXT_CASES])
def test_text_defect_is_refused_with_its_line(study, land, tmp_path, reader, defect):  # type: ignore[no-untyped-def]
    spec = TEXT_INPUTS[reader]
    good_dir, bad_dir = tmp_path / "good", tmp_path / "bad"
    good_dir.mkdir()
    good = spec.write(good_dir)
    build = TEXT_DEFECTS[defect]
    if build in (missing_field, extra_field):
        build = functools.partial(build, sep=spec.sep)
    if spec.target is None:
        bad: BadFile = build(good, bad_dir / good.name)
        landed_input = bad.path
    else:
        shutil.copytree(good, bad_dir / good.name)
        landed_input = bad_dir / good.name
        target = landed_input / spec.target
        bad = build(good / spec.target, target)
    out = _ingest_bad(study, land, landed_input, modality=spec.modality, options=dict(spec.options))
    rule = dict(spec.rules).get(defect, bad.rule)
    _rule_and_place(out.message, rule, f"line {bad.line}")
    if spec.target is not None:
        assert f"/{spec.target} (line" in out.message, out.message


# -- bulk tables ---------------------------------------------------------------------------


@pytest.mark.parametrize("gene_id", ["", "   "], ids=["empty", "whitespace"])
def test_bulk_table_with_an_empty_gene_id_is_refused(study, land, tmp_path, gene_id):  # type: ignore[no-untyped-def]
    path = _bulk("counts.tsv")(tmp_path)
    lines = path.read_text().split("\n")
    lines[5] = gene_id + lines[5][lines[5].index("\t") :]
    path.write_text("\n".join(lines))
    out = _ingest_bad(study, land, path, modality="expression")
    _rule_and_place(out.message, "gene-id", "line 6, column 'gene_id'")


# -- 10x Matrix Market -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("banner", "rule", "says"),
    [
        ("%%MatrixMarket matrix coordinate integer symmetric", "mtx-symmetry", "'symmetric'"),
        ("%%MatrixMarket matrix coordinate integer skew-symmetric", "mtx-symmetry", "general"),
        ("%%MatrixMarket matrix coordinate complex general", "mtx-field", "'complex'"),
        ("%%MatrixMarket matrix coordinate pattern general", "mtx-field", "no values"),
        ("%%MatrixMarket matrix array integer general", "mtx-header", "coordinate"),
    ],
)
def test_mtx_banner_the_reader_does_not_support_is_named(  # type: ignore[no-untyped-def]
    study, land, tmp_path, banner, rule, says
):
    d = _tenx(tmp_path)
    matrix = d / "matrix.mtx"
    lines = matrix.read_text().split("\n")
    lines[0] = banner
    matrix.write_text("\n".join(lines))
    out = _ingest_bad(study, land, d, modality="expression")
    _rule_and_place(out.message, rule, "matrix.mtx (line 1)")
    assert says in out.message


def test_10x_without_gene_expression_features_says_so(study, land, tmp_path):  # type: ignore[no-untyped-def]
    d = _tenx(tmp_path)
    features = d / "features.tsv"
    features.write_text(features.read_text().replace("Gene Expression", "Antibody Capture"))
    out = _ingest_bad(study, land, d, modality="expression")
    _rule_and_place(out.message, "10x-features", "features.tsv")
    assert "no 'Gene Expression' feature" in out.message and "'Antibody Capture'" in out.message


# -- h5ad ------------------------------------------------------------------------------------


def _good_h5ad(path: Path, *, encoding: str = "csr") -> Path:
    n_cells, n_genes = 40, 30
    return write_h5ad(
        path,
        _counts(n_cells, n_genes, 3, 1.5),
        _genes(n_genes),
        _cells(n_cells),
        _labels(n_cells),
        layout="X",
        encoding=encoding,
    )


def _replace(group: h5py.Group, name: str, data: np.ndarray) -> None:
    attrs = dict(group[name].attrs)
    del group[name]
    group[name] = data
    group[name].attrs.update(attrs)


def _x_more_rows(f: h5py.File) -> None:
    f["X"].attrs["shape"] = np.array([45, 30])
    _replace(f["X"], "indptr", np.concatenate([f["X/indptr"][()], [f["X/indptr"][-1]] * 5]))


def _indices_out_of_bounds(f: h5py.File) -> None:
    idx = f["X/indices"][()]
    idx[7] = 999
    _replace(f["X"], "indices", idx)


def _decreasing_indptr(f: h5py.File) -> None:
    ptr = f["X/indptr"][()]
    assert ptr[10] > 0
    ptr[11] = ptr[10] - 1
    _replace(f["X"], "indptr", ptr)


def _unknown_encoding(f: h5py.File) -> None:
    f["X"].attrs["encoding-type"] = "coo_matrix"


def _dense_x(x: np.ndarray) -> Callable[[h5py.File], None]:
    def apply(f: h5py.File) -> None:
        del f["X"]
        f["X"] = x
        f["X"].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})

    return apply


H5AD_CASES: dict[str, tuple[Callable[[h5py.File], None], str, str]] = {
    "X has more rows than obs": (_x_more_rows, "h5ad-shape", "45 x 30 but obs has 40"),
    "CSR indices out of bounds": (_indices_out_of_bounds, "h5ad-indices", "index 999"),
    "decreasing indptr": (_decreasing_indptr, "h5ad-indptr", "decreases"),
    "unknown encoding type": (_unknown_encoding, "h5ad-encoding", "'coo_matrix'"),
    "X of strings": (
        _dense_x(np.full((40, 30), "7", dtype=h5py.string_dtype())),
        "h5ad-dtype",
        "strings",
    ),
    "X columns do not match var": (_dense_x(np.ones((40, 31))), "h5ad-shape", "var 30"),
    "one-dimensional X": (_dense_x(np.ones(40)), "h5ad-shape", "1 dimension"),
}


@pytest.mark.parametrize("case", list(H5AD_CASES), ids=list(H5AD_CASES))
def test_broken_h5ad_matrix_is_refused(study, land, tmp_path, case):  # type: ignore[no-untyped-def]
    damage, rule, says = H5AD_CASES[case]
    path = _good_h5ad(tmp_path / "cells.h5ad")
    with h5py.File(path, "r+") as f:
        damage(f)
    out = _ingest_bad(study, land, path, modality="expression")
    _rule_and_place(out.message, rule, says)


def test_h5ad_with_zero_cells_is_refused(study, land, tmp_path):  # type: ignore[no-untyped-def]
    path = tmp_path / "empty.h5ad"
    a = ad.AnnData(
        sp.csr_matrix((0, 30), dtype=np.float32),
        obs=pd.DataFrame({"sample_id": pd.Series([], dtype=str)}, index=pd.Index([], dtype=str)),
        var=pd.DataFrame(index=pd.Index(_genes(30))),
    )
    a.write_h5ad(path)
    out = _ingest_bad(study, land, path, modality="expression")
    _rule_and_place(out.message, "not-empty", "no cells")


def test_h5ad_cell_cycle_phase_does_not_shadow_the_design(study, land, tmp_path):  # type: ignore[no-untyped-def]
    """scanpy's cell-cycle scoring writes obs['phase'] (G1/S/G2M): kept as h5ad_phase."""
    import scanpy as sc

    rng = np.random.default_rng(11)
    n_cells, n_genes = 120, 200
    genes = [f"G{i}" for i in range(n_genes)]
    counts = rng.poisson(2.0, (n_cells, n_genes)).astype(np.float32)
    counts[:40, :20] += 8  # S-phase genes high in the first cells
    counts[40:80, 20:40] += 8  # G2M genes high in the next
    obs = pd.DataFrame({"sample_id": _labels(n_cells)}, index=pd.Index(_cells(n_cells)))
    a = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    scored = a.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scanpy's own deprecation notices
        sc.tl.score_genes_cell_cycle(scored, s_genes=genes[:20], g2m_genes=genes[20:40])
    assert set(scored.obs["phase"]) == {"G1", "S", "G2M"}
    a.obs = scored.obs
    path = tmp_path / "cycling.h5ad"
    a.write_h5ad(path)
    ws = study
    # the design says all four samples are on-treatment
    ws.catalog.register_study(
        "cc",
        [
            SampleRow(sample_id=s, subject_id=s, phase=Phase.ON_TREATMENT, treatment="A")
            for s in EXPRESSION_SAMPLES
        ],
    )
    out = ingest(ws, land(ws, path, "cc"), study="cc")
    assert out.status == "published", out.message
    stored = ad.read_zarr(f"{ws.root.to_path(out.version.uri)}/expression.zarr")
    # the design (from the sample sheet) is in obs too, under its own name
    assert set(stored.obs["phase"].astype(str)) == {"on-treatment"}
    assert list(stored.obs["h5ad_phase"]) == list(scored.obs["phase"])
    np.testing.assert_allclose(stored.obs["S_score"], scored.obs["S_score"])
    assert out.version.parameters["renamed_obs_columns"] == {"phase": "h5ad_phase"}
    assert "h5ad_phase" in out.version.parameters["note"]
    assert set(ws.catalog.samples("cc")["phase"]) == {"on-treatment"}


# -- variants --------------------------------------------------------------------------------


def test_maf_with_duplicate_column_names_is_refused(study, land, tmp_path):  # type: ignore[no-untyped-def]
    path = _maf(tmp_path / "calls.maf")
    path.write_text(path.read_text().replace("t_depth", "Hugo_Symbol"))
    out = _ingest_bad(study, land, path, modality="variants")
    _rule_and_place(out.message, "unique-columns", "line 2, column 'Hugo_Symbol'")


def test_truncated_maf_publishes_nothing(study, land, tmp_path):  # type: ignore[no-untyped-def]
    """What kill -9 during a copy leaves: a MAF cut mid-row, thousands of rows in."""
    rows = [[*r[:3], str(int(r[3]) + i), *r[4:]] for i in range(3000) for r in MAF_ROWS[:2]]
    lines = ["\t".join(MAF_COLUMNS), *("\t".join(r) for r in rows)]
    text = "\n".join(lines)
    path = tmp_path / "calls.maf"
    path.write_text(text[: len(text) - 25])
    out = _ingest_bad(study, land, path, modality="variants")
    _rule_and_place(out.message, "field-count", f"line {len(lines)}")


def test_vcf_declaring_ad_as_string_is_refused(study, land, tmp_path):  # type: ignore[no-untyped-def]
    path = _vcf(tmp_path / "calls.vcf")
    path.write_text(
        path.read_text().replace("ID=AD,Number=R,Type=Integer", "ID=AD,Number=R,Type=String")
    )
    out = _ingest_bad(study, land, path, modality="variants")
    _rule_and_place(out.message, "vcf-format-type", "column 'AD'")
    assert "Type=String" in out.message


def test_htslib_messages_are_captured_into_the_one_line(study, land, tmp_path, capfd):  # type: ignore[no-untyped-def]
    path = _vcf(tmp_path / "calls.vcf")
    path.write_text(path.read_text().replace("\t25398284\t", "\t2539x8284\t"))
    capfd.readouterr()
    out = _ingest_bad(study, land, path, modality="variants")
    _rule_and_place(out.message, "vcf-record", "line ")
    assert "2539x8284" in out.message  # htslib's gist
    assert "[E::" not in capfd.readouterr().err


def test_plain_vcf_named_gz_is_refused(study, land, tmp_path):  # type: ignore[no-untyped-def]
    path = _vcf(tmp_path / "calls.vcf")
    named = tmp_path / "calls.vcf.gz"
    path.rename(named)
    out = _ingest_bad(study, land, named, modality="variants")
    _rule_and_place(out.message, "gzip", "not gzip-compressed")


# -- a forced format on a file of another format -------------------------------------------


@pytest.mark.parametrize(
    ("make", "modality", "fmt", "rule", "says"),
    [
        (
            lambda d: _bulk("counts.tsv")(d),
            "expression",
            "h5ad",
            "h5ad-format",
            "tab-separated text",
        ),
        (lambda d: _bulk("counts.tsv")(d), "expression", "10x-mtx", "format", "tab-separated text"),
        (
            lambda d: _good_h5ad(d / "cells.h5ad"),
            "expression",
            "bulk-table",
            "text-encoding",
            "HDF5",
        ),
        (_tenx, "expression", "bulk-table", "format", "a directory"),
        (lambda d: _maf(d / "calls.maf"), "variants", "vcf", "vcf-header", "a MAF"),
        (lambda d: _vcf(d / "calls.vcf"), "variants", "maf", "format", "a VCF"),
    ],
    ids=["h5ad-on-tsv", "mtx-on-tsv", "table-on-h5ad", "table-on-10x", "vcf-on-maf", "maf-on-vcf"],
)
def test_forced_format_on_another_format_says_what_the_file_looks_like(  # type: ignore[no-untyped-def]
    study, land, tmp_path, make, modality, fmt, rule, says
):
    path = make(tmp_path)
    out = _ingest_bad(study, land, path, modality=modality, fmt=fmt)
    _rule_and_place(out.message, rule, says)


def test_negative_counts_hint_at_values_normalized(study, land, tmp_path):  # type: ignore[no-untyped-def]
    values = _counts(40, 4, 5)
    values[3, 1] = -1.2
    path = write_table(tmp_path / "z.tsv", _genes(40), list(EXPRESSION_SAMPLES), values)
    out = _ingest_bad(study, land, path, modality="expression")
    _rule_and_place(out.message, "non-negative-counts", "--values normalized")


def test_gzip_builders_keep_gzip(tmp_path):  # type: ignore[no-untyped-def]
    """The builders break the content, not the compression, of a gzip input."""
    good = _bulk("counts.tsv.gz")(tmp_path)
    bad = missing_field(good, tmp_path / "bad" / "counts.tsv.gz")
    text = gzip.decompress(bad.path.read_bytes()).decode()
    assert text.split("\n")[bad.line - 1].count("\t") == 4  # one of six fields gone


def test_a_50_mb_single_line_is_refused_in_bounded_memory(study, land, tmp_path):  # type: ignore[no-untyped-def]
    """A file without line breaks once killed the process: it is read in bounded pieces."""
    import tracemalloc

    path = tmp_path / "one_line.tsv"
    with open(path, "w") as f:
        f.write("gene_id\tS1\t")
        for _ in range(50):
            f.write("7\t" * (1 << 19))  # 1 MiB a time, 50 MiB in all, no line break
    tracemalloc.start()
    try:
        out = _ingest_bad(study, land, path, modality="expression")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _rule_and_place(out.message, "line-length", "line 1")
    assert peak < 48 * 2**20, f"peak {peak / 2**20:.0f} MiB while refusing a 50 MiB line"


def test_htslib_header_messages_are_captured_too(study, land, tmp_path, capfd):  # type: ignore[no-untyped-def]
    path = _vcf(tmp_path / "calls.vcf")
    path.write_text(path.read_text().replace("#CHROM\tPOS\tID", "#CHROM POS ID"))
    capfd.readouterr()
    out = _ingest_bad(study, land, path, modality="variants")
    _rule_and_place(out.message, "vcf-header", "line 1")
    assert "[E::" not in capfd.readouterr().err


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["crlf", "cr"])
@pytest.mark.parametrize("bom", [False, True], ids=["plain", "utf8-bom"])
def test_good_tables_with_other_line_endings_or_a_bom_still_publish(  # type: ignore[no-untyped-def]
    study, land, tmp_path, newline, bom
):
    path = _bulk("counts.tsv", seed=5)(tmp_path)
    text = path.read_text().replace("\n", newline)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    out = ingest(study, land(study, path, STUDY), study=STUDY, dataset="other")
    assert out.status == "published", out.message
    assert tuple(out.version.shape) == (4, 40)
    maf = _maf(tmp_path / "calls.maf")
    text = maf.read_text().replace("\n", newline)
    maf.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    out = ingest(
        study, land(study, maf, STUDY, modality="variants"), study=STUDY, modality="variants",
        dataset="more_calls",
    )  # fmt: skip
    assert out.status == "published", out.message
    assert out.version.shape[0] == 12


@pytest.mark.parametrize("defect", ["latin1", "nul", "long-line", "missing-field", "extra-field"])
@pytest.mark.parametrize("name", ["counts.tsv", "counts.tsv.gz"])
def test_defect_far_into_a_file_names_its_line(study, land, tmp_path, defect, name):  # type: ignore[no-untyped-def]
    """Past the sniffed start (64 KiB) the stream itself finds the defect and its line."""
    from modalities.bad_files import as_latin1, long_line, with_nul

    good = write_table(tmp_path / name, _genes(6000), list(EXPRESSION_SAMPLES), _counts(6000, 4, 8))
    build = {
        "latin1": as_latin1,
        "nul": with_nul,
        "long-line": long_line,
        "missing-field": missing_field,
        "extra-field": extra_field,
    }[defect]
    bad = build(good, tmp_path / "bad" / name, line=5123)
    out = _ingest_bad(study, land, bad.path, modality="expression")
    _rule_and_place(out.message, bad.rule, "line 5123")


# -- metabolomics: content defects through every reader ------------------------------------

METABOLOMICS_WRITERS: dict[str, tuple[Callable[..., Path], str, Callable[[str], str]]] = {
    # reader -> (writer, file name, how to repeat a feature ID in its text)
    "metaboanalyst": (
        mf.write_metaboanalyst,
        "metabolites.csv",
        lambda t: t.replace(",tryptophan,", ",kynurenine,", 1),
    ),
    "feature-table": (mf.write_feature_table, "msdial.txt", lambda t: t.replace("\n1\t", "\n0\t", 1)),
    "mztab-m": (mf.write_mztab_m, "run.mztab", lambda t: t.replace("SML\t2\t", "SML\t1\t", 1)),
    "mwtab": (mf.write_mwtab, "ST009901.txt", lambda t: t.replace("\ntryptophan\t", "\nkynurenine\t", 1)),
    "mwtab-json": (
        mf.write_mwtab_json,
        "ST009901.json",
        lambda t: t.replace('"Metabolite": "tryptophan"', '"Metabolite": "kynurenine"', 1),
    ),
}  # fmt: skip
_MARK = 4321.125  # a value written once, then replaced by text


def _metabolomics_defect(
    defect: str, duplicate: Callable[[str], str]
) -> tuple[list[str], np.ndarray, Callable[[str], str], str]:
    """(samples, values, text edit, the rule the reader must name)."""
    samples = list(METABOLOMICS_SAMPLES)
    v = mf.values(8, len(samples))
    edit: Callable[[str], str] = lambda t: t  # noqa: E731
    if defect == "negative":
        v[2, 1] = -5.25
        return samples, v, edit, "non-negative"
    if defect == "text":
        v[2, 1] = _MARK
        return samples, v, lambda t: t.replace(repr(_MARK), "12x.5"), "number"
    if defect == "unregistered":
        samples[1] = "S9"
        return samples, v, edit, "registered-samples"
    if defect == "empty":
        return samples, v[:0], edit, "empty"
    if defect == "all-missing":
        v[3, :] = np.nan
        return samples, v, edit, "all-missing-feature"
    assert defect == "duplicate-feature"
    return samples, v, duplicate, "unique-features"


METABOLOMICS_DEFECTS = (
    "negative",
    "text",
    "unregistered",
    "empty",
    "all-missing",
    "duplicate-feature",
)
METABOLOMICS_CASES = [(r, d) for r in METABOLOMICS_WRITERS for d in METABOLOMICS_DEFECTS]


@pytest.mark.parametrize(
    ("reader", "defect"), METABOLOMICS_CASES, ids=[f"{r}-{d}" for r, d in METABOLOMICS_CASES]
)
def test_metabolomics_content_defect_is_refused_at_read(study, land, tmp_path, reader, defect):  # type: ignore[no-untyped-def]
    write, name, duplicate = METABOLOMICS_WRITERS[reader]
    samples, v, edit, rule = _metabolomics_defect(defect, duplicate)
    path = write(tmp_path / name, samples, v)
    text = path.read_text()
    assert edit(text) != text or edit is not duplicate  # the edit applies to this file
    path.write_text(edit(text))
    out = _ingest_bad(study, land, path, modality="metabolomics")
    if rule == "non-negative":  # the value kind decides (--log-scaled): validation refuses
        _rule_and_place(out.message, rule, "1 failing")
        return
    assert f"[{rule}]" in out.message, out.message
    assert out.report["stage"] == "read" and out.report["location"], out.report
