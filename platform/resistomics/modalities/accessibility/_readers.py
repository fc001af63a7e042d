"""Readers of peak count matrices: Cell Ranger ATAC/ARC directories and bulk peak tables.

Both stream their matrix in blocks (barcode blocks of a Matrix Market file, peak blocks
of a table) and check every peak with :func:`~._peaks.checked_peaks` before a block is
handed on, so a bad coordinate is refused with its file and line at read time. Text is
read through :func:`resistomics._text_files.open_checked_text` (encoding, line length,
field count); the Matrix Market entries through :mod:`resistomics.modalities._mtx`,
the code expression's 10x reader uses.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics._text_files import describe_content, open_checked_text
from resistomics.errors import InputError
from resistomics.modalities._checks import check_registered
from resistomics.modalities._mtx import (
    find_file,
    gzip_error,
    mtx_barcode_blocks,
    open_mtx,
    read_small_tsv,
)
from resistomics.modalities.accessibility._peaks import checked_peaks, read_peak_bed
from resistomics.modalities.accessibility._source import (
    AccessibilityReadContext,
    PeakMatrixSource,
    map_barcodes,
)

__all__ = [
    "detect_narrowpeak",
    "detect_peak_h5",
    "detect_peak_matrix",
    "detect_peak_table",
    "read_narrowpeak",
    "read_peak_h5",
    "read_peak_matrix",
    "read_peak_table",
]

# -- Cell Ranger ATAC / ARC peak-barcode matrix ---------------------------------------------


def _matrix_dir(path: Path) -> Path:
    """The matrix folder: ``path`` itself or Cell Ranger's ``outs/filtered_peak_bc_matrix``."""
    for sub in ("filtered_peak_bc_matrix", "filtered_feature_bc_matrix"):
        if (path / sub).is_dir() and find_file(path / sub, "matrix.mtx") is not None:
            return path / sub
    return path


def detect_peak_matrix(path: str) -> bool:
    """A folder holding ``matrix.mtx[.gz]`` and ``peaks.bed[.gz]`` (Cell Ranger ATAC), or
    Cell Ranger's ``outs/`` holding ``filtered_peak_bc_matrix/``."""
    p = Path(path)
    if not p.is_dir():
        return False
    d = _matrix_dir(p)
    return find_file(d, "matrix.mtx") is not None and find_file(d, "peaks.bed") is not None


def read_peak_matrix(path: str | Path, ctx: AccessibilityReadContext) -> PeakMatrixSource:
    """A Cell Ranger ATAC ``filtered_peak_bc_matrix/`` (or ARC ``filtered_feature_bc_matrix/``).

    ``matrix.mtx[.gz]`` (peaks x barcodes, coordinate format) with ``peaks.bed[.gz]``
    (BED3, 0-based) and ``barcodes.tsv[.gz]``; an ARC folder has ``features.tsv[.gz]``
    instead, whose ``Peaks`` rows (id, name, type, chrom, start, end) are kept and its
    gene-expression rows left to the expression modality. The folder may be Cell
    Ranger's ``outs/``. Barcodes map to samples by :func:`~._source.map_barcodes`.
    Entries stream into barcode blocks through the shared Matrix Market reader, so the
    file may be in any order and memory stays one block.

    Raises
    ------
    InputError
        ``10x-layout`` for a missing file, ``dimensions`` when the matrix does not match
        the peaks and barcodes, the peak rules (``peak-interval``,
        ``non-negative-coordinates``, ``known-contigs``, ``within-contig``,
        ``unique-peaks``) with the line of ``peaks.bed``, ``registered-samples``, and the
        Matrix Market reader's rules (``gzip-integrity``, ``field-count``, ...).
    """
    top = Path(path)
    if not top.is_dir():
        raise InputError(
            str(top),
            "format",
            "a peak-matrix reader needs a directory holding matrix.mtx, peaks.bed and "
            f"barcodes.tsv, but this is {describe_content(top)}",
        )
    directory = _matrix_dir(top)
    matrix = find_file(directory, "matrix.mtx")
    barcodes = find_file(directory, "barcodes.tsv")
    bed = find_file(directory, "peaks.bed")
    features = find_file(directory, "features.tsv")
    for name, p in (
        ("matrix.mtx", matrix),
        ("barcodes.tsv", barcodes),
        ("peaks.bed or features.tsv", bed or features),
    ):
        if p is None:
            raise InputError(str(directory), "10x-layout", f"{name} (optionally .gz) is missing")
    assert matrix is not None and barcodes is not None
    if bed is not None:
        peaks = read_peak_bed(bed, ctx.genome)
        keep = np.ones(len(peaks), dtype=bool)
        peaks_file = bed
    else:
        assert features is not None
        feat = read_small_tsv(features, 6)
        keep = (feat[2] == "Peaks").to_numpy()
        if not keep.any():
            raise InputError(
                str(features),
                "10x-features",
                "no 'Peaks' feature in the third column: not an accessibility matrix",
                column="3",
            )
        rows = np.flatnonzero(keep)
        peaks = checked_peaks(
            features,
            feat[3].iloc[rows],
            feat[4].iloc[rows],
            feat[5].iloc[rows],
            lines=rows + 1,
            genome=ctx.genome,
            name=feat[0].iloc[rows],
        )
        peaks_file = features
    bc = read_small_tsv(barcodes, 1)
    samples = map_barcodes(
        barcodes,
        bc[0].to_numpy(dtype=object),
        ctx,
        second_column=bc[1].to_numpy(dtype=object) if bc.shape[1] >= 2 else None,
        directory_name=top.name,
    )
    obs = pd.DataFrame(
        {"sample_id": samples}, index=pd.Index(bc[0].to_numpy(dtype=object), dtype=str)
    )
    handle, header = open_mtx(matrix)
    n_features = len(keep)
    if header.n_rows != n_features or header.n_cols != len(bc):
        handle.close()
        raise InputError(
            str(matrix),
            "dimensions",
            f"matrix is {header.n_rows} peaks x {header.n_cols} barcodes but "
            f"{peaks_file.name} has {n_features} rows and {barcodes.name} {len(bc)}",
            line=header.lineno,
        )
    feature_map = np.full(n_features, -1, dtype=np.int64)
    feature_map[keep] = np.arange(int(keep.sum()))
    source = PeakMatrixSource(
        fmt="peak-matrix",
        orientation="cells",
        fixed=peaks,
        blocks=iter(()),
        details={"mtx_field": header.field, "peaks_file": peaks_file.name},
    )

    def blocks() -> Iterator[tuple[object, pd.DataFrame]]:
        for lo, hi, m in mtx_barcode_blocks(
            matrix,
            handle,
            header,
            feature_map=feature_map,
            barcodes_per_block=ctx.cells_per_block,
            scratch=ctx.scratch,
            see=source.see,
        ):
            yield m, obs.iloc[lo:hi]

    source.blocks = blocks()  # type: ignore[assignment]
    return source


# -- bulk peak count tables ---------------------------------------------------------------

_TABLE_SUFFIXES = (".tsv", ".tsv.gz", ".txt", ".txt.gz", ".counts", ".csv", ".csv.gz")
#: featureCounts' annotation columns (SAF coordinates: 1-based, inclusive)
_FEATURECOUNTS = ("geneid", "chr", "start", "end", "strand", "length")
_BED_COLUMNS = ("chrom", "chr", "contig", "seqnames", "#chrom", "#chr")
_NAME_COLUMNS = ("name", "peak", "peak_id", "id", "geneid")


def detect_peak_table(path: str) -> bool:
    """A count table file (by suffix); the header is checked when it is read."""
    return os.path.isfile(path) and path.lower().endswith(_TABLE_SUFFIXES)


def _sample_name(column: str) -> str:
    """featureCounts names columns by BAM path: keep the sample part."""
    base = os.path.basename(column.strip())
    for suffix in (".sorted.bam", ".bam", ".sam", ".cram"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def read_peak_table(path: str | Path, ctx: AccessibilityReadContext) -> PeakMatrixSource:
    """A bulk peak count table, peaks x samples: featureCounts output or a BED with counts.

    featureCounts (``# Program:featureCounts`` line, then ``Geneid Chr Start End Strand
    Length <bam>...``): coordinates are SAF (1-based, inclusive) and become BED ones;
    BAM paths become sample names. A BED with counts: a header whose first three
    columns are ``chrom start end`` (or ``chr``/``contig``/``seqnames``, ``#``
    allowed), an optional ``name`` column, then one count column per registered
    sample. Tab-separated (comma for ``.csv``), optionally gzip.

    Raises
    ------
    InputError
        ``peak-table-header`` for a header that is neither, ``registered-samples`` for a
        column that is not a registered sample, ``field-count`` for a ragged row,
        ``numeric-values`` for a count that is not a number, ``gzip-integrity``, and the
        peak rules with their line.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), "format", "the peak-table reader needs a file")
    if path.stat().st_size == 0:
        raise InputError(str(path), "not-empty", "the file is empty")
    sep = "," if ".csv" in path.name.lower() else "\t"
    handle = open_checked_text(path)
    try:
        line = handle.readline()
        lineno = 1
        while line.startswith("# ") or line.startswith("# Program") or line.startswith("##"):
            line, lineno = handle.readline(), lineno + 1
        header = [h.strip() for h in line.rstrip("\r\n").split(sep)]
        handle.check_field_lengths(header, line=lineno)
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
        handle.close()
        raise gzip_error(path, exc, line=1) from None
    except InputError:
        handle.close()
        raise
    lower = [h.lower() for h in header]
    name_col: int | None
    if lower[: len(_FEATURECOUNTS)] == list(_FEATURECOUNTS):
        kind, n_annotation, one_based = "featurecounts", len(_FEATURECOUNTS), True
        coords, name_col = (1, 2, 3), 0
    elif len(lower) >= 3 and lower[0] in _BED_COLUMNS and lower[1:3] == ["start", "end"]:
        kind, one_based = "bed", False
        has_name = len(lower) > 3 and lower[3] in _NAME_COLUMNS
        n_annotation = 4 if has_name else 3
        coords, name_col = (0, 1, 2), (3 if has_name else None)
    else:
        handle.close()
        raise InputError(
            str(path),
            "peak-table-header",
            "expected featureCounts columns (Geneid Chr Start End Strand Length ...) or a "
            f"BED header (chrom start end [name] <samples>), found {header[:6]}",
            line=lineno,
        )
    columns = header[n_annotation:]
    if not columns:
        handle.close()
        raise InputError(str(path), "sample-columns", "no sample columns", line=lineno)
    samples = [_sample_name(c) for c in columns]
    dup = next((s for s in samples if samples.count(s) > 1), None)
    if dup is not None:
        handle.close()
        raise InputError(
            str(path), "unique-columns", f"sample {dup!r} has two columns", line=lineno
        )
    try:
        check_registered(path, samples, ctx.registered_samples, kind="column")
    except InputError:
        handle.close()
        raise
    handle.expect_fields(len(header), sep)
    obs = pd.DataFrame({"sample_id": samples}, index=pd.Index(samples, dtype=str))
    source = PeakMatrixSource(
        fmt="peak-table",
        orientation="genes",
        fixed=obs,
        blocks=iter(()),
        details={"table": kind, "coordinates": "SAF 1-based" if one_based else "BED 0-based"},
    )
    first_line = lineno + 1

    def blocks() -> Iterator[tuple[np.ndarray, pd.DataFrame]]:
        done = 0
        seen: set[str] = set()
        try:
            reader = pd.read_csv(
                handle,
                sep=sep,
                header=None,
                names=list(range(len(header))),
                dtype=str,
                chunksize=max(256, ctx.peaks_per_block),
                na_filter=False,
                engine="c",
                quoting=3,
            )
            for chunk in reader:
                lines = np.arange(len(chunk)) + first_line + done
                peaks = checked_peaks(
                    path,
                    chunk[coords[0]],
                    chunk[coords[1]],
                    chunk[coords[2]],
                    lines=lines,
                    genome=ctx.genome,
                    name=chunk[name_col] if name_col is not None else None,
                    one_based=one_based,
                )
                again = peaks.index.isin(list(seen))
                if again.any():
                    i = int(np.flatnonzero(again)[0])
                    raise InputError(
                        str(path),
                        "unique-peaks",
                        f"peak {peaks.index[i]} appears twice",
                        line=int(lines[i]),
                    )
                seen.update(peaks.index)
                values = np.empty((len(chunk), len(columns)), dtype=np.float64)
                for j in range(len(columns)):
                    raw = chunk[n_annotation + j].str.strip()
                    num = pd.to_numeric(raw, errors="coerce")
                    bad = num.isna() & ~raw.str.upper().isin(["NA", "NAN"])
                    if bad.any():
                        i = int(np.flatnonzero(bad.to_numpy())[0])
                        raise InputError(
                            str(path),
                            "numeric-values",
                            f"count {raw.iloc[i]!r} is not a number",
                            line=int(lines[i]),
                            column=columns[j],
                        )
                    values[:, j] = num.to_numpy(dtype=np.float64)
                source.see(values)
                done += len(chunk)
                yield values, peaks
        except pd.errors.ParserError as exc:
            raise InputError(str(path), "field-count", str(exc).strip().splitlines()[-1]) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise gzip_error(path, exc, line=first_line + done) from None
        finally:
            handle.close()
        if done == 0:
            raise InputError(str(path), "not-empty", "the table has a header but no peaks")

    source.blocks = blocks()  # type: ignore[assignment]
    return source


# -- MACS narrowPeak peak sets --------------------------------------------------------------


def detect_narrowpeak(path: str) -> bool:
    p = path.lower()
    return os.path.isfile(path) and p.endswith(
        (".narrowpeak", ".narrowpeak.gz", "_peaks.bed", "_peaks.bed.gz")
    )


def read_narrowpeak(path: str | Path, ctx: AccessibilityReadContext) -> pd.DataFrame:
    """A MACS2/3 narrowPeak (or BED3+) peak set: the checked peak table, sorted by
    contig (file order of first appearance) and start.

    Raises
    ------
    InputError
        As :func:`~._peaks.read_peak_bed`.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(str(path), "format", "the narrowpeak reader needs a file")
    peaks = read_peak_bed(path, ctx.genome)
    order = pd.Categorical(peaks["contig"], categories=pd.unique(peaks["contig"]))
    return peaks.assign(_c=order.codes).sort_values(["_c", "start"]).drop(columns="_c")


# -- Cell Ranger ATAC / ARC HDF5 peak-barcode matrix --------------------------------------

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: The datasets a Cell Ranger feature-barcode HDF5 file holds under ``/matrix``.
_H5_DATASETS = (
    "data",
    "indices",
    "indptr",
    "shape",
    "barcodes",
    "features/id",
    "features/feature_type",
)


def detect_peak_h5(path: str) -> bool:
    """A ``*.h5`` file that starts with the HDF5 signature (Cell Ranger's
    ``filtered_peak_bc_matrix.h5``; the reader checks its layout)."""
    p = Path(path)
    try:
        if not (p.is_file() and p.name.lower().endswith(".h5")):
            return False
        with open(p, "rb") as f:
            return f.read(8) == _HDF5_SIGNATURE
    except OSError:
        return False


def _h5_text(values: np.ndarray) -> np.ndarray:
    return np.array([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=object)


def read_peak_h5(path: str | Path, ctx: AccessibilityReadContext) -> PeakMatrixSource:
    """A Cell Ranger ATAC 1.x/2.x ``filtered_peak_bc_matrix.h5`` or ARC
    ``filtered_feature_bc_matrix.h5``.

    Layout (10x Genomics, "Feature-Barcode Matrices", HDF5): group ``/matrix`` with the
    peaks x barcodes matrix column-compressed (``data``, ``indices``, ``indptr``,
    ``shape``), ``barcodes`` and ``features/{id, name, feature_type, ...}``; a peak's
    ``id`` is ``contig:start-end`` (BED coordinates). Only ``Peaks`` features are kept
    (an ARC file's ``Gene Expression`` rows are the expression modality's). Barcodes map
    to samples as in :func:`read_peak_matrix` (the file name's first dot-separated part
    standing for the folder name). The matrix is read one barcode block at a time (the
    block's slice of ``data`` and ``indices``), so memory stays one block.

    Raises
    ------
    InputError
        ``hdf5`` (not an HDF5 file or unreadable), ``10x-h5-layout`` (a dataset of
        ``/matrix`` missing), ``dimensions`` (``shape`` against the barcodes, features,
        ``indptr``, ``data`` and ``indices``), ``10x-features`` (no ``Peaks`` feature),
        ``peak-id`` (an id that is not ``contig:start-end``, with its row), the peak
        rules of :func:`~._peaks.checked_peaks` (the row given as ``line``) and the
        barcode rules of :func:`~._source.map_barcodes`.
    """
    import h5py

    file = Path(path)
    where = str(file)
    try:
        handle = h5py.File(file, "r")
    except OSError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            where, "hdf5", f"not a readable HDF5 file ({describe_content(file)}; {reason})"
        ) from None
    try:
        group = handle.get("matrix")
        if not isinstance(group, h5py.Group):
            raise InputError(where, "10x-h5-layout", "no /matrix group: not a 10x HDF5 matrix")
        for name in _H5_DATASETS:
            if not isinstance(group.get(name), h5py.Dataset):
                raise InputError(where, "10x-h5-layout", f"/matrix/{name} is missing")
        try:
            shape = [int(v) for v in group["shape"][()]]
            barcodes = _h5_text(group["barcodes"][()])
            ids = _h5_text(group["features/id"][()])
            kinds = _h5_text(group["features/feature_type"][()])
            indptr = np.asarray(group["indptr"][()], dtype=np.int64)
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(where, "hdf5", f"cannot read /matrix ({exc})") from None
        n_data, n_indices = group["data"].shape[0], group["indices"].shape[0]
        if (
            len(shape) != 2
            or shape[0] != len(ids)
            or shape[1] != len(barcodes)
            or len(kinds) != len(ids)
            or indptr.shape[0] != shape[1] + 1
            or n_data != n_indices
            or (indptr.size and (indptr[0] != 0 or indptr[-1] != n_data))
            or bool((np.diff(indptr) < 0).any())
        ):
            raise InputError(
                where,
                "dimensions",
                f"/matrix/shape {shape} disagrees with {len(ids)} features, {len(barcodes)} "
                f"barcodes, {indptr.shape[0]} indptr entries (columns + 1, from 0 to the "
                f"{n_data} values) and {n_indices} indices",
            )
        keep = kinds == "Peaks"
        if not keep.any():
            raise InputError(
                where,
                "10x-features",
                "no 'Peaks' in /matrix/features/feature_type: not an accessibility matrix",
            )
        rows = np.flatnonzero(keep)
        parts = pd.Series(ids[rows]).str.extract(r"^(.+):(\d+)-(\d+)$")
        bad = parts[0].isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                where,
                "peak-id",
                f"peak id {ids[rows[i]]!r} at /matrix/features/id row {rows[i] + 1} is not "
                "contig:start-end",
                row=str(int(rows[i]) + 1),
            )
        peaks = checked_peaks(
            file,
            parts[0],
            parts[1],
            parts[2],
            lines=rows + 1,
            genome=ctx.genome,
            name=pd.Series(ids[rows]),
        )
        samples = map_barcodes(file, barcodes, ctx, directory_name=file.name.split(".", 1)[0])
    except BaseException:
        handle.close()
        raise
    obs = pd.DataFrame({"sample_id": samples}, index=pd.Index(barcodes, dtype=str))
    n_features = shape[0]
    source = PeakMatrixSource(
        fmt="peak-h5",
        orientation="cells",
        fixed=peaks,
        blocks=iter(()),
        details={
            "h5_features": int(n_features),
            "h5_peaks": len(rows),
            "h5_feature_types": sorted(set(kinds.tolist())),
        },
    )

    def blocks() -> Iterator[tuple[object, pd.DataFrame]]:
        import scipy.sparse as sp

        try:
            step = max(1, ctx.cells_per_block)
            for lo in range(0, shape[1], step):
                hi = min(lo + step, shape[1])
                a, b = int(indptr[lo]), int(indptr[hi])
                data = np.asarray(group["data"][a:b], dtype=np.float64)
                idx = np.asarray(group["indices"][a:b], dtype=np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= n_features):
                    raise InputError(
                        where,
                        "dimensions",
                        f"/matrix/indices holds {int(idx.max())}, beyond the {n_features} "
                        "features of /matrix/shape",
                    )
                source.see(data)
                # a column block of the features x barcodes CSC matrix is barcodes x features CSR
                m = sp.csr_matrix((data, idx, indptr[lo : hi + 1] - a), shape=(hi - lo, n_features))
                yield m[:, rows], obs.iloc[lo:hi]
        finally:
            handle.close()

    source.blocks = blocks()  # type: ignore[assignment]
    return source
