"""Reading the files of a landed instrument folder, shared by the four spatial readers.

Every check here raises one :class:`~resistomics.errors.InputError` naming the file, the
place in it (line, row or column) and the rule: ``required-file``, ``required-columns``,
``parquet`` (truncated or not Parquet), ``numeric-values``, ``finite-coordinates``,
``integer-counts``, ``feature-type``, ``cell-in-metadata``, ``tenx-matrix``,
``unique-cells`` (a cell ID twice in a file) and ``transcripts-cells`` (a transcript
naming a cell the dataset does not have). Text files go through
:func:`~resistomics._text_files.open_checked_text` (encoding, line and field bounds, a cut
last row refused).

The last two are also ``spatial.cells`` expectations, which check every stored version
(a SpatialData store's table has no file lines to name); a reader refuses them first
because it can still say which file and line hold the duplicate or the stray transcript,
and a file refused while it is read leaves no quarantined version in the catalog.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import scipy.sparse as sp

from resistomics._text_files import open_checked_text
from resistomics.errors import InputError
from resistomics.modalities.spatial._raw import FEATURE_TYPES

__all__ = [
    "TENX_FEATURE_TYPES",
    "align_cells",
    "check_finite",
    "check_integer_counts",
    "check_labels_column",
    "check_transcript_cells",
    "check_unique_ids",
    "feature_types",
    "find_file",
    "numeric_column",
    "read_csv_table",
    "read_parquet",
    "read_tenx_matrix",
    "require_columns",
    "require_file",
    "section_name",
]

#: 10x ``feature_type`` values (Xenium, Space Ranger) and the kind each is stored as.
TENX_FEATURE_TYPES: dict[str, str] = {
    "Gene Expression": "gene",
    "Negative Control Probe": "negative_control_probe",
    "Negative Control Codeword": "negative_control_codeword",
    "Genomic Control": "genomic_control",
    "Unassigned Codeword": "unassigned_codeword",
    "Deprecated Codeword": "unassigned_codeword",
    "Blank Codeword": "blank",
}
assert set(TENX_FEATURE_TYPES.values()) <= set(FEATURE_TYPES)


def section_name(folder: Path, section: str | None) -> str:
    """The section of a single-section folder: the context's, else the folder's name."""
    return section if section else folder.resolve().name


def find_file(folder: Path, *names: str) -> Path | None:
    """The first of ``names`` (each also tried with ``.gz``; glob patterns allowed) that
    exists in ``folder``."""
    for name in names:
        if any(c in name for c in "*?["):
            hits = sorted(folder.glob(name)) + sorted(folder.glob(f"{name}.gz"))
            if hits:
                return hits[0]
            continue
        for cand in (folder / name, folder / f"{name}.gz"):
            if cand.exists():
                return cand
    return None


def require_file(folder: Path, platform: str, *names: str) -> Path:
    """:func:`find_file` or ``required-file`` naming the folder and what it lacks."""
    found = find_file(folder, *names)
    if found is None:
        raise InputError(
            str(folder),
            "required-file",
            f"a {platform} output folder needs {' or '.join(names)}, which is not there",
        )
    return found


def require_columns(path: Path, have: Iterable[str], need: Sequence[str]) -> None:
    """``required-columns`` naming the first missing column of ``need``."""
    present = set(have)
    missing = [c for c in need if c not in present]
    if missing:
        raise InputError(
            str(path),
            "required-columns",
            f"missing column {missing[0]!r}"
            + (f" (and {', '.join(map(repr, missing[1:]))})" if len(missing) > 1 else "")
            + f"; found {', '.join(sorted(present)[:8])}",
            column=missing[0],
        )


def read_csv_table(
    path: Path,
    *,
    required: Sequence[str] = (),
    strings: Sequence[str] = (),
    id_first: bool = False,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """A comma-separated table with a header, every row as many fields as the header.

    ``strings`` are read as text (IDs); the other columns as pandas infers them (check
    them with :func:`numeric_column`). A first header cell that is empty (pandas' index
    column, as MERSCOPE writes) is named ``""``.
    """
    handle = open_checked_text(path)
    try:
        if names is not None:
            header = list(names)
        else:
            first = handle.readline()
            if not first.strip():
                raise InputError(str(path), "not-empty", "the file is empty", line=1)
            header = next(csv.reader([first.rstrip("\n")]))
            handle.check_field_lengths(header, line=1)
        require_columns(path, header, required)
        if len(set(header)) != len(header):
            dup = next(c for c in header if header.count(c) > 1)
            raise InputError(str(path), "unique-columns", f"column {dup!r} appears twice", line=1)
        handle.expect_fields(len(header), ",")
        dtypes = {c: str for c in strings if c in header}
        if id_first:
            dtypes[header[0]] = str
        frame = pd.read_csv(
            handle, header=None, names=header, dtype=dtypes, engine="c", keep_default_na=True
        )
    except pd.errors.EmptyDataError:
        frame = pd.DataFrame({c: pd.Series(dtype=object) for c in header})
    except pd.errors.ParserError as exc:
        raise InputError(str(path), "field-count", str(exc).strip().splitlines()[-1]) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(
            str(path), "gzip-integrity", f"the compressed stream is damaged or cut ({exc})"
        ) from None
    finally:
        handle.close()
    return frame


def numeric_column(
    path: Path, frame: pd.DataFrame, column: str, *, line_offset: int = 2
) -> np.ndarray:
    """``frame[column]`` as float64, or ``numeric-values`` naming the first value that is
    not a number (``line_offset``: the file line of the frame's first row)."""
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        return raw.to_numpy(dtype=np.float64)
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna() & raw.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            str(path),
            "numeric-values",
            f"value {raw.iloc[i]!r} is not a number",
            line=i + line_offset,
            column=column,
        )
    return num.to_numpy(dtype=np.float64)


def check_finite(
    path: Path,
    values: np.ndarray,
    column: str,
    ids: Sequence[str] | None = None,
    *,
    line_offset: int | None = 2,
) -> None:
    """``finite-coordinates``: every coordinate a finite number (not NaN, not missing)."""
    bad = ~np.isfinite(values)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = float(values[i])
        shown = "missing or NaN" if np.isnan(value) else repr(value)
        raise InputError(
            str(path),
            "finite-coordinates",
            f"coordinate {shown} is not a finite number ({int(bad.sum())} such)",
            line=None if line_offset is None else i + line_offset,
            row=None if ids is None else str(ids[i]),
            column=column,
        )


def check_integer_counts(path: Path, values: np.ndarray, *, where: str = "count") -> None:
    """``integer-counts``: every count a finite, non-negative whole number."""
    bad = ~np.isfinite(values) | (values < 0) | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise InputError(
            str(path),
            "integer-counts",
            f"{where} {float(values.ravel()[i])!r} is not a non-negative integer "
            f"({int(bad.sum())} such)",
        )


def check_labels_column(path: Path, cells: pd.DataFrame, column: str | None) -> None:
    """``labels-column``: the cell-type labels column the user named is in the cells."""
    if column is not None and column not in cells.columns:
        raise InputError(
            str(path),
            "labels-column",
            f"the cell-type labels column {column!r} is not in the cell metadata "
            f"(columns: {', '.join(map(str, cells.columns[:10]))})",
            column=column,
        )


def check_unique_ids(
    path: Path,
    ids: Sequence[str] | np.ndarray,
    *,
    line_offset: int | None = 2,
    rows: np.ndarray | None = None,
    column: str | None = None,
) -> None:
    """``unique-cells``: each cell ID once in the file.

    Two rows of one ID would become one cell of the store with the counts or the
    coordinates of either. ``line_offset``: the file line of ``ids[0]`` (None for a file
    without lines, whose rows are then counted from 0); ``rows``: the positions of the
    rows that are cells (CosMx's background rows are not), default all.
    """
    where = np.arange(len(ids)) if rows is None else np.asarray(rows, dtype=np.int64)
    index = pd.Index(np.asarray(ids, dtype=object)[where])
    dup = index.duplicated(keep="first")
    if not dup.any():
        return
    j = int(np.flatnonzero(dup)[0])
    first = int(where[int(np.flatnonzero(index == index[j])[0])])
    i = int(where[j])
    n = int(index.duplicated(keep=False).sum())
    if line_offset is None:
        at = f"rows {first} and {i}, counted from 0"
    else:
        at = f"lines {first + line_offset} and {i + line_offset}"
    raise InputError(
        str(path),
        "unique-cells",
        f"cell ID {index[j]!r} appears more than once ({at}; {n} rows share a duplicated ID)",
        line=None if line_offset is None else i + line_offset,
        row=str(index[j]),
        column=column,
    )


def check_transcript_cells(
    path: Path,
    cell_ids: pa.ChunkedArray | pa.Array,
    cells: Sequence[str],
    *,
    unassigned: str,
    line_offset: int | None = 2,
    column: str = "cell_id",
) -> None:
    """``transcripts-cells``: every assigned transcript (``cell_ids`` not null) names one
    of ``cells``. ``unassigned``: how the platform marks a transcript in no cell (for
    the message); ``line_offset`` as :func:`check_unique_ids`."""
    known = pa.array(np.asarray(cells, dtype=object), pa.string())
    ids = pc.cast(cell_ids, pa.string())
    stray = pc.and_(pc.is_valid(ids), pc.invert(pc.is_in(ids, value_set=known)))
    n = int(pc.sum(stray).as_py() or 0)
    if n == 0:
        return
    i = int(pc.index(stray, True).as_py())
    value = ids[i].as_py()
    at = "" if line_offset is not None else f" (row {i}, counted from 0)"
    raise InputError(
        str(path),
        "transcripts-cells",
        f"a transcript{at} is assigned to cell {value!r}, which is not a cell of the "
        f"dataset ({n} such transcript{'s' if n > 1 else ''}; {unassigned} marks a "
        "transcript in no cell)",
        line=None if line_offset is None else i + line_offset,
        row=str(value),
        column=column,
    )


def feature_types(path: Path, raw: Sequence[str], mapping: Mapping[str, str]) -> list[str]:
    """Each platform feature type as its :data:`FEATURE_TYPES` kind, or ``feature-type``."""
    out = []
    for value in raw:
        kind = mapping.get(value)
        if kind is None:
            raise InputError(
                str(path),
                "feature-type",
                f"feature type {value!r} is not one this reader knows "
                f"({', '.join(sorted(mapping))})",
            )
        out.append(kind)
    return out


def read_parquet(path: Path, *, required: Sequence[str] = ()) -> pa.Table:
    """A Parquet file whole, or ``parquet`` (truncated, damaged or not Parquet)."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        # pyarrow names the file again ("... source '/the/path': Parquet magic bytes ...")
        reason = reason.replace(f" '{path}'", "")
        raise InputError(
            str(path), "parquet", f"cannot be read as Parquet, truncated or damaged? ({reason})"
        ) from None
    require_columns(path, table.column_names, required)
    return table


def align_cells(
    matrix_path: Path, metadata_path: Path, barcodes: Sequence[str], metadata_ids: Sequence[str]
) -> np.ndarray:
    """For each matrix row, its metadata row (first of equal IDs); ``cell-in-metadata``
    naming the first matrix cell the metadata lacks."""
    meta = pd.Index(np.asarray(metadata_ids, dtype=object))
    if len(meta) == len(barcodes) and bool((meta == np.asarray(barcodes, dtype=object)).all()):
        return np.arange(len(barcodes))
    first = pd.Series(np.arange(len(meta)), index=meta)
    first = first[~first.index.duplicated()]
    where = first.reindex(pd.Index(np.asarray(barcodes, dtype=object)))
    missing = where.isna().to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(
            str(matrix_path),
            "cell-in-metadata",
            f"cell {barcodes[i]!r} is in the count matrix but not in {metadata_path.name} "
            f"({int(missing.sum())} such)",
            row=str(barcodes[i]),
        )
    return where.to_numpy(dtype=np.int64)


# -- 10x feature-barcode matrix (Xenium, Space Ranger) -----------------------------------


def read_tenx_matrix(path: Path) -> tuple[list[str], sp.csr_matrix, pd.DataFrame]:
    """A 10x feature-barcode matrix, HDF5 (``*.h5``) or Matrix Market directory, each
    barcode once (``unique-cells``).

    Returns the barcodes, the ``(n_barcodes, n_features)`` CSR counts and the features
    (index the feature name, columns ``gene_id`` and ``feature_type`` as 10x writes it).
    Layout: 10x Genomics, "Feature-Barcode Matrices" (HDF5 group ``matrix``: ``barcodes``,
    ``data``, ``indices``, ``indptr``, ``shape``, ``features/{id,name,feature_type}``; MEX:
    ``matrix.mtx``, ``features.tsv``, ``barcodes.tsv``, each optionally gzipped).
    """
    if path.is_dir():
        return _read_mex(path)
    return _read_h5(path)


def _read_h5(path: Path) -> tuple[list[str], sp.csr_matrix, pd.DataFrame]:
    import h5py

    def text(values: np.ndarray) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    try:
        with h5py.File(path, "r") as f:
            g = f["matrix"]
            barcodes = text(g["barcodes"][()])
            data, indices, indptr = g["data"][()], g["indices"][()], g["indptr"][()]
            n_features, n_barcodes = (int(v) for v in g["shape"][()])
            feats = g["features"]
            ids = text(feats["id"][()])
            names = text(feats["name"][()]) if "name" in feats else ids
            kinds = text(feats["feature_type"][()])
    except (OSError, KeyError, ValueError, TypeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            str(path),
            "tenx-matrix",
            f"not a readable 10x feature-barcode HDF5 matrix (truncated or damaged? {reason})",
        ) from None
    if len(indptr) != n_barcodes + 1 or len(barcodes) != n_barcodes or len(ids) != n_features:
        raise InputError(
            str(path),
            "tenx-matrix",
            f"shape {n_features} x {n_barcodes} disagrees with {len(ids)} features, "
            f"{len(barcodes)} barcodes and {len(indptr) - 1} matrix columns",
        )
    check_unique_ids(path, barcodes, line_offset=None)
    values = np.asarray(data)
    check_integer_counts(path, values.astype(np.float64, copy=False))
    try:
        # stored features x barcodes, column-compressed: the transpose is CSR
        counts = sp.csc_matrix((values, indices, indptr), shape=(n_features, n_barcodes)).T.tocsr()
    except ValueError as exc:
        raise InputError(str(path), "tenx-matrix", f"inconsistent sparse arrays ({exc})") from None
    genes = pd.DataFrame(
        {"gene_id": ids, "feature_type": kinds}, index=pd.Index(names, dtype=str, name="feature")
    )
    return barcodes, counts.astype(np.int64), genes


def _read_mex(folder: Path) -> tuple[list[str], sp.csr_matrix, pd.DataFrame]:
    import scipy.io

    matrix = require_file(folder, "10x Matrix Market", "matrix.mtx")
    features = require_file(folder, "10x Matrix Market", "features.tsv", "genes.tsv")
    barcodes_file = require_file(folder, "10x Matrix Market", "barcodes.tsv")
    feat = _read_tsv(features)
    barcodes = _read_tsv(barcodes_file)[0].tolist()
    check_unique_ids(barcodes_file, barcodes, line_offset=1)
    try:
        opener = gzip.open if matrix.name.endswith(".gz") else open
        with opener(matrix, "rb") as handle:
            mtx = scipy.io.mmread(handle)
    except (ValueError, OSError, EOFError, zlib.error, IndexError) as exc:
        raise InputError(
            str(matrix), "tenx-matrix", f"not a readable Matrix Market file ({exc})"
        ) from None
    coo = sp.coo_matrix(mtx)
    if coo.shape != (len(feat), len(barcodes)):
        raise InputError(
            str(matrix),
            "tenx-matrix",
            f"matrix is {coo.shape[0]} x {coo.shape[1]} but {features.name} has {len(feat)} "
            f"rows and {barcodes_file.name} {len(barcodes)}",
        )
    check_integer_counts(matrix, coo.data.astype(np.float64, copy=False))
    kinds = feat[2].tolist() if feat.shape[1] > 2 else ["Gene Expression"] * len(feat)
    names = feat[1].tolist() if feat.shape[1] > 1 else feat[0].tolist()
    genes = pd.DataFrame(
        {"gene_id": feat[0].tolist(), "feature_type": kinds},
        index=pd.Index(names, dtype=str, name="feature"),
    )
    return barcodes, coo.T.tocsr().astype(np.int64), genes


def _read_tsv(path: Path) -> pd.DataFrame:
    handle = open_checked_text(path)
    try:
        first = handle.readline()
        if not first.strip():
            raise InputError(str(path), "not-empty", "the file is empty", line=1)
        n = first.count("\t") + 1
        handle.expect_fields(n, "\t")
        head = pd.DataFrame([first.rstrip("\n").split("\t")])
        try:
            rest = pd.read_csv(
                handle,
                sep="\t",
                header=None,
                names=list(range(n)),
                dtype=str,
                na_filter=False,
                quoting=3,
            )
        except pd.errors.EmptyDataError:
            rest = pd.DataFrame(columns=list(range(n)))
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InputError(
            str(path), "gzip-integrity", f"the compressed stream is damaged or cut ({exc})"
        ) from None
    finally:
        handle.close()
    return pd.concat([head, rest], ignore_index=True)
