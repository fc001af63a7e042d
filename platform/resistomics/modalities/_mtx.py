"""Matrix Market directories (10x Cell Ranger layout) read the same way by every modality.

Cell Ranger writes gene expression (``filtered_feature_bc_matrix/``) and chromatin
accessibility (``filtered_peak_bc_matrix/``) as the same three files: ``matrix.mtx[.gz]``
(features x barcodes, coordinate format), a features file (``features.tsv``, or
``peaks.bed``) and ``barcodes.tsv``. The modalities that read them share this module:
the small side files (:func:`read_small_tsv`), the banner and size line
(:func:`open_mtx`) and the entries, streamed and bucketed into barcode blocks on local
scratch so files in any entry order are read with bounded memory
(:func:`mtx_barcode_blocks`). Every refusal is an :class:`~resistomics.errors.InputError`
naming the file, the rule and the line.
"""

from __future__ import annotations

import gzip
import shutil
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics._text_files import CheckedText, open_checked_text
from resistomics.errors import InputError

__all__ = [
    "MTX_FIELDS",
    "MTX_SYMMETRY",
    "EntryScanner",
    "MtxHeader",
    "find_file",
    "gzip_error",
    "mtx_barcode_blocks",
    "open_mtx",
    "read_small_tsv",
]


def gzip_error(path: str | Path, exc: BaseException, line: int | None = None) -> InputError:
    """The refusal of a damaged or truncated gzip stream (rule ``gzip-integrity``)."""
    return InputError(
        str(path),
        "gzip-integrity",
        f"the gzip stream is damaged or truncated ({exc}); re-export or re-copy the file",
        line=line,
    )


def find_file(directory: Path, *names: str) -> Path | None:
    """The first of ``names`` (or its ``.gz``) present in ``directory``."""
    for n in names:
        for cand in (directory / n, directory / f"{n}.gz"):
            if cand.exists():
                return cand
    return None


def read_small_tsv(path: Path, min_cols: int, *, skip: int = 0) -> pd.DataFrame:
    """A features, barcodes or peaks file: every row with as many tab-separated fields
    as the first (a ragged row is refused with its line), after ``skip`` header lines."""
    handle = open_checked_text(path)
    try:
        for _ in range(skip):
            handle.readline()
        first = handle.readline()
        if not first.strip():
            raise InputError(str(path), "not-empty", "the file is empty", line=skip + 1)
        n_fields = first.count("\t") + 1
        handle.expect_fields(n_fields, "\t")
        handle.check_field_lengths(first.rstrip("\n").split("\t"), line=skip + 1)
        rest: pd.DataFrame | None = pd.read_csv(
            handle,
            sep="\t",
            header=None,
            names=list(range(n_fields)),
            dtype=str,
            na_filter=False,
            quoting=3,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        rest = None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise gzip_error(path, exc) from None
    finally:
        handle.close()
    head = pd.DataFrame([first.rstrip("\n").split("\t")], columns=list(range(n_fields)))
    frame = head if rest is None else pd.concat([head, rest], ignore_index=True)
    if frame.shape[1] < min_cols:
        raise InputError(
            str(path),
            "delimiter",
            f"expected at least {min_cols} tab-separated columns, found {frame.shape[1]}",
            line=skip + 1,
        )
    if frame.shape[1] == 1:
        # A comma-separated features/barcodes file parses as one column of IDs
        # like "ENSG...,TP53,Gene Expression": refuse it rather than store bad IDs.
        commas = frame[0].str.contains(",", regex=False).to_numpy()
        if commas.any():
            i = int(np.flatnonzero(commas)[0])
            raise InputError(
                str(path),
                "delimiter",
                f"expected tab-separated columns, found {frame.iat[i, 0]!r}; it looks comma-separated",
                line=skip + i + 1,
            )
    return frame


class EntryScanner:
    """Reads ``matrix.mtx`` a second time, forward only, to find the line of an entry
    that is not ``row col value`` (only for chunks where pandas saw a missing value,
    and on the error path): chunk after chunk, that is one pass over the file in all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._f: CheckedText | None = None
        self._lineno = 0

    def first_bad(self, start: int, stop: int | None = None) -> tuple[int, str] | None:
        """The first bad entry on lines ``start``..``stop`` (to the end if ``None``)."""
        if self._f is None or self._lineno >= start:
            self.close()
            self._f, self._lineno = open_checked_text(self.path), 0
        while stop is None or self._lineno < stop:
            text = self._f.readline()
            if not text:
                return None
            self._lineno += 1
            if self._lineno < start or text.startswith("%"):
                continue
            parts = text.split()
            try:
                if len(parts) != 3:
                    raise ValueError(text)
                int(parts[0]), int(parts[1]), float(parts[2])
            except ValueError:
                return self._lineno, text.strip()
        return None

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


# What the reader takes of a Matrix Market banner: values must be real or integer
# numbers, and every entry stored (no symmetric half to mirror).
MTX_FIELDS = ("real", "integer", "double")
MTX_SYMMETRY = ("general",)


@dataclass(frozen=True)
class MtxHeader:
    """A Matrix Market banner's value field, the size line's number and the sizes."""

    field: str
    lineno: int
    n_rows: int
    n_cols: int
    nnz: int


def open_mtx(matrix: Path) -> tuple[CheckedText, MtxHeader]:
    """Open ``matrix.mtx[.gz]`` and read its banner and size line.

    Raises
    ------
    InputError
        ``not-empty``, ``mtx-header``, ``mtx-field``, ``mtx-symmetry`` or
        ``gzip-integrity``, with the line.
    """
    if matrix.stat().st_size == 0:
        raise InputError(str(matrix), "not-empty", "the file is empty")
    handle = open_checked_text(matrix)
    try:
        field, lineno, (n_rows, n_cols, nnz) = _mtx_header(matrix, handle)
    except (EOFError, OSError, zlib.error) as exc:
        handle.close()
        raise gzip_error(matrix, exc, line=1) from None
    except InputError:
        handle.close()
        raise
    return handle, MtxHeader(field, lineno, n_rows, n_cols, nnz)


def mtx_barcode_blocks(
    matrix: Path,
    handle: CheckedText,
    header: MtxHeader,
    *,
    feature_map: np.ndarray,
    barcodes_per_block: int,
    scratch: Path | None,
    see: Callable[[np.ndarray], None],
) -> Iterator[tuple[int, int, sp.csr_matrix]]:
    """The entries of an open Matrix Market file as barcode blocks.

    Entries (``feature barcode value``, 1-based, any order) are read two million at a
    time, bucketed by barcode block into ``.npz`` pieces under ``scratch``, and each
    block is assembled once the whole file has been read. ``feature_map[i]`` is the
    output column of feature ``i`` (``-1`` drops it); ``see`` receives every chunk's
    values (the caller's count-likeness check). Yields ``(first barcode, stop,
    barcodes x kept features CSR)``; ``handle`` is closed when the file is read.

    Raises
    ------
    InputError
        ``field-count`` / ``mtx-entries`` for an entry that is not ``row col value``,
        ``index-range``, ``gzip-integrity``, ``entry-count`` (fewer entries than the size
        line promises) and ``unique-entries`` (an entry twice).
    """
    n_rows, n_cols, nnz = header.n_rows, header.n_cols, header.nnz
    header_lines = header.lineno
    n_kept = int((feature_map >= 0).sum())
    folder = Path(tempfile.mkdtemp(prefix="resistomics-mtx-", dir=scratch))
    pieces: dict[int, list[Path]] = {}
    seen = 0
    scanner = EntryScanner(matrix)
    try:
        try:
            reader = pd.read_csv(
                handle,
                sep=r"\s+",
                header=None,
                names=["r", "c", "v"],
                comment="%",
                chunksize=2_000_000,
                engine="c",
                dtype={"r": np.int64, "c": np.int64, "v": np.float64},
            )
            for k, chunk in enumerate(reader):
                if chunk["v"].isna().any():
                    # a 'nan' value is left for validation; a row with no value is refused
                    first = header_lines + seen + 1
                    bad_row = scanner.first_bad(first, first + len(chunk) - 1)
                    if bad_row is not None:
                        raise InputError(
                            str(matrix),
                            "field-count",
                            f"entries must be 'row col value', found {bad_row[1]!r} "
                            "(a cut or truncated file?)",
                            line=bad_row[0],
                        )
                r = chunk["r"].to_numpy()
                c = chunk["c"].to_numpy()
                bad = (r < 1) | (r > n_rows) | (c < 1) | (c > n_cols)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise InputError(
                        str(matrix),
                        "index-range",
                        f"entry ({r[i]}, {c[i]}) is outside the {n_rows} x {n_cols} matrix",
                        line=header_lines + seen + i + 1,
                    )
                v = chunk["v"].to_numpy()
                see(v)
                g = feature_map[r - 1]
                sel = g >= 0
                cells = c[sel] - 1
                block_ids = cells // barcodes_per_block
                order = np.argsort(block_ids, kind="stable")
                bids, starts = np.unique(block_ids[order], return_index=True)
                ends = [*starts[1:].tolist(), len(order)]
                for b, s0, e0 in zip(bids, starts, ends, strict=True):
                    idx = order[s0:e0]
                    p = folder / f"b{int(b):06d}_{k:06d}.npz"
                    np.savez(p, c=cells[idx], g=g[sel][idx], v=v[sel][idx])
                    pieces.setdefault(int(b), []).append(p)
                seen += len(chunk)
        except ValueError as exc:
            if isinstance(exc, InputError):
                raise
            # pandas does not say which line failed: find it (error path only)
            bad_entry = scanner.first_bad(header_lines + seen + 1)
            found = f", found {bad_entry[1]!r}" if bad_entry else f" ({str(exc).splitlines()[0]})"
            wrong_sep = bad_entry is not None and ("," in bad_entry[1] or ";" in bad_entry[1])
            hint = " (wrong delimiter?)" if wrong_sep else ""
            ragged = bad_entry is not None and not wrong_sep and len(bad_entry[1].split()) != 3
            raise InputError(
                str(matrix),
                "field-count" if ragged else "mtx-entries",
                f"entries must be whitespace-separated 'row col value' numbers{found}{hint}",
                line=bad_entry[0] if bad_entry else None,
            ) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise gzip_error(matrix, exc, line=header_lines + seen) from None
        finally:
            handle.close()
            scanner.close()
        if seen != nnz:
            raise InputError(
                str(matrix),
                "entry-count",
                f"header promises {nnz} entries but the file holds {seen} (truncated?)",
                line=header_lines + seen,
            )
        for b in range((n_cols + barcodes_per_block - 1) // barcodes_per_block):
            lo, hi = b * barcodes_per_block, min((b + 1) * barcodes_per_block, n_cols)
            cs, gs, vs = [], [], []
            for p in pieces.get(b, []):
                with np.load(p) as z:
                    cs.append(z["c"])
                    gs.append(z["g"])
                    vs.append(z["v"])
            if cs:
                cc, gg, vv = np.concatenate(cs) - lo, np.concatenate(gs), np.concatenate(vs)
            else:
                cc = gg = np.zeros(0, dtype=np.int64)
                vv = np.zeros(0)
            keys = cc * n_kept + gg
            if np.unique(keys).size != keys.size:
                raise InputError(
                    str(matrix),
                    "unique-entries",
                    f"an entry appears twice for a cell in barcodes {lo + 1}-{hi}",
                )
            yield lo, hi, sp.csr_matrix((vv, (cc, gg)), shape=(hi - lo, n_kept))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _mtx_header(matrix: Path, handle: CheckedText) -> tuple[str, int, tuple[int, int, int]]:
    """The banner's field, the size line's number and (rows, cols, entries)."""
    banner = handle.readline()
    if not banner:
        raise InputError(str(matrix), "not-empty", "the file is empty")
    words = banner.lower().split()
    if words[:3] != ["%%matrixmarket", "matrix", "coordinate"]:
        raise InputError(
            str(matrix),
            "mtx-header",
            "first line must be '%%MatrixMarket matrix coordinate <field> general', "
            f"found {banner.strip()[:80]!r}",
            line=1,
        )
    field = words[3] if len(words) > 3 else "real"
    symmetry = words[4] if len(words) > 4 else "general"
    if field not in MTX_FIELDS:
        why = "; pattern matrices hold no values" if field == "pattern" else ""
        raise InputError(
            str(matrix),
            "mtx-field",
            f"field {field!r} is not supported (supported: {', '.join(MTX_FIELDS)}){why}",
            line=1,
        )
    if symmetry not in MTX_SYMMETRY:
        raise InputError(
            str(matrix),
            "mtx-symmetry",
            f"symmetry {symmetry!r} is not supported (supported: general): a count matrix "
            "stores every entry; write it with symmetry 'general'",
            line=1,
        )
    lineno = 2
    size_line = handle.readline()
    while size_line.startswith("%"):
        size_line = handle.readline()
        lineno += 1
    try:
        n_rows, n_cols, nnz = (int(x) for x in size_line.split())
    except ValueError:
        raise InputError(
            str(matrix),
            "mtx-header",
            f"size line must be 'rows cols entries', found {size_line.strip()[:80]!r}",
            line=lineno,
        ) from None
    return field, lineno, (n_rows, n_cols, nnz)
