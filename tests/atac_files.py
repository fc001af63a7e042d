"""Generated ATAC-seq inputs for the accessibility tests: peak matrices, peak tables,
fragments files, narrowPeak sets, with the defects each reader must refuse."""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "PEAK_DEFECTS",
    "break_peaks",
    "peaks_of",
    "write_fragments",
    "write_narrowpeak",
    "write_peak_h5",
    "write_peak_matrix",
    "write_peak_table",
]


def peaks_of(
    n: int, *, contigs: Sequence[str] = ("chr1", "chr2"), width: int = 500
) -> list[tuple[str, int, int]]:
    """``n`` non-overlapping peaks, sorted, spread over ``contigs``."""
    per = -(-n // len(contigs))
    return [
        (contigs[i // per], 10_000 + 2_000 * (i % per), 10_000 + 2_000 * (i % per) + width)
        for i in range(n)
    ]


def _put(path: Path, text: str, *, gz: bool) -> Path:
    data = text.encode()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def write_peak_matrix(
    directory: Path,
    x: np.ndarray,
    peaks: Sequence[tuple[str, int, int]],
    barcodes: Sequence[str],
    samples: Sequence[str] | None,
    *,
    gz: bool = True,
) -> Path:
    """A Cell Ranger ATAC ``filtered_peak_bc_matrix/``: barcodes x peaks ``x`` stored peaks
    x barcodes; ``samples`` as a second column of ``barcodes.tsv`` (None: one column)."""
    directory.mkdir(parents=True)
    _put(directory / "peaks.bed", "".join(f"{c}\t{s}\t{e}\n" for c, s, e in peaks), gz=False)
    _put(
        directory / "barcodes.tsv",
        "".join(
            f"{b}\t{s}\n" if samples is not None else f"{b}\n"
            for b, s in zip(barcodes, samples or barcodes, strict=True)
        ),
        gz=gz,
    )
    pi, ci = np.nonzero(x.T)
    lines = [
        "%%MatrixMarket matrix coordinate integer general",
        f"{x.shape[1]} {x.shape[0]} {len(pi)}",
        *(f"{p + 1} {c + 1} {int(x[c, p])}" for p, c in zip(pi, ci, strict=True)),
    ]
    _put(directory / "matrix.mtx", "\n".join(lines) + "\n", gz=gz)
    return directory


def write_peak_h5(
    path: Path,
    x: np.ndarray,
    peaks: Sequence[tuple[str, int, int]],
    barcodes: Sequence[str],
    *,
    genes: Sequence[str] = (),
    gene_counts: np.ndarray | None = None,
    version: int = 2,
) -> Path:
    """A Cell Ranger ATAC ``filtered_peak_bc_matrix.h5`` (``/matrix``: features x barcodes
    CSC ``data``/``indices``/``indptr``/``shape``, ``barcodes``,
    ``features/{id,name,feature_type,genome,interval}``) of barcodes x peaks ``x``; with
    ``genes`` (and ``gene_counts``, barcodes x genes) an ARC file whose Gene Expression
    features come first. ``version`` 1 writes ``features`` without ``interval``."""
    import h5py
    import scipy.sparse as sp

    ids = [f"{c}:{s}-{e}" for c, s, e in peaks]
    full = x if not genes else np.hstack([np.asarray(gene_counts), x])
    names = [*genes, *ids]
    kinds = ["Gene Expression"] * len(genes) + ["Peaks"] * len(ids)
    m = sp.csc_matrix(np.asarray(full).T.astype(np.int32))
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"] = m.data
        g["indices"] = m.indices.astype(np.int64)
        g["indptr"] = m.indptr.astype(np.int64)
        g["shape"] = np.array(m.shape, dtype=np.int32)
        g["barcodes"] = np.array([b.encode() for b in barcodes])
        feats = g.create_group("features")
        feats["id"] = np.array(
            [
                n.encode()
                for n in (list(genes) and [f"ENSG{i:011d}" for i in range(len(genes))]) + ids
            ]
        )
        feats["name"] = np.array([n.encode() for n in names])
        feats["feature_type"] = np.array([k.encode() for k in kinds])
        feats["genome"] = np.array([b"GRCh38"] * len(names))
        if version >= 2:
            feats["interval"] = np.array([b"NA"] * len(genes) + [i.encode() for i in ids])
    return path


def write_peak_table(
    path: Path,
    peaks: Sequence[tuple[str, int, int]],
    samples: Sequence[str],
    values: np.ndarray,
    *,
    featurecounts: bool = False,
) -> Path:
    """A bulk peak table (peaks x samples): featureCounts (SAF 1-based coordinates, BAM
    names, its comment line) or ``chrom start end name <samples>``."""
    if featurecounts:
        lines = [
            '# Program:featureCounts v2.0.6; Command:"featureCounts" "-F" "SAF"',
            "\t".join(["Geneid", "Chr", "Start", "End", "Strand", "Length"])
            + "\t"
            + "\t".join(f"/data/bam/{s}.sorted.bam" for s in samples),
        ]
        lines += [
            f"peak{i}\t{c}\t{s + 1}\t{e}\t+\t{e - s}\t" + "\t".join(str(int(v)) for v in row)
            for i, ((c, s, e), row) in enumerate(zip(peaks, values, strict=True))
        ]
    else:
        lines = ["chrom\tstart\tend\tname\t" + "\t".join(samples)]
        lines += [
            f"{c}\t{s}\t{e}\tpeak{i}\t" + "\t".join(str(int(v)) for v in row)
            for i, ((c, s, e), row) in enumerate(zip(peaks, values, strict=True))
        ]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def write_narrowpeak(path: Path, peaks: Sequence[tuple[str, int, int]]) -> Path:
    """A MACS2 narrowPeak file of ``peaks`` (signal, p, q and summit made up)."""
    lines = [
        f"{c}\t{s}\t{e}\tpeak_{i}\t{100 + i}\t.\t{5.5 + i:.3f}\t{12.0:.3f}\t{9.5:.3f}\t{(e - s) // 2}"
        for i, (c, s, e) in enumerate(peaks)
    ]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def write_fragments(
    path: Path,
    rows: Sequence[tuple[str, int, int, str, int]],
    *,
    header: bool = True,
    index: bool = True,
) -> Path:
    """A 10x ``fragments.tsv.gz`` (bgzip, ``#`` header lines) of ``rows`` in the order
    given, with its tabix index when ``index`` (and the rows sorted)."""
    import pysam

    lines = ["# id=sample", "# reference_path=/refdata/GRCh38"] if header else []
    lines += [f"{c}\t{s}\t{e}\t{b}\t{n}" for c, s, e, b, n in rows]
    plain = path.with_name(path.name.removesuffix(".gz"))
    plain.write_text("\n".join(lines) + "\n")
    if index:
        pysam.tabix_index(str(plain), preset="bed", force=True, meta_char="#")
    else:
        pysam.tabix_compress(str(plain), str(path), force=True)
        plain.unlink()
    return path


# -- defects -----------------------------------------------------------------------------

#: What each peak defect does to the third peak, and the rule a reader must name.
PEAK_DEFECTS: dict[str, str] = {
    "start-after-end": "peak-interval",
    "negative-start": "non-negative-coordinates",
    "unknown-contig": "known-contigs",
    "duplicate-peak": "unique-peaks",
}


def break_peaks(peaks: list[tuple[str, int, int]], defect: str) -> list[tuple[str, int, int]]:
    """A copy of ``peaks`` with ``defect`` planted in the third peak (index 2)."""
    out = list(peaks)
    c, s, e = out[2]
    out[2] = {
        "start-after-end": (c, e, s),
        "negative-start": (c, -5, e),
        "unknown-contig": ("chrUn_weird", s, e),
        "duplicate-peak": out[1],
    }[defect]
    return out
