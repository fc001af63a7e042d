"""Counting ATAC-seq fragments into genome-wide tiles and into a peak set, per cell.

Coordinates follow the 10x Genomics fragments file: 0-based, half-open ``[start, end)``,
already shifted for the Tn5 offset (+4 / -5 bp; Cell Ranger ATAC does this). A fragment
has two **Tn5 insertion sites**: its first base ``start`` and its last base ``end - 1``
(ArchR's and SnapATAC2's convention for "insertions"; Granja et al., *Nat. Genet.*
53:403, 2021; Zhang et al., *Nat. Methods* 21:217, 2024).

Two counting units, chosen by ``unit=``:

``"insertion"`` (default, as ArchR's tile matrix and Cell Ranger ATAC's peak matrix)
    each insertion site adds 1 to the feature that contains it; a fragment whose two
    ends fall in the same feature adds 2 there.
``"fragment"``
    each fragment adds 1 to every feature it overlaps by at least 1 bp (Signac's
    ``FeatureMatrix``).

Count matrices are ``scipy.sparse.csr_matrix`` with one row per cell and one column per
feature (the AnnData orientation). The tile counter takes one contig's fragments as an
iterable of chunks (e.g. the Parquet row groups of one (sample, contig) partition of the
store), so a caller holds one chunk and one contig's sparse matrix at a time, never the
genome.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics.errors import MethodInputError

__all__ = [
    "DEFAULT_TILE_SIZE",
    "Fragments",
    "Intervals",
    "as_fragments",
    "insertion_sites",
    "interval_hits",
    "merge_intervals",
    "overlap_pairs",
    "peak_counts",
    "tile_counts",
    "tile_counts_from_chunks",
    "tile_starts",
]

Unit = Literal["insertion", "fragment"]

#: ArchR's and SnapATAC2's default genome-wide bin size (bp).
DEFAULT_TILE_SIZE = 500
#: Rows of fragments counted at once by :func:`tile_counts` (about 100 MB of indices).
DEFAULT_CHUNK_ROWS = 4_000_000


@dataclass(frozen=True)
class Fragments:
    """ATAC-seq fragments as columns: ``contig`` codes into ``contigs``, 0-based ``start``,
    exclusive ``end`` and the ``cell`` index in ``[0, n_cells)`` of each fragment."""

    contig: np.ndarray
    start: np.ndarray
    end: np.ndarray
    cell: np.ndarray
    contigs: tuple[str, ...]
    n_cells: int

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @property
    def length(self) -> np.ndarray:
        """Fragment lengths ``end - start`` (bp)."""
        return np.asarray(self.end - self.start, dtype=np.int64)


@dataclass(frozen=True)
class Intervals:
    """Genomic intervals (peaks, genes, TSSs): contig names, 0-based ``start``, exclusive
    ``end`` and, optionally, ``strand`` (``"+"``/``"-"``) and ``name``."""

    contig: np.ndarray
    start: np.ndarray
    end: np.ndarray
    strand: np.ndarray | None = None
    name: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.start.shape[0])

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Intervals:
        """From a table with ``contig`` (or ``chrom``), ``start``, ``end`` and optional
        ``strand`` and ``name`` columns (a BED read with those names)."""
        contig_col = "contig" if "contig" in frame.columns else "chrom"
        for col in (contig_col, "start", "end"):
            if col not in frame.columns:
                raise MethodInputError(
                    f"intervals need a {col!r} column; got {list(frame.columns)}",
                    place="intervals",
                    rule="columns",
                )
        return cls(
            contig=frame[contig_col].astype(str).to_numpy(),
            start=frame["start"].to_numpy(dtype=np.int64),
            end=frame["end"].to_numpy(dtype=np.int64),
            strand=frame["strand"].astype(str).to_numpy() if "strand" in frame else None,
            name=frame["name"].astype(str).to_numpy() if "name" in frame else None,
        )


def _column(table: Any, names: Sequence[str]) -> np.ndarray | None:
    columns = list(table.column_names) if hasattr(table, "column_names") else list(table.columns)
    for name in names:
        if name in columns:
            col = table.column(name) if hasattr(table, "column_names") else table[name]
            if hasattr(col, "to_pandas"):
                return np.asarray(col.to_pandas())
            return np.asarray(col)
    return None


def as_fragments(
    table: Any,
    *,
    contigs: Sequence[str] | None = None,
    cells: Sequence[str] | None = None,
) -> Fragments:
    """Fragments from a pandas DataFrame or pyarrow Table.

    Columns: ``contig`` (or ``chrom``), ``start``, ``end`` and either ``cell`` (integer
    index) or ``barcode`` (strings, indexed by ``cells`` when given, else in order of
    first appearance). ``contigs`` fixes the contig codes (else sorted names).

    Raises
    ------
    MethodInputError
        A column is missing, a barcode or contig is not in ``cells`` / ``contigs``, or a
        fragment has ``start < 0`` or ``end <= start``.
    """
    contig = _column(table, ("contig", "chrom"))
    start = _column(table, ("start",))
    end = _column(table, ("end",))
    if contig is None or start is None or end is None:
        raise MethodInputError(
            "fragments need contig (or chrom), start and end columns",
            place="fragments",
            rule="columns",
        )
    contig_names = np.asarray(contig).astype(str)
    known = tuple(contigs) if contigs is not None else tuple(sorted(set(contig_names.tolist())))
    contig_code = pd.Index(known).get_indexer(contig_names)
    if (contig_code < 0).any():
        bad = contig_names[contig_code < 0][0]
        raise MethodInputError(
            f"contig {bad!r} is not among the {len(known)} known contigs",
            place="fragments",
            rule="known-contigs",
        )
    cell = _column(table, ("cell",))
    if cell is not None:
        cell_index = np.asarray(cell, dtype=np.int64)
        n_cells = len(cells) if cells is not None else int(cell_index.max(initial=-1)) + 1
    else:
        barcode = _column(table, ("barcode",))
        if barcode is None:
            raise MethodInputError(
                "fragments need a cell or a barcode column", place="fragments", rule="columns"
            )
        if cells is None:
            cell_index, uniques = pd.factorize(np.asarray(barcode).astype(str))
            n_cells = len(uniques)
        else:
            cell_index = pd.Index(list(cells)).get_indexer(np.asarray(barcode).astype(str))
            n_cells = len(cells)
            if (cell_index < 0).any():
                bad = np.asarray(barcode)[cell_index < 0][0]
                raise MethodInputError(
                    f"barcode {bad!r} is not among the {n_cells} cells",
                    place="fragments",
                    rule="barcodes-registered",
                )
    fragments = Fragments(
        contig=contig_code.astype(np.int32),
        start=np.asarray(start, dtype=np.int64),
        end=np.asarray(end, dtype=np.int64),
        cell=np.asarray(cell_index, dtype=np.int64),
        contigs=known,
        n_cells=int(n_cells),
    )
    _check_fragments(fragments.start, fragments.end, fragments.cell, fragments.n_cells)
    return fragments


def _check_fragments(start: np.ndarray, end: np.ndarray, cell: np.ndarray, n_cells: int) -> None:
    if start.shape != end.shape or start.shape != cell.shape:
        raise MethodInputError(
            "start, end and cell must have the same length", place="fragments", rule="shape"
        )
    if start.size == 0:
        return
    if int(start.min()) < 0:
        raise MethodInputError(
            f"fragment {int(np.argmax(start < 0))} has a negative start",
            place="fragments",
            rule="start-nonnegative",
        )
    if not (end > start).all():
        raise MethodInputError(
            f"fragment {int(np.argmax(end <= start))} has end <= start",
            place="fragments",
            rule="start-before-end",
        )
    if int(cell.min()) < 0 or int(cell.max()) >= n_cells:
        raise MethodInputError(
            f"cell indices must lie in [0, {n_cells})", place="fragments", rule="cell-index"
        )


def insertion_sites(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The two Tn5 insertion sites of each fragment, ``start`` then ``end - 1``, as a
    ``(2, n)`` array (0-based positions)."""
    return np.stack([np.asarray(start, dtype=np.int64), np.asarray(end, dtype=np.int64) - 1])


def _expand_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ``i`` the integers ``lo[i] .. hi[i] - 1``: (owner ``i``, value) pairs."""
    width = np.maximum(hi - lo, 0)
    owner = np.repeat(np.arange(lo.shape[0], dtype=np.int64), width)
    if owner.size == 0:
        return owner, owner.copy()
    first = np.cumsum(width) - width
    value = np.arange(owner.size, dtype=np.int64) - np.repeat(first - lo, width)
    return owner, value


def tile_starts(contig_length: int, *, tile_size: int = DEFAULT_TILE_SIZE) -> np.ndarray:
    """0-based starts of the tiles of a contig: ``0, tile_size, ...`` (the last tile is
    cut at the contig's end)."""
    return np.arange(0, int(contig_length), int(tile_size), dtype=np.int64)


def tile_counts_from_chunks(
    chunks: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    n_cells: int,
    contig_length: int,
    tile_size: int = DEFAULT_TILE_SIZE,
    unit: Unit = "insertion",
) -> sp.csr_matrix:
    """Cell x tile counts of one contig, built chunk by chunk.

    Parameters
    ----------
    chunks
        ``(start, end, cell)`` arrays of this contig's fragments, one chunk at a time
        (any order, any chunking: the result is the same).
    n_cells, contig_length
        Rows of the matrix; the contig's length fixes the number of tiles,
        ``ceil(contig_length / tile_size)``.
    tile_size
        Bin width in bp (500, as ArchR's ``addTileMatrix`` and SnapATAC2's
        ``add_tile_matrix``).
    unit
        ``"insertion"``: each Tn5 insertion (``start``, ``end - 1``) adds 1 to its tile;
        ``"fragment"``: each fragment adds 1 to each tile it overlaps.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n_cells, n_tiles)`` int32 counts; tile ``j`` is ``[j * tile_size,
        (j + 1) * tile_size)``.

    Raises
    ------
    MethodInputError
        A fragment is outside the contig, has ``end <= start`` or a cell index outside
        ``[0, n_cells)``.
    """
    if tile_size <= 0:
        raise MethodInputError("tile_size must be positive", place="tiles", rule="tile-size")
    n_tiles = -(-int(contig_length) // int(tile_size))
    total = sp.csr_matrix((n_cells, n_tiles), dtype=np.int32)
    for start, end, cell in chunks:
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        cell = np.asarray(cell, dtype=np.int64)
        _check_fragments(start, end, cell, n_cells)
        if start.size == 0:
            continue
        if int(end.max()) > contig_length:
            raise MethodInputError(
                f"fragment {int(np.argmax(end > contig_length))} ends beyond the contig "
                f"length {contig_length}",
                place="fragments",
                rule="within-contig",
            )
        if unit == "insertion":
            tiles = (insertion_sites(start, end) // tile_size).ravel()
            rows = np.concatenate([cell, cell])
        elif unit == "fragment":
            owner, tiles = _expand_ranges(start // tile_size, (end - 1) // tile_size + 1)
            rows = cell[owner]
        else:
            raise MethodInputError(f"unknown unit {unit!r}", place="tiles", rule="unit")
        part = sp.coo_matrix(
            (np.ones(rows.shape[0], dtype=np.int32), (rows, tiles)), shape=(n_cells, n_tiles)
        ).tocsr()
        total = total + part
    return sp.csr_matrix(total)


def _chunked(
    start: np.ndarray, end: np.ndarray, cell: np.ndarray, rows: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    for lo in range(0, max(int(start.shape[0]), 1), rows):
        yield start[lo : lo + rows], end[lo : lo + rows], cell[lo : lo + rows]


def tile_counts(
    start: np.ndarray,
    end: np.ndarray,
    cell: np.ndarray,
    *,
    n_cells: int,
    contig_length: int,
    tile_size: int = DEFAULT_TILE_SIZE,
    unit: Unit = "insertion",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> sp.csr_matrix:
    """Cell x tile counts of one contig's fragments given as arrays, counted
    ``chunk_rows`` fragments at a time (see :func:`tile_counts_from_chunks`)."""
    return tile_counts_from_chunks(
        _chunked(np.asarray(start), np.asarray(end), np.asarray(cell), int(chunk_rows)),
        n_cells=n_cells,
        contig_length=contig_length,
        tile_size=tile_size,
        unit=unit,
    )


def _contig_groups(names: np.ndarray, contigs: Sequence[str]) -> dict[int, np.ndarray]:
    """Rows of each contig code (of ``contigs``); names not in ``contigs`` are left out."""
    code = pd.Index(list(contigs)).get_indexer(np.asarray(names).astype(str))
    order = np.argsort(code, kind="stable")
    sorted_code = code[order]
    bounds = np.flatnonzero(np.diff(sorted_code)) + 1
    groups: dict[int, np.ndarray] = {}
    for rows in np.split(order, bounds):
        if rows.size and code[rows[0]] >= 0:
            groups[int(code[rows[0]])] = rows
    return groups


def interval_hits(
    lo_pos: np.ndarray, hi_pos: np.ndarray, istart: np.ndarray, iend: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(query, interval) pairs where query ``[lo_pos, hi_pos)`` overlaps interval
    ``[istart, iend)`` by at least 1 bp; intervals sorted by start, any overlaps."""
    max_len = int((iend - istart).max(initial=0))
    lo = np.searchsorted(istart, lo_pos - max_len, side="right")
    hi = np.searchsorted(istart, hi_pos, side="left")
    owner, interval = _expand_ranges(lo, hi)
    keep = iend[interval] > lo_pos[owner]
    return owner[keep], interval[keep]


def merge_intervals(intervals: Intervals) -> Intervals:
    """The union of ``intervals`` per contig as sorted, disjoint intervals (bookended
    intervals merge; strand and names are dropped)."""
    contigs: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    names = np.asarray(intervals.contig).astype(str)
    for contig in np.unique(names):
        rows = np.flatnonzero(names == contig)
        order = rows[np.argsort(intervals.start[rows], kind="stable")]
        start = np.asarray(intervals.start[order], dtype=np.int64)
        end = np.maximum.accumulate(np.asarray(intervals.end[order], dtype=np.int64))
        new = np.ones(start.shape[0], dtype=bool)
        new[1:] = start[1:] > end[:-1]
        first = np.flatnonzero(new)
        last = np.append(first[1:] - 1, start.shape[0] - 1)
        contigs.append(np.full(first.shape[0], contig, dtype=object))
        starts.append(start[first])
        ends.append(end[last])
    if not starts:
        empty = np.zeros(0, dtype=np.int64)
        return Intervals(np.zeros(0, dtype=object), empty, empty.copy())
    return Intervals(np.concatenate(contigs), np.concatenate(starts), np.concatenate(ends))


def overlap_pairs(
    fragments: Fragments, intervals: Intervals, *, unit: Unit
) -> tuple[np.ndarray, np.ndarray]:
    """(fragment, interval) index pairs: with ``unit="insertion"`` one pair per insertion
    site inside an interval (a fragment can pair twice with one interval), with
    ``"fragment"`` one pair per fragment overlapping an interval by >= 1 bp."""
    frag_groups = {
        code: np.flatnonzero(fragments.contig == code) for code in np.unique(fragments.contig)
    }
    int_groups = _contig_groups(intervals.contig, fragments.contigs)
    owners: list[np.ndarray] = []
    targets: list[np.ndarray] = []
    for code, irows in int_groups.items():
        frows = frag_groups.get(code)
        if frows is None or frows.size == 0:
            continue
        order = irows[np.argsort(intervals.start[irows], kind="stable")]
        istart = np.asarray(intervals.start[order], dtype=np.int64)
        iend = np.asarray(intervals.end[order], dtype=np.int64)
        start = fragments.start[frows]
        end = fragments.end[frows]
        if unit == "insertion":
            for site in insertion_sites(start, end):
                owner, hit = interval_hits(site, site + 1, istart, iend)
                owners.append(frows[owner])
                targets.append(order[hit])
        elif unit == "fragment":
            owner, hit = interval_hits(start, end, istart, iend)
            owners.append(frows[owner])
            targets.append(order[hit])
        else:
            raise MethodInputError(f"unknown unit {unit!r}", place="peaks", rule="unit")
    if not owners:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy()
    return np.concatenate(owners), np.concatenate(targets)


def peak_counts(
    fragments: Fragments, peaks: Intervals, *, unit: Unit = "insertion"
) -> sp.csr_matrix:
    """Cell x peak counts of fragments in a given peak set.

    Peaks may overlap one another and come in any order (columns keep the given order);
    each contig's peaks are sorted once and every fragment is placed with
    ``np.searchsorted``. With ``unit="insertion"`` (Cell Ranger ATAC's peak matrix) each
    insertion site inside a peak adds 1 to it; with ``"fragment"`` each fragment adds 1
    to every peak it overlaps by >= 1 bp. Fragments on contigs without peaks count
    nowhere.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(fragments.n_cells, len(peaks))`` int32 counts.
    """
    owner, peak = overlap_pairs(fragments, peaks, unit=unit)
    return sp.coo_matrix(
        (np.ones(owner.shape[0], dtype=np.int32), (fragments.cell[owner], peak)),
        shape=(fragments.n_cells, len(peaks)),
    ).tocsr()
