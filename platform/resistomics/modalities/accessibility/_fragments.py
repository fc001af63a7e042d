"""10x fragments files: read in any order, stored as Parquet by sample and contig, and
counted over a peak set into a barcode x peak matrix.

A fragments file (Cell Ranger ATAC/ARC ``fragments.tsv.gz``; format: 10x Genomics,
"Fragments file", and SnapATAC2/ArchR inputs) is bgzip text with ``#`` header lines
and five columns: contig, start (0-based), end, barcode, duplicate count. The file is
parsed in chunks of ``fragments_per_chunk`` lines through the checked text stream (no
sorting by barcode or position needed); a tabix index beside it is opened with pysam
(its contig list is recorded). Each chunk is checked (field count, integers, start >=
0, start < end, known contig, within the contig's length when sizes are known, barcode
-> registered sample) and refused with its file and line.

Stored (``partitioned-table@1``): ``fragments/sample_id=<s>/contig=<c>/part-0.parquet``
(start, end, barcode, count; one row group per chunk) and ``barcodes/sample_id=<s>/``
(per barcode: unique fragments, reads, fragments overlapping a peak by >= 1 bp and
their fraction, FRiP as Signac defines it: ``_qc.fraction_in_peaks``). With a peak
set, Tn5 insertions (both fragment ends: ``start`` and ``end - 1``, the Cell Ranger ATAC
peak-barcode matrix's convention) are counted per barcode and peak, bucketed by
barcode block on scratch, and the matrix is written as ``accessibility.counts`` in the
shared sparse layout with the fragments beside it.
"""

from __future__ import annotations

import gzip
import posixpath
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics._text_files import CheckedText, open_checked_text
from resistomics.errors import InputError
from resistomics.modalities._checks import check_registered
from resistomics.modalities._mtx import find_file, gzip_error
from resistomics.modalities._plugin import Written
from resistomics.modalities.accessibility._peaks import read_peak_bed
from resistomics.modalities.accessibility._qc import MONONUCLEOSOMAL, NUCLEOSOME_FREE_BELOW
from resistomics.modalities.accessibility._source import AccessibilityReadContext, PeakMatrixSource

if TYPE_CHECKING:
    from resistomics.publishing import Staging
    from resistomics.storage import DataRoot

__all__ = [
    "FRAGMENT_COLUMNS",
    "FragmentsSource",
    "detect_fragments",
    "insertion_counts",
    "read_fragments",
    "read_tss",
    "summarize_fragments",
    "tss_scores",
    "write_fragments",
    "write_tiles",
]

FRAGMENT_COLUMNS = ("contig", "start", "end", "barcode", "count")
_SUFFIXES = ("fragments.tsv.gz", ".tsv.bgz", "fragments.tsv")
_EXAMPLES = 5


def _fragments_file(path: Path) -> Path | None:
    if path.is_dir():
        return find_file(path, "fragments.tsv") or find_file(path, "atac_fragments.tsv")
    return path if path.name.lower().endswith(_SUFFIXES) else None


def detect_fragments(path: str) -> bool:
    """A ``*fragments.tsv.gz`` file or a folder holding one (Cell Ranger's ``outs/``)."""
    try:
        return _fragments_file(Path(path)) is not None
    except OSError:
        return False


@dataclass
class FragmentsSource:
    """A fragments file being read: checked chunks (with each row's sample) and the peak
    set to count over (``None``: store the fragments only)."""

    path: Path
    chunks: Iterator[pd.DataFrame]
    peaks: pd.DataFrame | None
    details: dict[str, Any] = field(default_factory=dict)
    #: barcodes the barcode table does not list (background), counted while reading
    background: list[int] = field(default_factory=lambda: [0])


def _tabix_contigs(path: Path) -> list[str] | None:
    """The contigs of the tabix index beside ``path`` (pysam), or None without one."""
    index = path.with_name(path.name + ".tbi")
    if not index.exists():
        return None
    import pysam

    try:
        with pysam.TabixFile(str(path), index=str(index)) as tbx:
            return [str(c) for c in tbx.contigs]
    except (OSError, ValueError) as exc:
        raise InputError(
            str(index), "tabix-index", f"pysam cannot open the index ({exc})"
        ) from None


def read_fragments(path: str | Path, ctx: AccessibilityReadContext) -> FragmentsSource:
    """A 10x fragments file (or a folder holding ``fragments.tsv.gz`` and, optionally,
    ``peaks.bed``), as checked chunks; see the module docstring.

    Barcodes map to samples by ``--sample`` (every barcode) or ``--barcode-samples``
    (barcodes missing from the table are background and skipped; the table's samples
    must be registered).

    Raises
    ------
    InputError
        ``sample-mapping``, ``registered-samples``, ``field-count``,
        ``integer-coordinates``, ``non-negative-coordinates``, ``peak-interval``
        (start < end), ``known-contigs``, ``within-contig``, ``gzip-integrity``,
        ``not-empty``, each with the file and line.
    """
    given = Path(path)
    file = _fragments_file(given)
    if file is None:
        raise InputError(
            str(given), "10x-layout", "no fragments.tsv.gz here (a file or a folder holding one)"
        )
    if file.stat().st_size == 0:
        raise InputError(str(file), "not-empty", "the file is empty")
    peaks_path = ctx.peaks
    if peaks_path is None and given.is_dir():
        peaks_path = find_file(given, "peaks.bed")
    peaks = read_peak_bed(peaks_path, ctx.genome) if peaks_path is not None else None
    if peaks is not None:
        order = pd.Categorical(peaks["contig"], categories=pd.unique(peaks["contig"]))
        peaks = peaks.assign(_c=order.codes).sort_values(["_c", "start"]).drop(columns="_c")
    if ctx.barcode_samples is not None:
        check_registered(
            ctx.barcode_table or str(file),
            sorted(set(ctx.barcode_samples.values())),
            ctx.registered_samples,
        )
    elif ctx.sample is not None:
        check_registered(str(file), [ctx.sample], ctx.registered_samples)
    else:
        raise InputError(
            str(file),
            "sample-mapping",
            "cannot tell which registered sample these barcodes belong to: pass --sample "
            "(one sample per file) or --barcode-samples (a barcode -> sample table)",
        )
    details: dict[str, Any] = {"fragments_file": file.name}
    contigs = _tabix_contigs(file)
    if contigs is not None:
        details["tabix_contigs"] = len(contigs)
    if peaks_path is not None:
        details["peaks_file"] = Path(peaks_path).name
    source = FragmentsSource(path=file, chunks=iter(()), peaks=peaks, details=details)
    source.chunks = _chunks(file, ctx, source)
    return source


def _header_lines(handle: CheckedText, file: Path) -> tuple[int, str]:
    """Skip the ``#`` header; the number of lines skipped and the first data line."""
    n = 0
    line = handle.readline()
    while line.startswith("#"):
        n += 1
        line = handle.readline()
    return n, line


def _chunks(
    file: Path, ctx: AccessibilityReadContext, source: FragmentsSource
) -> Iterator[pd.DataFrame]:
    where = str(file)
    genome = ctx.genome
    known = np.array(sorted(genome.contigs), dtype=object)
    handle = open_checked_text(file)
    try:
        try:
            skipped, first = _header_lines(handle, file)
        except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
            raise gzip_error(file, exc, line=1) from None
        if not first.strip():
            raise InputError(where, "not-empty", "the file has no fragments", line=skipped + 1)
        handle.expect_fields(5, "\t", comment="#")
        if first.rstrip("\r\n").count("\t") != 4:
            raise InputError(
                where,
                "field-count",
                "expected 5 tab-separated fields (contig, start, end, barcode, count), found "
                f"{first.rstrip(chr(10)).count(chr(9)) + 1}",
                line=skipped + 1,
            )
        import io

        stream = io.StringIO(first)
        done = 0
        line0 = skipped + 1
        typed = dict(zip(FRAGMENT_COLUMNS, (str, np.int64, np.int64, str, np.int64), strict=True))
        pending = pd.read_csv(
            stream, sep="\t", header=None, names=list(FRAGMENT_COLUMNS), dtype=typed
        )
        # typed columns: the C parser converts the integers (a value that is not one
        # raises, and the line is then found by a second, forward-only read)
        reader = pd.read_csv(
            handle,
            sep="\t",
            header=None,
            names=list(FRAGMENT_COLUMNS),
            dtype=typed,
            chunksize=ctx.fragments_per_chunk,
            na_filter=False,
            engine="c",
            quoting=3,
            comment=None,
        )
        for raw in _prepend(pending, reader):
            lines = np.arange(len(raw)) + line0 + done
            chunk = _checked(where, raw, lines, genome, known)
            if ctx.barcode_samples is not None:
                samples = chunk["barcode"].map(ctx.barcode_samples)
                keep = samples.notna().to_numpy()
                source.background[0] += int((~keep).sum())
                chunk = chunk.loc[keep].assign(sample_id=samples[keep].astype(str))
            else:
                chunk = chunk.assign(sample_id=str(ctx.sample))
            done += len(raw)
            yield chunk
    except pd.errors.ParserError as exc:
        raise InputError(where, "field-count", str(exc).strip().splitlines()[-1]) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise gzip_error(file, exc, line=handle.line) from None
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise _non_integer(file, skipped + 1 + done) from None
    finally:
        handle.close()


def _non_integer(file: Path, start: int) -> InputError:
    """The refusal of the first field from line ``start`` on that is not a whole number
    (the error path of a typed parse, which does not say where it stopped)."""
    with open_checked_text(file) as f:
        for n, text in enumerate(f, start=1):
            if n < start or text.startswith("#"):
                continue
            fields = text.rstrip("\r\n").split("\t")
            for k, column in ((1, "start"), (2, "end"), (4, "count")):
                value = fields[k] if k < len(fields) else ""
                if not value.strip().lstrip("-").isdigit():
                    return InputError(
                        str(file),
                        "integer-counts" if column == "count" else "integer-coordinates",
                        f"{column} {value!r} is not a whole number",
                        line=n,
                    )
    return InputError(str(file), "integer-coordinates", "a value is not a whole number")


def _prepend(first: pd.DataFrame, rest: Any) -> Iterator[pd.DataFrame]:
    yield first
    yield from rest


def _checked(
    where: str, raw: pd.DataFrame, lines: np.ndarray, genome: Any, known: np.ndarray
) -> pd.DataFrame:
    """One chunk's fragments as typed columns, every row rule checked."""
    out = {c: raw[c].to_numpy(dtype=np.int64) for c in ("start", "end", "count")}
    contig = raw["contig"].to_numpy(dtype=object)
    s, e = out["start"], out["end"]

    def refuse(mask: np.ndarray, rule: str, message: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            frag = f"{contig[i]}:{s[i]}-{e[i]} {raw['barcode'].iloc[i]}"
            raise InputError(where, rule, message.format(frag=frag), line=int(lines[i]))

    refuse(
        (s < 0) | (e < 0), "non-negative-coordinates", "fragment {frag} has a negative coordinate"
    )
    refuse(s >= e, "fragment-interval", "fragment {frag}: start must be < end (0-based half-open)")
    refuse(out["count"] < 1, "positive-count", "fragment {frag} has a duplicate count < 1")
    refuse(
        ~pd.Series(contig).isin(known).to_numpy(),
        "known-contigs",
        "fragment {frag} is on a contig not in " + genome.describe(),
    )
    if genome.sizes:
        length = pd.Series(contig).map(dict(genome.sizes)).to_numpy(dtype=np.float64)
        refuse(e > length, "within-contig", "fragment {frag} ends beyond its contig's length")
    return pd.DataFrame(
        {
            "contig": contig,
            "start": s,
            "end": e,
            "barcode": raw["barcode"].to_numpy(dtype=object),
            "count": out["count"].astype(np.int32),
        }
    )


def insertion_counts(
    contig: np.ndarray, start: np.ndarray, end: np.ndarray, peaks: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which peak each Tn5 insertion of each fragment falls in.

    Insertions are both ends of a fragment, ``start`` and ``end - 1`` (Cell Ranger ATAC
    counts "cut sites" per peak so). ``peaks`` is sorted by contig and start and may
    overlap: an insertion counts in every peak holding it. Returns ``(fragment index,
    peak index, end: 0 start / 1 end)`` of every hit.
    """
    frag_out, peak_out, side_out = [], [], []
    offset = 0
    codes, names = pd.factorize(pd.Series(contig, dtype=object))
    code_of = {str(n): k for k, n in enumerate(names)}
    for name, group in peaks.groupby(peaks["contig"].astype(str), sort=False):
        n = len(group)
        starts = group["start"].to_numpy(dtype=np.int64)
        ends = group["end"].to_numpy(dtype=np.int64)
        # deepest overlap among the peaks: how many peaks back an insertion can hit
        events = np.concatenate([starts, ends])
        kinds = np.concatenate([np.ones(n, np.int64), -np.ones(n, np.int64)])
        order = np.lexsort((kinds, events))
        depth = int(np.cumsum(kinds[order]).max()) if n else 0
        base = offset
        offset += n
        if name not in code_of:
            continue
        rows = np.flatnonzero(codes == code_of[str(name)])
        if not rows.size:
            continue
        for side, pos in ((0, start[rows]), (1, end[rows] - 1)):
            last = np.searchsorted(starts, pos, side="right") - 1
            for k in range(depth):
                idx = last - k
                hit = (idx >= 0) & (pos < ends[np.maximum(idx, 0)])
                frag_out.append(rows[hit])
                peak_out.append(idx[hit] + base)
                side_out.append(np.full(int(hit.sum()), side, dtype=np.int8))
    if not frag_out:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, np.int8)
    return np.concatenate(frag_out), np.concatenate(peak_out), np.concatenate(side_out)


def read_tss(path: str | Path) -> pd.DataFrame:
    """TSS positions of a BED (1-bp records; the strand from a sixth column when present).

    Raises
    ------
    InputError
        ``tss-bed`` for a line without an integer start.
    """
    with open_checked_text(path) as f:
        rows = [
            line.rstrip("\r\n").split("\t")
            for line in f
            if line.strip() and not line.startswith(("#", "track", "browser"))
        ]
    try:
        start = np.array([int(r[1]) for r in rows], dtype=np.int64)
    except (ValueError, IndexError):
        raise InputError(
            str(path), "tss-bed", "expected 'contig<TAB>start<TAB>end' lines"
        ) from None
    frame = pd.DataFrame({"contig": [r[0] for r in rows], "start": start})
    if rows and all(len(r) >= 6 for r in rows):
        frame["strand"] = [r[5] for r in rows]
    return frame


def tss_scores(
    root: DataRoot, folders: list[str], barcodes: pd.Index, tss: pd.DataFrame
) -> np.ndarray:
    """ArchR TSS enrichment per barcode (``_qc.tss_enrichment``, Granja et al. 2021) of the
    stored fragments, read one (sample, contig) partition at a time: the statistic's
    counts add up over the partitions, so memory is one partition."""
    import pyarrow.parquet as pq

    from resistomics.modalities.accessibility._qc import tss_enrichment
    from resistomics.modalities.accessibility._tiles import Fragments, Intervals

    def chunks() -> Iterator[Fragments]:
        for folder in folders:
            contig = folder.rstrip("/").rsplit("contig=", 1)[1]
            with root.fs.open(posixpath.join(folder, "part-0.parquet"), "rb") as f:
                table = pq.read_table(f, columns=["start", "end", "barcode"]).to_pandas()
            cell = barcodes.get_indexer(table["barcode"].to_numpy(dtype=object))
            yield Fragments(
                contig=np.zeros(len(table), dtype=np.int64),
                start=table["start"].to_numpy(np.int64),
                end=table["end"].to_numpy(np.int64),
                cell=cell.astype(np.int64),
                contigs=(contig,),
                n_cells=len(barcodes),
            )

    intervals = Intervals(
        contig=tss["contig"].astype(str).to_numpy(),
        start=tss["start"].to_numpy(np.int64),
        end=tss["start"].to_numpy(np.int64) + 1,
        strand=tss["strand"].astype(str).to_numpy() if "strand" in tss.columns else None,
    )
    return tss_enrichment(chunks(), intervals, method="archr").score


#: Where a version's tile matrix goes (a second sparse-matrix store beside the first).
TILES_ADATA, TILES_BY_TILE = "tiles/expression.zarr", "tiles/by_gene.zarr"


def write_tiles(
    staging: Staging,
    folders: list[str],
    obs: pd.DataFrame,
    *,
    sizes: Mapping[str, int],
    tile_size: int,
    design: pd.DataFrame,
) -> int:
    """The genome-wide tile matrix (barcodes x ``tile_size``-bp tiles with an insertion),
    counted by ``_tiles.tile_counts_from_chunks`` (ArchR ``addTileMatrix``, SnapATAC2
    ``add_tile_matrix``: each Tn5 insertion adds 1 to its tile) contig by contig from the
    stored fragments, each contig's partitions read one at a time, and written as a
    sparse-matrix store at ``tiles/`` (both orientations). Memory: one contig's tile
    counts. Returns the number of tiles stored.
    """
    import pyarrow.parquet as pq
    import zarr

    from resistomics.modalities.accessibility._peaks import peak_ids
    from resistomics.modalities.accessibility._tiles import tile_counts_from_chunks
    from resistomics.storage import SparseMatrixWriter

    ws = staging.ws
    root, version_dir = ws.root, staging.new_version_dir()
    zarr.open_group(root.mapper(posixpath.join(version_dir, "tiles")), mode="w", zarr_format=3)
    cells = pd.Index(obs.index.astype(str))
    writer = SparseMatrixWriter(
        root,
        version_dir,
        orientation="genes",
        obs=obs,
        value_kind="counts",
        rows_per_block=ws.settings.rows_per_chunk,
        genes_per_block=ws.settings.genes_per_block,
        scratch=staging.scratch,
        design=design,
        adata=TILES_ADATA,
        by_gene=TILES_BY_TILE,
        metadata={"features": f"{tile_size} bp tiles", "tile_size": tile_size},
    )
    by_contig: dict[str, list[str]] = {}
    for folder in folders:
        by_contig.setdefault(folder.rstrip("/").rsplit("contig=", 1)[1], []).append(folder)
    n_tiles = 0
    step = ws.settings.genes_per_block
    for contig, length in sizes.items():
        parts = by_contig.get(contig, [])
        if not parts:
            continue

        def chunks(parts: list[str] = parts) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
            for folder in parts:
                with root.fs.open(posixpath.join(folder, "part-0.parquet"), "rb") as f:
                    table = pq.read_table(f, columns=["start", "end", "barcode"]).to_pandas()
                cell = cells.get_indexer(table["barcode"].astype(str).to_numpy())
                keep = cell >= 0
                yield (
                    table["start"].to_numpy(np.int64)[keep],
                    table["end"].to_numpy(np.int64)[keep],
                    cell[keep].astype(np.int64),
                )

        m = tile_counts_from_chunks(
            chunks(), n_cells=len(cells), contig_length=int(length), tile_size=tile_size
        ).tocsc()
        used = np.flatnonzero(np.diff(m.indptr))
        m = m[:, used]
        starts = used.astype(np.int64) * tile_size
        ends = np.minimum(starts + tile_size, int(length))
        for a in range(0, len(used), step):
            b = min(a + step, len(used))
            names = np.full(b - a, contig, dtype=object)
            var = pd.DataFrame(
                {"contig": names, "start": starts[a:b], "end": ends[a:b]},
                index=peak_ids(names, starts[a:b], ends[a:b]),
            )
            writer.add(m[:, a:b].T.astype(np.float64), var)
            staging.advance(1)
        n_tiles += len(used)
        del m
    writer.close()
    return n_tiles


def _peak_intervals(peaks: pd.DataFrame | None) -> Any:
    """The peak set as merged ``_tiles.Intervals`` (FRiP counts a fragment once)."""
    from resistomics.modalities.accessibility._tiles import Intervals, merge_intervals

    assert peaks is not None
    return merge_intervals(
        Intervals(
            peaks["contig"].astype(str).to_numpy(),
            peaks["start"].to_numpy(np.int64),
            peaks["end"].to_numpy(np.int64),
        )
    )


def _overlapping(chunk: pd.DataFrame, merged: Any) -> np.ndarray:
    """Which fragments of a chunk overlap a peak by >= 1 bp: the FRiP numerator of
    ``_qc.fragments_in_peaks`` (Signac's definition, as ``accessibility qc`` reports)."""
    from resistomics.modalities.accessibility._qc import fragments_in_peaks
    from resistomics.modalities.accessibility._tiles import Fragments

    codes, names = pd.factorize(chunk["contig"].to_numpy(dtype=object))
    frags = Fragments(
        contig=codes.astype(np.int64),
        start=chunk["start"].to_numpy(np.int64),
        end=chunk["end"].to_numpy(np.int64),
        cell=np.zeros(len(chunk), dtype=np.int64),
        contigs=tuple(str(n) for n in names),
        n_cells=1,
    )
    return fragments_in_peaks(frags, merged)


class _PartitionWriters:
    """One open Parquet file per (sample, contig); each chunk adds a row group to each."""

    def __init__(self, root: DataRoot, base: str) -> None:
        self.root, self.base = root, base
        self.open: dict[tuple[str, str], tuple[Any, Any]] = {}

    def write(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for (sample, contig), part in frame.groupby(["sample_id", "contig"], sort=False):
            key = (str(sample), str(contig))
            table = pa.Table.from_pandas(
                part[["start", "end", "barcode", "count"]], preserve_index=False
            )
            if key not in self.open:
                folder = posixpath.join(self.base, f"sample_id={key[0]}", f"contig={key[1]}")
                self.root.fs.makedirs(folder, exist_ok=True)
                f = self.root.fs.open(posixpath.join(folder, "part-0.parquet"), "wb")
                self.open[key] = (f, pq.ParquetWriter(f, table.schema, compression="zstd"))
            self.open[key][1].write_table(table)

    def close(self) -> None:
        for f, writer in self.open.values():
            writer.close()
            f.close()
        self.open.clear()


def write_fragments(
    staging: Staging,
    fmt: str,
    source: FragmentsSource,
    ctx: AccessibilityReadContext,
    design: pd.DataFrame,
) -> Written:
    """Store the fragments (and, with a peak set, the barcode x peak insertion counts)."""
    from resistomics.modalities.accessibility._writers import write_counts
    from resistomics.storage import append_partitioned

    ws = staging.ws
    counting = source.peaks is not None
    staging.stage(
        dataset_type="accessibility.counts" if counting else "accessibility.fragments",
        layout="sparse-matrix@1" if counting else "partitioned-table@1",
        parameters={"format": fmt, **source.details},
    )
    version_dir = staging.new_version_dir()
    writers = _PartitionWriters(ws.root, posixpath.join(version_dir, "fragments"))
    barcodes = pd.Index([], dtype=object)
    sample_of: list[str] = []
    n_unique = np.zeros(0, np.int64)
    n_reads = np.zeros(0, np.int64)
    n_in_peaks = np.zeros(0, np.int64)
    # Signac's nucleosome signal (_qc.nucleosome_signal): counts, so they add up over chunks
    n_free = np.zeros(0, np.int64)
    n_mono = np.zeros(0, np.int64)
    block = ctx.cells_per_block
    scratch = Path(tempfile.mkdtemp(prefix="resistomics-frag-", dir=ctx.scratch))
    pieces: dict[int, list[Path]] = {}
    n_fragments = 0
    merged_peaks = _peak_intervals(source.peaks) if counting else None
    try:
        for k, chunk in enumerate(source.chunks):
            writers.write(chunk)
            n_fragments += len(chunk)
            bc = chunk["barcode"].to_numpy(dtype=object)
            where = barcodes.get_indexer(bc)
            new = pd.unique(bc[where < 0])
            if len(new):
                first = chunk.drop_duplicates("barcode").set_index("barcode")["sample_id"]
                sample_of.extend(first.loc[new].astype(str).tolist())
                barcodes = barcodes.append(pd.Index(new, dtype=object))
                where = barcodes.get_indexer(bc)
                grow = len(barcodes) - len(n_unique)
                n_unique = np.concatenate([n_unique, np.zeros(grow, np.int64)])
                n_reads = np.concatenate([n_reads, np.zeros(grow, np.int64)])
                n_in_peaks = np.concatenate([n_in_peaks, np.zeros(grow, np.int64)])
                n_free = np.concatenate([n_free, np.zeros(grow, np.int64)])
                n_mono = np.concatenate([n_mono, np.zeros(grow, np.int64)])
            n_unique += np.bincount(where, minlength=len(barcodes))
            length = chunk["end"].to_numpy(np.int64) - chunk["start"].to_numpy(np.int64)
            n_free += np.bincount(where[length < NUCLEOSOME_FREE_BELOW], minlength=len(barcodes))
            mono = (length >= MONONUCLEOSOMAL[0]) & (length <= MONONUCLEOSOMAL[1])
            n_mono += np.bincount(where[mono], minlength=len(barcodes))
            n_reads += np.bincount(
                where, weights=chunk["count"].to_numpy(), minlength=len(barcodes)
            ).astype(np.int64)
            if counting:
                assert source.peaks is not None
                frag, peak, _ = insertion_counts(
                    chunk["contig"].to_numpy(dtype=object),
                    chunk["start"].to_numpy(),
                    chunk["end"].to_numpy(),
                    source.peaks,
                )
                in_peak = _overlapping(chunk, merged_peaks)
                n_in_peaks += np.bincount(where[in_peak], minlength=len(barcodes))
                cells = where[frag]
                ids = cells // block
                order = np.argsort(ids, kind="stable")
                bids, starts = np.unique(ids[order], return_index=True)
                ends = [*starts[1:].tolist(), len(order)] if order.size else []
                for b, s0, e0 in zip(bids, starts, ends, strict=True):
                    sel = order[s0:e0]
                    p = scratch / f"b{int(b):06d}_{k:06d}.npz"
                    np.savez(p, c=cells[sel], p=peak[sel])
                    pieces.setdefault(int(b), []).append(p)
            staging.advance(1)
        folders = [
            posixpath.join(writers.base, f"sample_id={a}", f"contig={b}") for a, b in writers.open
        ]
        writers.close()
        if n_fragments == 0:
            raise InputError(str(source.path), "not-empty", "no fragment of a registered sample")
        qc = pd.DataFrame(
            {
                "barcode": np.asarray(barcodes, dtype=object),
                "sample_id": sample_of,
                "unique_fragments": n_unique,
                "reads": n_reads,
            }
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            qc["nucleosome_signal"] = n_mono.astype(np.float64) / n_free.astype(np.float64)
        if ctx.tss is not None:
            qc["tss_enrichment"] = tss_scores(ws.root, folders, barcodes, ctx.tss)
        if counting:
            qc["fragments_in_peaks"] = n_in_peaks
            qc["fraction_in_peaks"] = n_in_peaks / np.maximum(n_unique, 1)
        append_partitioned(ws.root, version_dir, "barcodes", qc, by="sample_id")
        kept_mask = n_unique >= ctx.min_fragments
        tiles = 0
        if ctx.tile_size and ctx.genome.sizes:
            tile_obs = pd.DataFrame(
                {"sample_id": np.asarray(sample_of, dtype=object)[kept_mask]},
                index=pd.Index(np.asarray(barcodes, dtype=object)[kept_mask], dtype=str),
            )
            tiles = write_tiles(
                staging,
                folders,
                tile_obs,
                sizes=ctx.genome.sizes,
                tile_size=ctx.tile_size,
                design=design,
            )
        if not counting:
            return Written(
                shape=(n_fragments,),
                detail=f"{n_fragments} fragments of {len(barcodes)} barcodes"
                + (f", {tiles} tiles" if tiles else ""),
                report={
                    "fragments": n_fragments,
                    "barcodes": len(barcodes),
                    "background": source.background[0],
                    "tiles": tiles,
                },
            )
        assert source.peaks is not None
        kept = n_unique >= ctx.min_fragments
        new_index = np.cumsum(kept) - 1
        obs = pd.DataFrame(
            {"sample_id": sample_of}, index=pd.Index(np.asarray(barcodes, dtype=object), dtype=str)
        )
        qc_columns = qc.set_index("barcode")[
            [
                c
                for c in (
                    "unique_fragments",
                    "fraction_in_peaks",
                    "tss_enrichment",
                    "nucleosome_signal",
                )
                if c in qc
            ]
        ]
        qc_columns.index = qc_columns.index.astype(str)
        n_peaks = len(source.peaks)

        def blocks() -> Iterator[tuple[sp.csr_matrix, pd.DataFrame]]:
            for b in range((len(barcodes) + block - 1) // block):
                lo, hi = b * block, min((b + 1) * block, len(barcodes))
                cs, ps = [], []
                for p in pieces.get(b, []):
                    with np.load(p) as z:
                        cs.append(z["c"])
                        ps.append(z["p"])
                c = np.concatenate(cs) if cs else np.zeros(0, np.int64)
                pk = np.concatenate(ps) if ps else np.zeros(0, np.int64)
                rows = kept[lo:hi]
                if not rows.any():
                    continue
                sel = kept[c]
                m = sp.csr_matrix(
                    (
                        np.ones(int(sel.sum()), np.float64),
                        (new_index[c[sel]] - new_index[lo:hi][rows][0], pk[sel]),
                    ),
                    shape=(int(rows.sum()), n_peaks),
                )
                m.sum_duplicates()
                yield m, obs.iloc[lo:hi][rows]

        matrix = PeakMatrixSource(
            fmt=fmt,
            orientation="cells",
            fixed=source.peaks,
            blocks=blocks(),
            details=dict(source.details),
        )
        written = write_counts(staging, fmt, matrix, design, obs_columns=qc_columns, stage=False)
        return Written(
            shape=written.shape,
            detail=f"{written.detail} from {n_fragments} fragments"
            + (f", {tiles} tiles" if tiles else ""),
            report={
                **written.report,
                "fragments": n_fragments,
                "background": source.background[0],
                "tiles": tiles,
            },
        )
    finally:
        writers.close()
        shutil.rmtree(scratch, ignore_errors=True)


# -- validation summaries ---------------------------------------------------------------


def _partition_summary(
    url: str, options_json: str, directory: str, sizes: Mapping[str, int]
) -> dict[str, Any]:
    import json

    import pyarrow.parquet as pq

    from resistomics.storage import DataRoot

    root = DataRoot(url, json.loads(options_json))
    with root.fs.open(posixpath.join(directory, "part-0.parquet"), "rb") as f:
        frame = pq.read_table(f).to_pandas()
    sample = directory.rstrip("/").split("sample_id=", 1)[1].split("/", 1)[0]
    contig = directory.rstrip("/").rsplit("contig=", 1)[1]
    s = frame["start"].to_numpy(np.int64)
    e = frame["end"].to_numpy(np.int64)
    frame = frame.sort_values(["barcode", "start", "end"], kind="stable")
    same = frame[["barcode", "start", "end"]].duplicated().to_numpy()
    length = float(sizes.get(contig, np.inf))

    def examples(mask: np.ndarray, rows: pd.DataFrame, what: str) -> list[str]:
        return [
            f"{sample} {contig}:{rows['start'].iloc[i]}-{rows['end'].iloc[i]} {rows['barcode'].iloc[i]} {what}"
            for i in np.flatnonzero(mask)[:_EXAMPLES]
        ]

    raw = frame.sort_index()
    return {
        "sample_id": sample,
        "contig": contig,
        "n_fragments": len(frame),
        "n_negative": int(((s < 0) | (e < 0)).sum()),
        "negative_examples": examples((s < 0) | (e < 0), raw, "negative coordinate"),
        "n_bad_interval": int((s >= e).sum()),
        "interval_examples": examples(s >= e, raw, "start >= end"),
        "n_beyond_end": int((e > length).sum()),
        "beyond_examples": examples(e > length, raw, "beyond the contig's length"),
        "n_duplicate": int(same.sum()),
        "duplicate_examples": examples(same, frame, "twice"),
    }


FRAGMENT_TABLE_COLUMNS = [
    "sample_id",
    "contig",
    "n_fragments",
    "n_negative",
    "negative_examples",
    "n_bad_interval",
    "interval_examples",
    "n_beyond_end",
    "beyond_examples",
    "n_duplicate",
    "duplicate_examples",
]


def summarize_fragment_partitions(
    root: DataRoot, path: str, *, chrom_sizes: Mapping[str, int] | None = None
) -> pd.DataFrame:
    """One row per stored (sample, contig) partition of a version's ``fragments`` table
    (empty when it has none), one Dask task per partition."""
    import json

    import dask

    base = posixpath.join(path, "fragments")
    folders = (
        sorted(p for p in root.fs.find(base, withdirs=True) if "contig=" in p.rsplit("/", 1)[-1])
        if root.fs.exists(base)
        else []
    )
    options = json.dumps(dict(root.storage_options), sort_keys=True)
    tasks = [
        dask.delayed(_partition_summary, pure=True)(root.url, options, d, dict(chrom_sizes or {}))
        for d in folders
    ]
    (rows,) = dask.compute(tasks)
    return pd.DataFrame(rows, columns=FRAGMENT_TABLE_COLUMNS)


def summarize_fragments(
    root: DataRoot, path: str, *, chrom_sizes: Mapping[str, int] | None = None
) -> dict[str, pd.DataFrame]:
    """The *fragments*, *contigs* and *cells* tables of an ``accessibility.fragments``
    version (see ``schemas/accessibility/accessibility.fragments.yaml``)."""
    from resistomics.storage import layout

    fragments = summarize_fragment_partitions(root, path, chrom_sizes=chrom_sizes)
    contigs = pd.DataFrame({"contig": sorted(set(fragments["contig"].astype(str)))}, dtype=object)
    spec = layout("partitioned-table@1")
    assert spec.read_table is not None
    qc = spec.read_table(root, path, "barcodes")
    cells = pd.DataFrame(
        {
            "obs_id": (qc["sample_id"].astype(str) + "/" + qc["barcode"].astype(str)).to_numpy(),
            "sample_id": qc["sample_id"].astype(str).to_numpy(),
            "unique_fragments": qc["unique_fragments"].to_numpy(dtype=np.float64),
        }
    )
    return {"fragments": fragments, "contigs": contigs, "cells": cells}
