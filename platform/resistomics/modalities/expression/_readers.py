"""Readers of expression source formats into streamed matrix blocks.

Each reader parses its format in blocks (never the whole file at once) and raises
:class:`~resistomics.errors.InputError` naming the file, the place and the rule on
anything it cannot parse. Text files (bulk tables, the three files of a 10x
directory) are read through :func:`resistomics._text_files.open_checked_text`, which
refuses non-text (``text-encoding``), overlong lines (``line-length``) and rows with
more or fewer fields than the header (``field-count``) with their line. Value checks (NaN, negative or fractional counts, library
sizes) are not the readers' job: validation runs them on the staged store with Dask
and Great Expectations.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics._text_files import (
    CheckedText,
    current_limits,
    describe_content,
    open_checked_text,
    open_regular,
)
from resistomics.errors import InputError
from resistomics.modalities._checks import DESIGN_COLUMNS, check_registered
from resistomics.modalities._mtx import (
    find_file,
    gzip_error,
    mtx_barcode_blocks,
    open_mtx,
    read_small_tsv,
)
from resistomics.modalities.expression._source import MatrixSource, ReadContext, ValuesMode

__all__ = ["read_bulk_table", "read_h5ad", "read_mtx_dir"]

_ANNOTATION_COLUMNS = {
    "gene_id",
    "geneid",
    "gene",
    "id",
    "ensembl_id",
    "gene_name",
    "gene_symbol",
    "symbol",
    "name",
    "chr",
    "start",
    "end",
    "strand",
    "length",
    "description",
    "gene_type",
    "gene_biotype",
    "biotype",
}
_SYMBOL_COLUMNS = ("gene_name", "gene_symbol", "symbol", "name")


def _open_text(path: str | Path) -> CheckedText:
    return open_checked_text(path)


_gzip_error = gzip_error


def _sample_name(column: str) -> str:
    """featureCounts writes BAM paths as column names: keep the sample part."""
    base = os.path.basename(column.strip())
    for suffix in (".sorted.bam", ".bam", ".sam", ".cram"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


# -- bulk count tables -------------------------------------------------------------------


def _detect_table(path: str) -> bool:
    p = path.lower()
    return os.path.isfile(path) and any(
        p.endswith(s)
        for s in (".tsv", ".tsv.gz", ".txt", ".txt.gz", ".csv", ".csv.gz", ".tab", ".counts")
    )


def read_bulk_table(path: str | Path, ctx: ReadContext) -> MatrixSource:
    """Bulk expression table, genes x samples (TSV/CSV, optionally gzip).

    The first column holds gene IDs; known annotation columns (``gene_name``, and
    featureCounts' ``Chr``, ``Start``, ``End``, ``Strand``, ``Length``) become gene
    annotations; every other column must be a registered sample (featureCounts BAM
    paths are reduced to the sample name). Values default to counts.
    """
    path = Path(path)
    _refuse_directory(path, "bulk-table")
    if path.stat().st_size == 0:
        raise InputError(str(path), "not-empty", "the file is empty")
    delimiter = "," if ".csv" in path.name.lower() else "\t"
    handle = _open_text(path)
    try:
        header_line = handle.readline()
        # featureCounts writes a '# Program:...' comment line first
        line_offset = 1
        while header_line.startswith("#"):
            header_line = handle.readline()
            line_offset += 1
    except (EOFError, OSError, zlib.error) as exc:
        handle.close()
        raise _gzip_error(path, exc, line=1) from None
    except InputError:
        handle.close()
        raise
    if not header_line.strip():
        handle.close()
        raise InputError(str(path), "not-empty", "the file has no header line")
    header = [h.strip() for h in header_line.rstrip("\r\n").split(delimiter)]
    try:
        handle.check_field_lengths(header, line=line_offset)
    except InputError:
        handle.close()
        raise
    if len(header) < 2:
        handle.close()
        other = "comma" if delimiter == "\t" else "tab"
        seen = "," if delimiter == "\t" else "\t"
        why = f"; it looks {other}-separated" if seen in header_line else ""
        raise InputError(
            str(path),
            "delimiter",
            f"expected a {'tab' if delimiter == chr(9) else 'comma'}-separated header with gene IDs and samples, found one column{why}",
            line=line_offset,
        )
    if len(set(header)) != len(header):
        handle.close()
        dup = next(h for h in header if header.count(h) > 1)
        raise InputError(
            str(path),
            "unique-columns",
            f"column {dup!r} appears twice",
            line=line_offset,
            column=dup,
        )
    annotation = [h for h in header[1:] if h.lower() in _ANNOTATION_COLUMNS]
    sample_columns = [h for h in header[1:] if h.lower() not in _ANNOTATION_COLUMNS]
    if not sample_columns:
        handle.close()
        raise InputError(str(path), "sample-columns", "no sample columns found", line=line_offset)
    sample_ids = [_sample_name(h) for h in sample_columns]
    if len(set(sample_ids)) != len(sample_ids):
        handle.close()
        dup = next(s for s in sample_ids if sample_ids.count(s) > 1)
        raise InputError(
            str(path), "unique-sample-ids", f"sample {dup!r} has two columns", line=line_offset
        )
    try:
        check_registered(path, sample_ids, ctx.registered_samples, kind="column")
    except InputError:
        handle.close()
        raise
    # every row must have the header's fields: a short (cut) or long row is refused
    handle.expect_fields(len(header), delimiter)
    obs = pd.DataFrame({"sample_id": sample_ids}, index=pd.Index(sample_ids, dtype=str))
    symbol_col = next((h for h in annotation if h.lower() in _SYMBOL_COLUMNS), None)
    source = MatrixSource(
        fmt="bulk-table",
        orientation="genes",
        fixed=obs,
        blocks=iter(()),
        values_mode=ctx.values or "counts",
        details={
            "delimiter": "tab" if delimiter == "\t" else "comma",
            "gene_id_column": header[0],
            "symbol_column": symbol_col,
        },
    )

    def blocks() -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        first_line = line_offset + 1
        done = 0
        try:
            reader = pd.read_csv(
                handle,
                sep=delimiter,
                header=None,
                names=header,
                dtype=str,
                chunksize=max(256, ctx.genes_per_block),
                na_filter=False,
                engine="c",
                skip_blank_lines=True,
                quoting=3,
            )
            for chunk in reader:
                values = np.empty((len(chunk), len(sample_columns)), dtype=np.float64)
                for j, col in enumerate(sample_columns):
                    raw = chunk[col]
                    if (raw == "").any():
                        i = int(np.flatnonzero((raw == "").to_numpy())[0])
                        raise InputError(
                            str(path),
                            "field-count",
                            f"missing value (expected {len(header)} fields)",
                            line=first_line + done + i,
                            column=col,
                        )
                    num = pd.to_numeric(raw.str.strip(), errors="coerce")
                    bad = num.isna() & ~raw.str.strip().str.upper().isin(["NA", "NAN"])
                    if bad.any():
                        i = int(np.flatnonzero(bad.to_numpy())[0])
                        raise InputError(
                            str(path),
                            "numeric-values",
                            f"value {raw.iloc[i]!r} is not a number",
                            line=first_line + done + i,
                            column=col,
                        )
                    values[:, j] = num.to_numpy(dtype=np.float64)
                source.tracker.see(values)
                ids = chunk[header[0]].str.strip()
                if (ids == "").any():
                    i = int(np.flatnonzero((ids == "").to_numpy())[0])
                    raise InputError(
                        str(path),
                        "gene-id",
                        f"empty gene ID {chunk[header[0]].iloc[i]!r}: every row needs one in "
                        "the first column",
                        line=first_line + done + i,
                        column=header[0],
                    )
                var = pd.DataFrame(index=pd.Index(ids.to_numpy(dtype=object), dtype=str))
                for a in annotation:
                    if a != symbol_col:
                        var[a] = chunk[a].to_numpy(dtype=object)
                if symbol_col:
                    var["gene_symbol"] = chunk[symbol_col].to_numpy(dtype=object)
                done += len(chunk)
                yield values, var
        except pd.errors.ParserError as exc:
            raise InputError(
                str(path), "field-count", _parser_message(exc, first_line - 1)
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _gzip_error(path, exc, line=first_line + done) from None
        finally:
            handle.close()
        if done == 0:
            raise InputError(str(path), "not-empty", "the table has a header but no genes")

    source.blocks = blocks()
    return source


def _refuse_directory(path: Path, fmt: str) -> None:
    if path.is_dir():
        raise InputError(
            str(path),
            "format",
            f"the {fmt} reader needs a file, but this is {describe_content(path)}",
        )


def _parser_message(exc: Exception, offset: int) -> str:
    import re

    text = str(exc).strip()
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"line {int(m.group(2)) + offset}: expected {m.group(1)} fields, saw {m.group(3)} (wrong delimiter or a broken row?)"
    return text.splitlines()[-1]


# -- 10x Matrix Market directory -----------------------------------------------------------


def _detect_mtx(path: str) -> bool:
    p = Path(path)
    return p.is_dir() and any((p / n).exists() for n in ("matrix.mtx", "matrix.mtx.gz"))


def read_mtx_dir(path: str | Path, ctx: ReadContext) -> MatrixSource:
    """10x Genomics Matrix Market directory (Cell Ranger v2 or v3 layout).

    ``matrix.mtx[.gz]`` (genes x cells, coordinate format), ``features.tsv[.gz]`` or
    ``genes.tsv[.gz]`` and ``barcodes.tsv[.gz]``. Only "Gene Expression" features are
    kept when a feature-type column exists. Cells map to a sample from a second column
    of ``barcodes.tsv``, else from ``ctx.sample``, else from the directory name.
    Entries are streamed and bucketed into cell blocks on local scratch, so files in
    any entry order are read with bounded memory.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise InputError(
            str(directory),
            "format",
            f"a 10x reader needs a directory holding matrix.mtx, features.tsv and "
            f"barcodes.tsv, but this is {describe_content(directory)}",
        )
    matrix = find_file(directory, "matrix.mtx")
    features = find_file(directory, "features.tsv", "genes.tsv")
    barcodes = find_file(directory, "barcodes.tsv")
    for name, p in (
        ("matrix.mtx", matrix),
        ("features.tsv or genes.tsv", features),
        ("barcodes.tsv", barcodes),
    ):
        if p is None:
            raise InputError(str(directory), "10x-layout", f"{name} (optionally .gz) is missing")
    assert matrix is not None and features is not None and barcodes is not None
    feat = read_small_tsv(features, 1)
    bc = read_small_tsv(barcodes, 1)
    if feat.shape[1] >= 3:
        keep = (feat[2] == "Gene Expression").to_numpy()
        if not keep.any():
            kinds = feat[2].value_counts()
            found = ", ".join(f"{n} {kind!r}" for kind, n in kinds.head(4).items())
            raise InputError(
                str(features),
                "10x-features",
                f"no 'Gene Expression' feature in the third column (found {found}): "
                "this reader keeps gene expression only, other feature types (antibody "
                "capture, CRISPR guides) are not expression data",
                column="3",
            )
    else:
        keep = np.ones(len(feat), dtype=bool)
    var = pd.DataFrame(index=pd.Index(feat[0].to_numpy(dtype=object), dtype=str))[keep]
    if feat.shape[1] >= 2:
        var["gene_symbol"] = feat[1].to_numpy(dtype=object)[keep]
    if bc.shape[1] >= 2:
        samples = bc[1].to_numpy(dtype=object)
    else:
        sample = ctx.sample or (
            directory.name if directory.name in ctx.registered_samples else None
        )
        if sample is None:
            raise InputError(
                str(barcodes),
                "sample-mapping",
                "cannot tell which registered sample these cells belong to: pass --sample, "
                "name the directory after the sample, or add a second column to barcodes.tsv",
            )
        samples = np.full(len(bc), sample)
    check_registered(barcodes, sorted(set(samples.tolist())), ctx.registered_samples)
    obs_all = pd.DataFrame(
        {"sample_id": samples}, index=pd.Index(bc[0].to_numpy(dtype=object), dtype=str)
    )

    handle, header = open_mtx(matrix)
    if header.n_rows != len(feat) or header.n_cols != len(bc):
        handle.close()
        raise InputError(
            str(matrix),
            "dimensions",
            f"matrix is {header.n_rows} features x {header.n_cols} barcodes but features "
            f"file has {len(feat)} rows and barcodes file {len(bc)}",
            line=header.lineno,
        )
    gene_map = np.full(header.n_rows, -1, dtype=np.int64)
    gene_map[keep] = np.arange(int(keep.sum()))
    source = MatrixSource(
        fmt="10x-mtx",
        orientation="cells",
        fixed=var,
        blocks=iter(()),
        values_mode=ctx.values or "counts",
        details={"mtx_field": header.field, "features": features.name},
    )

    def blocks() -> Iterator[tuple[sp.csr_matrix, pd.DataFrame]]:
        for lo, hi, m in mtx_barcode_blocks(
            matrix,
            handle,
            header,
            feature_map=gene_map,
            barcodes_per_block=ctx.rows_per_block,
            scratch=ctx.scratch,
            see=source.tracker.see,
        ):
            yield m, obs_all.iloc[lo:hi]

    source.blocks = blocks()
    return source


# -- h5ad ---------------------------------------------------------------------------------------

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SPARSE_ENCODINGS = ("csr_matrix", "csc_matrix")


def _h5_frame(path: Path, f: Any, key: str) -> pd.DataFrame:
    """An AnnData dataframe element (obs/var) of an open h5ad file."""
    from anndata.io import read_elem

    if key not in f:
        raise InputError(str(path), "h5ad-layout", f"the file has no {key!r} element")
    encoding = f[key].attrs.get("encoding-type")
    if encoding != "dataframe":
        raise InputError(
            str(path),
            "h5ad-encoding",
            f"{key} has encoding-type {encoding!r}, expected 'dataframe' (not written by anndata?)",
        )
    try:
        frame = read_elem(f[key])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            str(path), "h5ad-encoding", f"anndata cannot read {key} ({reason})"
        ) from None
    if not isinstance(frame, pd.DataFrame):
        raise InputError(str(path), "h5ad-layout", f"{key} is not an AnnData dataframe")
    return frame


def _check_h5_declared_size(path: Path, f: Any) -> None:
    """Refuse an h5ad whose datasets declare far more bytes than the file holds (a
    compressed-chunk bomb), before anything is read: the declared sizes are metadata.

    The same bounds as for gzip text (``gzip-ratio``, ``inflated-size``): HDF5's own
    compression of real expression data is 2-10x.
    """
    import h5py

    declared = 0

    def add(_name: str, obj: Any) -> None:
        nonlocal declared
        # a null dataspace (anndata writes None so, e.g. scanpy's uns['log1p']['base'])
        # has no size: it declares nothing
        if isinstance(obj, h5py.Dataset) and obj.size is not None:
            declared += int(obj.size) * int(obj.dtype.itemsize)

    f.visititems(add)
    limits, packed = current_limits(), max(path.stat().st_size, 1)
    if declared > limits.max_inflated_bytes:
        raise InputError(
            str(path),
            "inflated-size",
            f"its datasets declare {declared:,} bytes, more than the limit "
            f"{limits.max_inflated_bytes:,} (RESISTOMICS_LIMITS__MAX_INFLATED_BYTES)",
        )
    if declared > limits.inflation_floor_bytes and declared > limits.max_inflation_ratio * packed:
        raise InputError(
            str(path),
            "gzip-ratio",
            f"its datasets declare {declared:,} bytes in a {packed:,}-byte file "
            f"({declared / packed:,.0f}x; the limit is {limits.max_inflation_ratio:g}x past "
            f"{limits.inflation_floor_bytes:,} bytes): a compression bomb? If the file is "
            "genuine, raise RESISTOMICS_LIMITS__MAX_INFLATION_RATIO",
        )


def _check_h5_strings(path: Path, frame: pd.DataFrame, where: str) -> None:
    """Refuse (``field-length``) a name or text value longer than the field limit."""
    limit = current_limits().max_field_chars
    columns = [("index", frame.index.to_series())] + [
        (str(c), frame[c])
        for c in frame.columns
        if frame[c].dtype == object
        or pd.api.types.is_string_dtype(frame[c])
        or isinstance(frame[c].dtype, pd.CategoricalDtype)
    ]
    for name, values in columns:
        if isinstance(values.dtype, pd.CategoricalDtype):
            values = pd.Series(values.cat.categories)
        lengths = values.astype(str).str.len()
        if len(lengths) and int(lengths.max()) > limit:
            i = int(lengths.to_numpy().argmax())
            raise InputError(
                str(path),
                "field-length",
                f"{where} {name} value {i + 1} has {int(lengths.iloc[i]):,} characters; the "
                f"limit is {limit:,} (RESISTOMICS_LIMITS__MAX_FIELD_CHARS)",
                column=f"{where}.{name}",
            )


def _is_hdf5(path: Path) -> bool:
    """The HDF5 signature, at offset 0 or after a user block (512, 1024, ... bytes)."""
    with open_regular(path) as f:
        for offset in (0, 512, 1024, 2048, 4096):
            f.seek(offset)
            if f.read(8) == _HDF5_MAGIC:
                return True
    return False


@dataclass(frozen=True)
class _H5Matrix:
    """The matrix element of an h5ad, checked against obs and var before any block is read.

    ``indptr`` is the whole pointer array of a sparse matrix (one int per cell or gene),
    checked non-decreasing and consistent with ``indices``/``data``.
    """

    encoding: str
    shape: tuple[int, int]
    indptr: np.ndarray | None


def _check_h5_matrix(path: Path, elem: Any, where: str, n_obs: int, n_vars: int) -> _H5Matrix:
    import h5py

    if isinstance(elem, h5py.Group):
        encoding = str(elem.attrs.get("encoding-type", ""))
        if encoding not in _SPARSE_ENCODINGS:
            raise InputError(
                str(path),
                "h5ad-encoding",
                f"{where} has encoding-type {encoding!r}; this reader reads "
                "'csr_matrix', 'csc_matrix' and dense arrays",
            )
        missing = [k for k in ("data", "indices", "indptr") if k not in elem]
        if missing:
            raise InputError(str(path), "h5ad-layout", f"{where} lacks {', '.join(missing)}")
        shape = tuple(int(n) for n in elem.attrs.get("shape", ()))
        data = elem["data"]
    else:
        encoding = str(elem.attrs.get("encoding-type", "array"))
        if encoding != "array":
            raise InputError(
                str(path),
                "h5ad-encoding",
                f"{where} has encoding-type {encoding!r}, expected a numeric 'array'",
            )
        shape = tuple(int(n) for n in elem.shape)
        data = elem
    if len(shape) != 2:
        raise InputError(
            str(path),
            "h5ad-shape",
            f"{where} has {len(shape)} dimension(s) {shape}; a matrix has two (cells x genes)",
        )
    if data.dtype.kind not in "biuf":
        raise InputError(
            str(path),
            "h5ad-dtype",
            f"{where} holds {data.dtype} values ({'strings' if data.dtype.kind in 'OSU' else data.dtype.kind}), "
            "expected numbers",
        )
    if n_obs == 0:
        raise InputError(str(path), "not-empty", "obs has no cells")
    if n_vars == 0:
        raise InputError(str(path), "not-empty", "var has no genes")
    if shape != (n_obs, n_vars):
        raise InputError(
            str(path),
            "h5ad-shape",
            f"{where} is {shape[0]} x {shape[1]} but obs has {n_obs} rows and var {n_vars}",
        )
    if encoding == "array":
        return _H5Matrix(encoding, (n_obs, n_vars), None)
    major = n_obs if encoding == "csr_matrix" else n_vars
    indptr = np.asarray(elem["indptr"][()], dtype=np.int64)
    n_stored = len(elem["indices"])
    axis = "row (cell)" if encoding == "csr_matrix" else "column (gene)"
    if len(indptr) != major + 1 or indptr[0] != 0 or indptr[-1] != n_stored:
        raise InputError(
            str(path),
            "h5ad-indptr",
            f"{where}/indptr has {len(indptr)} entries from {indptr[0] if len(indptr) else '?'} "
            f"to {indptr[-1] if len(indptr) else '?'}; a {major}-{axis} matrix with "
            f"{n_stored} stored values needs {major + 1} from 0 to {n_stored}",
        )
    if len(elem["data"]) != n_stored:
        raise InputError(
            str(path),
            "h5ad-indptr",
            f"{where} has {len(elem['data'])} values but {n_stored} indices",
        )
    drops = np.flatnonzero(np.diff(indptr) < 0)
    if drops.size:
        i = int(drops[0])
        raise InputError(
            str(path),
            "h5ad-indptr",
            f"{where}/indptr decreases at {axis} {i} ({indptr[i]} then {indptr[i + 1]}): "
            "a damaged or hand-built sparse matrix",
        )
    return _H5Matrix(encoding, (n_obs, n_vars), indptr)


def _sparse_block(
    path: Path, elem: Any, where: str, m: _H5Matrix, a: int, b: int, names: pd.Index
) -> sp.csr_matrix | sp.csc_matrix:
    """Rows (CSR) or columns (CSC) ``a:b`` of a checked sparse matrix element."""
    assert m.indptr is not None
    lo, hi = int(m.indptr[a]), int(m.indptr[b])
    indices = np.asarray(elem["indices"][lo:hi], dtype=np.int64)
    data = np.asarray(elem["data"][lo:hi], dtype=np.float64)
    minor = m.shape[1] if m.encoding == "csr_matrix" else m.shape[0]
    bad = (indices < 0) | (indices >= minor)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        major = a + int(np.searchsorted(m.indptr[a : b + 1] - lo, k, side="right")) - 1
        axis = "gene" if m.encoding == "csr_matrix" else "cell"
        raise InputError(
            str(path),
            "h5ad-indices",
            f"{where}/indices holds {axis} index {indices[k]} outside 0..{minor - 1}",
            row=str(names[major]),
        )
    ptr = m.indptr[a : b + 1] - lo
    if m.encoding == "csr_matrix":
        return sp.csr_matrix((data, indices, ptr), shape=(b - a, minor))
    return sp.csc_matrix((data, indices, ptr), shape=(minor, b - a))


def _detect_h5ad(path: str) -> bool:
    return path.lower().endswith(".h5ad")


def _h5ad_log1p(f: Any) -> tuple[str, str] | None:
    """The scale scanpy's ``sc.pp.log1p`` declares in ``uns["log1p"]``, if any.

    ``log1p`` writes ``uns["log1p"] = {"base": base}`` (``None``, stored as an empty
    HDF5 value, for the natural log). Returns the scale DE uses for it and the base as
    text: natural -> ``log1p`` (scanpy's own fold-change rule), base 2 -> ``log2``
    (``log2(1 + x)``: the difference of means is the log2 fold change, as for log2
    CPM), any other base -> ``log`` (differences of means on the stored scale). An
    entry whose base is not a positive number other than 1 declares nothing.
    """
    import math

    import h5py

    entry = f.get("uns/log1p")
    if entry is None:
        return None
    raw = entry.get("base") if isinstance(entry, h5py.Group) else None
    value = None if raw is None or not isinstance(raw, h5py.Dataset) else raw[()]
    if value is None or isinstance(value, h5py.Empty):
        return "log1p", "e"
    try:
        base = float(np.asarray(value).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None
    if not math.isfinite(base) or base <= 0 or base == 1:
        return None
    if math.isclose(base, math.e):
        return "log1p", "e"
    if base == 2:
        return "log2", "2"
    return "log", f"{base:g}"


def read_h5ad(path: str | Path, ctx: ReadContext) -> MatrixSource:
    """AnnData ``.h5ad``: counts from ``layers["counts"]``, else ``raw.X``, else ``X``.

    Read in row blocks straight from the HDF5 file (CSR, CSC or dense), never loaded
    whole. With ``values="auto"`` (the default for h5ad) a matrix taken from ``X`` or
    ``raw`` is stored as counts only if every value is a whole number >= 0; a
    log-normalised ``X`` becomes the normalised-expression type. An ``X`` that scanpy's
    ``sc.pp.log1p`` marked (``uns["log1p"]``, with its ``base``) declares its scale
    (:attr:`MatrixSource.value_scale`), which the store records as ``value_scale``.

    The matrix is checked against obs and var before any block is read (two
    dimensions, numbers, the shape obs x var, a non-decreasing ``indptr``, indices
    in range per block). obs columns named like a reserved design column of the
    sample sheet (``phase``, ``subject_id``, ``timepoint``, ...; scanpy's cell-cycle
    scoring writes ``phase``) are kept as ``h5ad_<name>``: the design comes from the
    sample sheet, and ``details["renamed_obs_columns"]`` records the renaming.
    """
    import h5py

    path = Path(path)
    _refuse_directory(path, "h5ad")
    if path.stat().st_size == 0:
        raise InputError(str(path), "not-empty", "the file is empty")
    if not _is_hdf5(path):
        raise InputError(
            str(path),
            "h5ad-format",
            f"not an HDF5/h5ad file: it looks like {describe_content(path)}",
        )
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(
            str(path), "h5ad-format", f"not a readable HDF5/h5ad file ({exc})"
        ) from None
    try:
        _check_h5_declared_size(path, f)
        obs = _h5_frame(path, f, "obs")
        _check_h5_strings(path, obs, "obs")
        if "layers" in f and "counts" in f["layers"]:
            elem, where, var = f["layers/counts"], "layers/counts", _h5_frame(path, f, "var")
            default_mode: ValuesMode = "counts"
        elif "raw" in f and "X" in f["raw"]:
            elem, where, var = f["raw/X"], "raw/X", _h5_frame(path, f, "raw/var")
            default_mode = "auto"
        elif "X" in f:
            elem, where, var = f["X"], "X", _h5_frame(path, f, "var")
            default_mode = "auto"
        else:
            raise InputError(str(path), "h5ad-layout", "no X, raw or layers['counts'] matrix")
        _check_h5_strings(path, var, where.replace("X", "var").replace("layers/counts", "var"))
        matrix = _check_h5_matrix(path, elem, where, len(obs), len(var))
    except KeyError as exc:
        f.close()
        raise InputError(str(path), "h5ad-layout", f"missing element {exc}") from None
    except (InputError, OSError) as exc:
        f.close()
        if isinstance(exc, InputError):
            raise
        raise InputError(str(path), "h5ad-read", f"could not read the file ({exc})") from None
    sample_col = next((c for c in ("sample_id", "sample", "orig.ident") if c in obs.columns), None)
    if sample_col is not None:
        samples = obs[sample_col].astype(str).to_numpy()
    elif ctx.sample is not None:
        samples = np.full(len(obs), ctx.sample)
    else:
        f.close()
        raise InputError(
            str(path),
            "sample-mapping",
            "obs has no 'sample_id' (or 'sample') column; add one or pass --sample",
            column="obs",
        )
    try:
        check_registered(path, sorted(set(samples.tolist())), ctx.registered_samples)
    except InputError:
        f.close()
        raise
    obs_out = pd.DataFrame({"sample_id": samples}, index=pd.Index(obs.index.astype(str), dtype=str))
    renamed: dict[str, str] = {}
    for c in obs.columns:
        if c in ("sample_id",) or c == sample_col:
            continue
        name = str(c)
        if name.strip().lower().replace("-", "_").replace(" ", "_") in DESIGN_COLUMNS:
            name = f"h5ad_{name}"
            renamed[str(c)] = name
        obs_out[name] = obs[c].to_numpy()
    var_out = pd.DataFrame(index=pd.Index(var.index.astype(str), dtype=str))
    sym = next(
        (
            c
            for c in ("gene_symbols", "gene_symbol", "gene_name", "feature_name")
            if c in var.columns
        ),
        None,
    )
    if sym is not None:
        var_out["gene_symbol"] = var[sym].astype(str).to_numpy()
    n_obs = len(obs_out)
    encoding = matrix.encoding
    orientation: Literal["cells", "genes"] = "genes" if encoding == "csc_matrix" else "cells"
    mode: ValuesMode = ctx.values or default_mode
    details: dict[str, Any] = {"matrix": where, "encoding": encoding}
    if renamed:
        details["renamed_obs_columns"] = renamed
        details["note"] = (
            f"obs column(s) {', '.join(sorted(renamed))} collide with the sample sheet's "
            f"design columns and are kept as {', '.join(renamed[k] for k in sorted(renamed))}"
        )
    log1p = _h5ad_log1p(f) if where == "X" and mode != "counts" else None
    if log1p is not None:
        details["log1p_base"] = log1p[1]
    source = MatrixSource(
        fmt="h5ad",
        orientation=orientation,
        fixed=var_out if orientation == "cells" else obs_out,
        blocks=iter(()),
        values_mode=mode,
        details=details,
        value_scale=log1p[0] if log1p is not None else None,
    )

    def blocks() -> Iterator[tuple[Any, pd.DataFrame]]:
        try:
            if encoding == "csr_matrix":
                for a in range(0, n_obs, ctx.rows_per_block):
                    b = min(a + ctx.rows_per_block, n_obs)
                    m = _sparse_block(path, elem, where, matrix, a, b, obs_out.index)
                    source.tracker.see(m.data)
                    yield m, obs_out.iloc[a:b]
                    del m  # one block in memory at a time
            elif encoding == "csc_matrix":
                n_vars = len(var_out)
                for a in range(0, n_vars, ctx.genes_per_block):
                    b = min(a + ctx.genes_per_block, n_vars)
                    m = _sparse_block(path, elem, where, matrix, a, b, var_out.index)
                    source.tracker.see(m.data)
                    yield m.T, var_out.iloc[a:b]
                    del m  # one block in memory at a time
            else:
                for a in range(0, n_obs, ctx.rows_per_block):
                    b = min(a + ctx.rows_per_block, n_obs)
                    block = np.asarray(elem[a:b], dtype=np.float64)
                    source.tracker.see(block)
                    yield block, obs_out.iloc[a:b]
                    del block
        except OSError as exc:
            raise InputError(str(path), "h5ad-read", f"could not read {where} ({exc})") from None
        finally:
            f.close()

    source.blocks = blocks()
    return source
