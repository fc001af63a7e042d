"""What an accessibility reader hands the writer, and what it may know of the study."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from resistomics.errors import InputError
from resistomics.modalities._checks import check_registered
from resistomics.modalities.accessibility._peaks import Genome

__all__ = ["AccessibilityReadContext", "PeakMatrixSource", "map_barcodes", "read_barcode_samples"]


@dataclass(frozen=True)
class AccessibilityReadContext:
    """The study's samples, genome and the ingest's options, as a reader sees them.

    ``sample`` assigns every barcode of a file to one sample; ``barcode_samples`` maps
    barcodes to samples (a multiplexed run); ``peaks`` is the peak set a fragments file
    is counted over.
    """

    registered_samples: frozenset[str]
    genome: Genome = field(default_factory=Genome)
    sample: str | None = None
    barcode_samples: Mapping[str, str] | None = None
    barcode_table: str | None = None
    peaks: Path | None = None
    cells_per_block: int = 8192
    peaks_per_block: int = 16384
    fragments_per_chunk: int = 2_000_000
    min_fragments: int = 1
    #: TSS positions (contig, start[, strand]) to score each barcode's TSS enrichment
    tss: pd.DataFrame | None = None
    #: bp per tile of the tile matrix built from fragments (0: none; needs chrom sizes)
    tile_size: int = 0
    scratch: Path | None = None


@dataclass
class PeakMatrixSource:
    """A count matrix being read: one axis known up front, blocks of the other streamed.

    ``orientation="cells"``: blocks are barcodes x peaks and ``fixed`` is the peak table
    (var); ``"genes"``: blocks are peaks x samples (a bulk table) with their rows of the
    peak table, and ``fixed`` is obs. obs always has ``sample_id``.
    """

    fmt: str
    orientation: Literal["cells", "genes"]
    fixed: pd.DataFrame
    blocks: Iterator[tuple[sp.spmatrix | sp.sparray | np.ndarray, pd.DataFrame]]
    details: dict[str, Any] = field(default_factory=dict)
    countlike: list[bool] = field(default_factory=lambda: [True])

    def see(self, values: np.ndarray) -> None:
        """Track whether every value read could be a count (finite, whole, >= 0)."""
        if self.countlike[0] and values.size:
            with np.errstate(invalid="ignore"):
                ok = np.isfinite(values) & (values >= 0) & (np.floor(values) == values)
            self.countlike[0] = bool(ok.all())


def read_barcode_samples(path: str | Path) -> dict[str, str]:
    """A barcode -> sample table (TSV/CSV, header with ``barcode`` and ``sample_id``).

    Raises
    ------
    InputError
        ``barcode-samples`` for a missing column or a barcode given two samples.
    """
    from resistomics._text_files import open_checked_text

    with open_checked_text(path) as f:
        text = f.read()
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    sep = "," if rows and "," in rows[0] and "\t" not in rows[0] else "\t"
    if not rows:
        raise InputError(str(path), "not-empty", "the barcode table is empty")
    header = [h.strip().lower() for h in rows[0].split(sep)]
    if "barcode" not in header or "sample_id" not in header:
        raise InputError(
            str(path),
            "barcode-samples",
            f"the header must name columns 'barcode' and 'sample_id', found {header}",
            line=1,
        )
    b, s = header.index("barcode"), header.index("sample_id")
    out: dict[str, str] = {}
    for n, line in enumerate(rows[1:], start=2):
        fields = [x.strip() for x in line.split(sep)]
        if len(fields) != len(header):
            raise InputError(
                str(path),
                "field-count",
                f"expected {len(header)} fields, found {len(fields)}",
                line=n,
            )
        if fields[b] in out and out[fields[b]] != fields[s]:
            raise InputError(
                str(path),
                "barcode-samples",
                f"barcode {fields[b]!r} is given two samples ({out[fields[b]]!r}, {fields[s]!r})",
                line=n,
            )
        out[fields[b]] = fields[s]
    return out


def map_barcodes(
    where: Path,
    barcodes: np.ndarray,
    ctx: AccessibilityReadContext,
    *,
    second_column: np.ndarray | None = None,
    directory_name: str | None = None,
) -> np.ndarray:
    """The sample of each barcode of a peak matrix, every sample registered.

    From a second column of ``barcodes.tsv``, else the barcode table
    (``--barcode-samples``), else ``--sample``, else the directory's name when it is a
    registered sample.

    Raises
    ------
    InputError
        ``sample-mapping`` when nothing says which sample a barcode belongs to,
        ``barcode-samples`` for a barcode missing from the table, and
        ``registered-samples`` for a sample the study does not have.
    """
    if second_column is not None:
        samples = np.asarray(second_column, dtype=object)
    elif ctx.barcode_samples is not None:
        mapped = pd.Series(barcodes).map(ctx.barcode_samples)
        if mapped.isna().any():
            i = int(np.flatnonzero(mapped.isna().to_numpy())[0])
            raise InputError(
                str(where),
                "barcode-samples",
                f"barcode {barcodes[i]!r} is not in the barcode table {ctx.barcode_table}",
                line=i + 1,
            )
        samples = mapped.to_numpy(dtype=object)
    else:
        sample = ctx.sample or (
            directory_name if directory_name in ctx.registered_samples else None
        )
        if sample is None:
            raise InputError(
                str(where),
                "sample-mapping",
                "cannot tell which registered sample these barcodes belong to: pass "
                "--sample or --barcode-samples, name the directory after the sample, or "
                "add a second column to barcodes.tsv",
            )
        samples = np.full(len(barcodes), sample, dtype=object)
    check_registered(where, sorted(set(samples.tolist())), ctx.registered_samples)
    return samples
