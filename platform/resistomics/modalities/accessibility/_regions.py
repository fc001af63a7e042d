"""Named regions for the accessibility analyses: peak-set and gene BEDs, the regions
of a gene program, and the GC content of peaks from a genome FASTA.

* :func:`read_named_bed`: a BED with a name column (peak sets, motif hits, genes), the
  strand from column 6 when there is one; checked as peaks are (start < end, start >=
  0, known contigs, within the chrom sizes).
* :func:`program_regions`: the regions of the genes of each gene program, a gene's
  body plus its promoter (``promoter`` bp upstream of the TSS: left of a ``+`` gene,
  right of a ``-`` gene, both sides without a strand), named by the program; chromVAR
  then takes the peaks overlapping them as the program's peak set.
* :func:`peak_gc`: chromVAR's ``addGCBias``: the fraction of G and C bases of each
  peak's sequence (``letterFrequency(..., "GC", as.prob = TRUE)``: over the peak's
  width, N bases counted in the width), read with ``pysam.FastaFile`` (an indexed
  FASTA; the ``.fai`` is built when missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from resistomics.errors import InputError
from resistomics.modalities._mtx import read_small_tsv
from resistomics.modalities.accessibility._peaks import read_peak_bed
from resistomics.modalities.accessibility._tiles import Intervals

if TYPE_CHECKING:
    from resistomics.modalities.accessibility._peaks import Genome

__all__ = ["DEFAULT_PROMOTER", "peak_gc", "program_regions", "read_named_bed"]

#: bp upstream of the TSS a gene's promoter spans (the 2 kb of ChromHMM's RefSeqTSS2kb).
DEFAULT_PROMOTER = 2000


def read_named_bed(path: str | Path, genome: Genome, *, what: str) -> Intervals:
    """The regions of a BED with names (column 4) and, when it has six columns or more,
    strands (column 6: ``+``, ``-`` or ``.``).

    Raises
    ------
    InputError
        ``columns`` when the BED has no name column (``what`` says what it is for); the
        rules of :func:`._peaks.read_peak_bed` (start < end, known contig, ...).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "exists", f"no such {what} BED")
    frame = read_peak_bed(path, genome)
    names = frame["name"].astype(str).to_numpy() if "name" in frame else None
    if names is None or (frame.index.astype(str) == names).all():
        raise InputError(
            str(path),
            "columns",
            f"a {what} BED needs a name column (chrom, start, end, name[, score, strand])",
            line=1,
        )
    strand = None
    raw = read_small_tsv(path, 3, skip=_header_lines(path))
    if raw.shape[1] >= 6:
        strand = raw[5].astype(str).to_numpy()
        bad = ~np.isin(strand, ["+", "-", "."])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(
                str(path),
                "strand",
                f"strand {strand[i]!r} is not +, - or .",
                line=i + 1 + _header_lines(path),
                column="strand",
            )
    return Intervals(
        contig=frame["contig"].astype(str).to_numpy(),
        start=frame["start"].to_numpy(dtype=np.int64),
        end=frame["end"].to_numpy(dtype=np.int64),
        strand=strand,
        name=names,
    )


def _header_lines(path: Path) -> int:
    from resistomics._text_files import open_checked_text

    skip = 0
    with open_checked_text(path) as f:
        for text in f:
            if not text.startswith(("#", "track", "browser")):
                break
            skip += 1
    return skip


def program_regions(
    genes: Intervals,
    programs: Mapping[str, Sequence[str]],
    *,
    promoter: int = DEFAULT_PROMOTER,
) -> tuple[Intervals, pd.DataFrame]:
    """The body + promoter regions of each program's genes, named by the program.

    A gene named more than once in ``genes`` (several transcripts) contributes every
    record. Returns the regions and a table ``set, n_genes, n_genes_located, genes``
    (the program's genes found in ``genes``, ``;``-joined).
    """
    if genes.name is None:
        raise InputError("genes", "columns", "the genes BED needs a name column")
    name = np.asarray(genes.name).astype(str)
    start = np.asarray(genes.start, dtype=np.int64)
    end = np.asarray(genes.end, dtype=np.int64)
    strand = (
        np.asarray(genes.strand).astype(str)
        if genes.strand is not None
        else np.full(name.shape, ".")
    )
    lo = np.where(strand == "-", start, np.maximum(start - promoter, 0))
    hi = np.where(strand == "+", end, end + promoter)
    rows_of = pd.Series(np.arange(name.shape[0])).groupby(name).agg(list).to_dict()
    contig: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    summary = []
    for program, members in programs.items():
        located = [g for g in dict.fromkeys(members) if g in rows_of]
        rows = np.asarray([r for g in located for r in rows_of[g]], dtype=np.int64)
        contig.append(np.asarray(genes.contig).astype(str)[rows])
        starts.append(lo[rows])
        ends.append(hi[rows])
        labels.append(np.full(rows.shape[0], program, dtype=object))
        summary.append(
            {
                "set": program,
                "n_genes": len(set(members)),
                "n_genes_located": len(located),
                "genes": ";".join(located),
            }
        )
    regions = Intervals(
        contig=np.concatenate(contig) if contig else np.zeros(0, dtype=object),
        start=np.concatenate(starts) if starts else np.zeros(0, np.int64),
        end=np.concatenate(ends) if ends else np.zeros(0, np.int64),
        name=np.concatenate(labels).astype(str) if labels else np.zeros(0, dtype=str),
    )
    return regions, pd.DataFrame(summary, columns=["set", "n_genes", "n_genes_located", "genes"])


def peak_gc(fasta: str | Path, peaks: Intervals) -> np.ndarray:
    """GC fraction of each peak (G + C over the peak's width), chromVAR's ``addGCBias``.

    Raises
    ------
    InputError
        ``exists`` (no FASTA), ``fasta`` (pysam cannot open or index it), ``contig`` (a
        peak's contig is not in the FASTA) or ``within-contig`` (a peak ends beyond it).
    """
    import pysam

    path = Path(fasta)
    if not path.is_file():
        raise InputError(str(path), "exists", "no such genome FASTA")
    try:
        handle = pysam.FastaFile(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(str(path), "fasta", f"not an indexable FASTA: {exc}") from None
    contig = np.asarray(peaks.contig).astype(str)
    start = np.asarray(peaks.start, dtype=np.int64)
    end = np.asarray(peaks.end, dtype=np.int64)
    gc = np.empty(start.shape[0], dtype=np.float64)
    with handle:
        lengths = dict(zip(handle.references, handle.lengths, strict=True))
        for i in range(start.shape[0]):
            c = contig[i]
            if c not in lengths:
                raise InputError(
                    str(path),
                    "contig",
                    f"peak {c}:{start[i]}-{end[i]} is on {c!r}, which the FASTA does not "
                    f"have (it has {', '.join(list(lengths)[:5])}...)",
                )
            if end[i] > lengths[c]:
                raise InputError(
                    str(path),
                    "within-contig",
                    f"peak {c}:{start[i]}-{end[i]} ends beyond {c} ({lengths[c]} bp)",
                )
            seq = handle.fetch(c, int(start[i]), int(end[i])).upper()
            gc[i] = (seq.count("G") + seq.count("C")) / (end[i] - start[i])
    return gc
