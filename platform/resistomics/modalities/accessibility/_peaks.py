"""Peaks: genomic intervals checked the same way whichever file they come from.

A peak is ``contig, start, end`` in BED coordinates (0-based, half-open), named
``contig:start-end`` in every store (so two datasets of the same peak set join on it).
:func:`checked_peaks` turns parsed text columns into the peak table and refuses, with
the file, the line and the rule, a coordinate that is not an integer
(``integer-coordinates``), a negative one (``non-negative-coordinates``), an empty or
reversed interval (``peak-interval``: start < end), a contig the study's genome does not
know (``known-contigs``), an end beyond the contig's length when a chrom-sizes file is
given (``within-contig``) and a peak given twice (``unique-peaks``). The same rules are
re-checked on the stored table by the validation summaries.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics._text_files import open_checked_text
from resistomics.errors import InputError
from resistomics.modalities._genome import DEFAULT_CONTIGS, read_chrom_sizes
from resistomics.modalities._mtx import gzip_error, read_small_tsv

__all__ = [
    "DEFAULT_CONTIGS",
    "NARROWPEAK_COLUMNS",
    "Genome",
    "checked_peaks",
    "peak_ids",
    "read_chrom_sizes",
    "read_peak_bed",
]

#: MACS2/3 narrowPeak (ENCODE): BED6 + signalValue, pValue, qValue, summit offset.
NARROWPEAK_COLUMNS = (
    "contig",
    "start",
    "end",
    "name",
    "score",
    "strand",
    "signal_value",
    "p_value",
    "q_value",
    "summit",
)


@dataclass(frozen=True)
class Genome:
    """The contigs a study's coordinates may name, and their lengths when known."""

    contigs: frozenset[str] = DEFAULT_CONTIGS
    sizes: Mapping[str, int] | None = None

    def describe(self) -> str:
        if self.sizes:
            return "the chrom-sizes file"
        return "the known contigs (settings contigs, else 1-22, X, Y, M, MT, with or without chr)"


def peak_ids(contig: Sequence[str] | np.ndarray, start: np.ndarray, end: np.ndarray) -> pd.Index:
    """``contig:start-end`` for each peak (BED coordinates)."""
    return pd.Index(
        pd.Series(np.asarray(contig, dtype=object)).astype(str)
        + ":"
        + pd.Series(start).astype(str)
        + "-"
        + pd.Series(end).astype(str),
        dtype=str,
    )


def _integers(path: str, values: pd.Series, what: str, lines: np.ndarray) -> np.ndarray:
    text = values.astype(str).str.strip()
    ok = text.str.fullmatch(r"-?\d+")
    if not ok.all():
        i = int(np.flatnonzero(~ok.to_numpy())[0])
        raise InputError(
            path,
            "integer-coordinates",
            f"{what} {text.iloc[i]!r} is not a whole number",
            line=int(lines[i]),
        )
    return text.astype(np.int64).to_numpy()


def checked_peaks(
    path: str | Path,
    contig: pd.Series,
    start: pd.Series,
    end: pd.Series,
    *,
    lines: np.ndarray,
    genome: Genome,
    name: pd.Series | None = None,
    one_based: bool = False,
) -> pd.DataFrame:
    """The peak table (``contig``, ``start``, ``end``, ``name``; index ``contig:start-end``)
    of parsed text columns, every rule of the module checked.

    ``lines`` are the 1-based file lines of the rows (for the messages); ``one_based``
    converts featureCounts/SAF coordinates (1-based, inclusive) to BED ones.

    Raises
    ------
    InputError
        With the line of the first peak breaking a rule (see the module docstring).
    """
    where = str(path)
    c = contig.astype(str).str.strip().to_numpy(dtype=object)
    s = _integers(where, start, "start", lines)
    e = _integers(where, end, "end", lines)
    if one_based:
        s = s - 1  # SAF/featureCounts: 1-based inclusive -> BED half-open

    def refuse(mask: np.ndarray, rule: str, message: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise InputError(
                where, rule, message.format(peak=f"{c[i]}:{s[i]}-{e[i]}"), line=int(lines[i])
            )

    refuse((s < 0) | (e < 0), "non-negative-coordinates", "peak {peak} has a negative coordinate")
    refuse(s >= e, "peak-interval", "peak {peak}: start must be < end (BED, 0-based half-open)")
    known = np.isin(c, np.array(sorted(genome.contigs), dtype=object))
    refuse(~known, "known-contigs", f"peak {{peak}} is on a contig not in {genome.describe()}")
    if genome.sizes:
        length = pd.Series(c).map(genome.sizes).to_numpy(dtype=np.float64)
        refuse(e > length, "within-contig", "peak {peak} ends beyond its contig's length")
    ids = peak_ids(c, s, e)
    dup = ids.duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(lines[int(np.flatnonzero(ids == ids[i])[0])])
        raise InputError(
            where,
            "unique-peaks",
            f"peak {ids[i]} appears twice (first on line {first})",
            line=int(lines[i]),
        )
    names = (
        name.astype(str).str.strip().to_numpy(dtype=object)
        if name is not None
        else np.asarray(ids, dtype=object)
    )
    return pd.DataFrame({"contig": c, "start": s, "end": e, "name": names}, index=ids)


def read_peak_bed(path: str | Path, genome: Genome) -> pd.DataFrame:
    """A peak set: BED3+ (``peaks.bed`` of Cell Ranger ATAC) or MACS narrowPeak.

    ``track``/``browser``/``#`` lines are skipped; a narrowPeak's (10 columns) score,
    strand, signal, p- and q-value and summit are kept as columns.

    Raises
    ------
    InputError
        ``field-count`` for a ragged row, ``not-empty``, ``gzip-integrity`` and the
        peak rules of :func:`checked_peaks`, each with its line.
    """
    path = Path(path)
    skip = 0
    try:
        with open_checked_text(path) as f:
            for text in f:
                if text.startswith(("#", "track", "browser")):
                    skip += 1
                    continue
                break
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise gzip_error(path, exc) from None
    frame = read_small_tsv(path, 3, skip=skip)
    lines = np.arange(len(frame)) + 1 + skip
    n = frame.shape[1]
    peaks = checked_peaks(
        path,
        frame[0],
        frame[1],
        frame[2],
        lines=lines,
        genome=genome,
        name=frame[3] if n >= 4 else None,
    )
    if n == len(NARROWPEAK_COLUMNS):
        for k, column in enumerate(NARROWPEAK_COLUMNS[4:], start=4):
            if column == "strand":
                peaks[column] = frame[k].to_numpy(dtype=object)
            else:
                values = pd.to_numeric(frame[k], errors="coerce")
                if values.isna().any():
                    i = int(np.flatnonzero(values.isna().to_numpy())[0])
                    raise InputError(
                        str(path),
                        "narrowpeak-values",
                        f"{column} {frame[k].iloc[i]!r} is not a number",
                        line=int(lines[i]),
                    )
                peaks[column] = values.to_numpy()
    return peaks
