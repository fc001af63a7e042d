"""Readers of per-sample methylation call files into sorted streams of CpG-site chunks.

Five formats, one file per sample (or a folder of per-sample files of one format). A
folder's files map to registered samples by their names (:func:`sample_name`), or by the
folder's manifest: a ``manifest.tsv`` (or ``manifest.csv``) beside them whose columns
``file`` (a file's name in the folder) and ``sample_id`` (its registered sample) list
every file once (:func:`read_manifest`; other columns are ignored).

=====================  ==========================================================  ========
format                 columns (1-based positions in the output)                   strand
=====================  ==========================================================  ========
``bismark-cov``        chr, start (1-based), end, % methylated, methylated,        ``*``
                       unmethylated (``bismark2bedGraph`` / ``.bismark.cov.gz``)
``bismark-report``     chr, pos (1-based), strand, methylated, unmethylated,       ``+ -``
                       context, trinucleotide (``coverage2cytosine``: CpG_report,
                       CX_report; only ``CG`` rows are sites, the others feed the
                       bisulfite-conversion check)
``modkit``             modkit pileup bedMethyl, 18 fields (start 0-based; tab or   ``+ - *``
                       space separated, as modkit versions mix them): code, strand,
                       N_valid_cov, % modified, N_mod, N_canonical, N_other_mod ...
``methyldackel``       MethylDackel bedGraph: chr, start (0-based), end, %,        ``*``
                       methylated, unmethylated; a ``track`` line first
``dss``                DSS's text format: header ``chr pos N X`` (N total, X       ``*``
                       methylated reads), tab separated
=====================  ==========================================================  ========

Each file is streamed (:func:`open_checked_text` bounds lines and checks fields; pandas
parses ``rows_per_chunk`` rows at a time, never the whole file) into
:class:`SiteChunk`s: one contig each, keys strictly increasing, every site whole (a site
never continues in the next chunk). What a reader refuses, with file, line and rule:
non-integer counts (``integer-counts``), positions that go down inside a contig or a
contig that comes back after others (``sorted-positions``), the same site twice
(``duplicate-site``), missing fields (``field-count``, ``missing-value``), a bad strand
or modkit coverage that is not the sum of its calls. Value rules the store can hold
(negative counts, methylated above total, non-positive positions, unknown contigs,
percentages that disagree with the counts) are left to validation, which quarantines
the version with its report; the percentages are not stored, so each file's
disagreements are counted here (:class:`FileStats`) and kept in the samples table.

Strand merging (``merge_strands``, formats with a strand): the ``-`` strand cytosine of a
CpG at ``p + 1`` is added to the ``+`` strand one at ``p``, giving one site ``(p, *)``.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics._text_files import describe_content, open_checked_text
from resistomics.errors import InputError
from resistomics.modalities._checks import check_registered

__all__ = [
    "FORMATS",
    "MANIFEST_FILE_COLUMN",
    "MANIFEST_NAMES",
    "MANIFEST_SAMPLE_COLUMN",
    "STRAND_CODES",
    "FileStats",
    "MethylationFile",
    "MethylationReadContext",
    "MethylationSource",
    "SiteChunk",
    "read_manifest",
    "read_methylation",
    "sample_name",
]

#: Strand -> the low 2 bits of a site key (``position * 4 + code``).
STRAND_CODES = {"+": 0, "-": 1, "*": 2}
STRANDS = np.array(["+", "-", "*"], dtype=object)
_INT32_MAX = np.iinfo(np.int32).max
_EXAMPLES = 3


@dataclass(frozen=True)
class MethylationReadContext:
    """What a methylation reader may know about the ingest.

    Parameters
    ----------
    registered_samples
        The study's sample IDs: every file must map to one.
    sample
        The sample of a single-file input (default: the file name without its format
        suffix).
    modification
        modkit modification code to read (``m`` 5mC, ``h`` 5hmC, or any other code);
        rows of other codes are skipped, never summed in.
    merge_strands
        Add each CpG's ``-`` strand call to its ``+`` strand position (reports, modkit).
    rows_per_chunk
        Rows parsed at a time per file (the memory bound of a reader).
    percent_tolerance
        Largest accepted ``|percent - 100 * methylated / total|`` (percentage points).
    """

    registered_samples: frozenset[str]
    sample: str | None = None
    modification: str = "m"
    merge_strands: bool = False
    rows_per_chunk: int = 1 << 16
    percent_tolerance: float = 0.5


@dataclass
class FileStats:
    """What one file's stream saw, complete once its chunks are exhausted."""

    rows: int = 0
    sites: int = 0
    n_percent_discrepant: int = 0
    max_percent_discrepancy: float = 0.0
    percent_examples: list[str] = field(default_factory=list)
    non_cpg_methylated: int = 0
    non_cpg_total: int = 0
    skipped_codes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SiteChunk:
    """Consecutive sites of one contig from one file.

    ``keys`` are ``position * 4 + strand code``, strictly increasing, and greater than
    every key of the file's previous chunk on the same contig; ``line`` is the file line
    of the chunk's first row (for messages about the chunk as a whole).
    """

    contig: str
    keys: np.ndarray  # int64
    methylated: np.ndarray  # int64
    total: np.ndarray  # int64
    line: int


@dataclass(frozen=True)
class MethylationFile:
    """One sample's file: its sample ID and a factory of its chunk stream."""

    sample_id: str
    path: str
    fmt: str
    stats: FileStats
    open_chunks: Callable[[], Iterator[SiteChunk]]


@dataclass(frozen=True)
class MethylationSource:
    """A landed file or folder: one :class:`MethylationFile` per sample, in sample order."""

    fmt: str
    path: str
    files: list[MethylationFile]
    details: dict[str, object] = field(default_factory=dict)


# -- formats ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """Parsed rows of one pandas chunk: everything a site needs, plus the file lines."""

    contig: np.ndarray  # object
    position: np.ndarray  # int64, 1-based
    strand: np.ndarray  # int8 code
    methylated: np.ndarray  # int64
    total: np.ndarray  # int64
    line: np.ndarray  # int64


@dataclass(frozen=True)
class _Format:
    name: str
    suffixes: tuple[str, ...]
    description: str
    columns: tuple[str, ...]
    whitespace: bool  # fields split on runs of tabs/spaces (modkit), else on tabs
    stranded: bool
    header: Callable[[str, str], int]  # (path, first line) -> header lines to skip
    parse: Callable[[str, pd.DataFrame, np.ndarray, MethylationReadContext, FileStats], _Rows]
    stem_tails: tuple[str, ...] = ()


def _fail(path: str, rule: str, message: str, line: int, column: str | None = None) -> InputError:
    return InputError(path, rule, message, line=int(line), column=column)


def _present(path: str, frame: pd.DataFrame, lines: np.ndarray, fmt: _Format) -> None:
    missing = frame.isna().to_numpy()
    if missing.any():
        row, col = np.argwhere(missing)[0]
        name = fmt.columns[col]
        raise _fail(
            path,
            "missing-value",
            f"no {name} value (expected {len(fmt.columns)} fields: {', '.join(fmt.columns)})",
            lines[row],
            name,
        )


def _integers(
    path: str, frame: pd.DataFrame, col: int, lines: np.ndarray, fmt: _Format, rule: str
) -> np.ndarray:
    """Column ``col`` as int64, refusing anything that is not a whole number."""
    values = frame.iloc[:, col]
    if values.dtype.kind in "iu":
        return values.to_numpy(dtype=np.int64)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(numbers) | (numbers != np.round(numbers)) | (np.abs(numbers) > 2**62)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = fmt.columns[col]
        what = "a whole number of reads" if rule == "integer-counts" else "a whole number"
        raise _fail(path, rule, f"{name} {values.iloc[i]!r} is not {what}", lines[i], name)
    return numbers.astype(np.int64)


def _percent(
    path: str, frame: pd.DataFrame, col: int, lines: np.ndarray, fmt: _Format
) -> np.ndarray:
    numbers = pd.to_numeric(frame.iloc[:, col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        name = fmt.columns[col]
        raise _fail(
            path, "number", f"{name} {frame.iloc[i, col]!r} is not a number", lines[i], name
        )
    return numbers


def _check_percent(
    contig: np.ndarray,
    position: np.ndarray,
    percent: np.ndarray,
    methylated: np.ndarray,
    total: np.ndarray,
    lines: np.ndarray,
    tolerance: float,
    stats: FileStats,
) -> None:
    covered = total > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(covered, 100.0 * methylated / np.where(covered, total, 1), np.nan)
    off = np.abs(percent - expected)
    off[~covered] = 0.0
    bad = off > tolerance
    if not bad.any():
        return
    stats.n_percent_discrepant += int(bad.sum())
    stats.max_percent_discrepancy = max(stats.max_percent_discrepancy, float(off[bad].max()))
    for i in np.flatnonzero(bad)[: _EXAMPLES - len(stats.percent_examples)]:
        stats.percent_examples.append(
            f"{contig[i]}:{position[i]} (line {lines[i]}) {percent[i]:g}% but "
            f"{methylated[i]} of {total[i]} reads = {expected[i]:.2f}%"
        )


def _unstranded(n: int) -> np.ndarray:
    return np.full(n, STRAND_CODES["*"], dtype=np.int8)


def _strands(path: str, values: pd.Series, lines: np.ndarray, allowed: Sequence[str]) -> np.ndarray:
    text = values.astype(str).to_numpy(dtype=object)
    codes = np.full(len(text), -1, dtype=np.int8)
    for s in allowed:
        codes[text == s] = STRAND_CODES["*" if s == "." else s]
    if (codes < 0).any():
        i = int(np.flatnonzero(codes < 0)[0])
        raise _fail(
            path,
            "strand",
            f"strand {text[i]!r} is not one of {' '.join(allowed)}",
            lines[i],
            "strand",
        )
    return codes


def _contigs(frame: pd.DataFrame) -> np.ndarray:
    return frame.iloc[:, 0].astype(str).to_numpy(dtype=object)


def _parse_cov(
    path: str, frame: pd.DataFrame, lines: np.ndarray, ctx: MethylationReadContext, stats: FileStats
) -> _Rows:
    fmt = _BY_NAME["bismark-cov"]
    _present(path, frame, lines, fmt)
    contig = _contigs(frame)
    position = _integers(path, frame, 1, lines, fmt, "integer-position")
    _integers(path, frame, 2, lines, fmt, "integer-position")
    percent = _percent(path, frame, 3, lines, fmt)
    meth = _integers(path, frame, 4, lines, fmt, "integer-counts")
    unmeth = _integers(path, frame, 5, lines, fmt, "integer-counts")
    total = meth + unmeth
    _check_percent(contig, position, percent, meth, total, lines, ctx.percent_tolerance, stats)
    return _Rows(contig, position, _unstranded(len(frame)), meth, total, lines)


def _parse_bedgraph(
    path: str, frame: pd.DataFrame, lines: np.ndarray, ctx: MethylationReadContext, stats: FileStats
) -> _Rows:
    fmt = _BY_NAME["methyldackel"]
    _present(path, frame, lines, fmt)
    contig = _contigs(frame)
    position = _integers(path, frame, 1, lines, fmt, "integer-position") + 1
    _integers(path, frame, 2, lines, fmt, "integer-position")
    percent = _percent(path, frame, 3, lines, fmt)
    meth = _integers(path, frame, 4, lines, fmt, "integer-counts")
    unmeth = _integers(path, frame, 5, lines, fmt, "integer-counts")
    total = meth + unmeth
    # MethylDackel writes the percentage as a whole number: allow its rounding too
    tolerance = ctx.percent_tolerance + 1.0
    _check_percent(contig, position, percent, meth, total, lines, tolerance, stats)
    return _Rows(contig, position, _unstranded(len(frame)), meth, total, lines)


def _parse_report(
    path: str, frame: pd.DataFrame, lines: np.ndarray, ctx: MethylationReadContext, stats: FileStats
) -> _Rows:
    fmt = _BY_NAME["bismark-report"]
    _present(path, frame.iloc[:, :6], lines, fmt)  # the trinucleotide may be empty
    position = _integers(path, frame, 1, lines, fmt, "integer-position")
    strand = _strands(path, frame.iloc[:, 2], lines, ("+", "-"))
    meth = _integers(path, frame, 3, lines, fmt, "integer-counts")
    unmeth = _integers(path, frame, 4, lines, fmt, "integer-counts")
    total = meth + unmeth
    cpg = frame.iloc[:, 5].astype(str).to_numpy(dtype=object) == "CG"
    if not cpg.all():
        stats.non_cpg_methylated += int(meth[~cpg].sum())
        stats.non_cpg_total += int(total[~cpg].sum())
    return _Rows(
        _contigs(frame)[cpg], position[cpg], strand[cpg], meth[cpg], total[cpg], lines[cpg]
    )


def _parse_modkit(
    path: str, frame: pd.DataFrame, lines: np.ndarray, ctx: MethylationReadContext, stats: FileStats
) -> _Rows:
    fmt = _BY_NAME["modkit"]
    _present(path, frame, lines, fmt)
    code = frame.iloc[:, 3].astype(str).to_numpy(dtype=object)
    keep = code == ctx.modification
    if not keep.all():
        for c, n in zip(*np.unique(code[~keep], return_counts=True), strict=True):
            stats.skipped_codes[str(c)] = stats.skipped_codes.get(str(c), 0) + int(n)
    frame, lines = frame[keep], lines[keep]
    contig = _contigs(frame)
    position = _integers(path, frame, 1, lines, fmt, "integer-position") + 1
    strand = _strands(path, frame.iloc[:, 5], lines, ("+", "-", "."))
    valid = _integers(path, frame, 9, lines, fmt, "integer-counts")
    percent = _percent(path, frame, 10, lines, fmt)
    n_mod = _integers(path, frame, 11, lines, fmt, "integer-counts")
    canonical = _integers(path, frame, 12, lines, fmt, "integer-counts")
    other = _integers(path, frame, 13, lines, fmt, "integer-counts")
    wrong = valid != n_mod + canonical + other
    if wrong.any():
        i = int(np.flatnonzero(wrong)[0])
        raise _fail(
            path,
            "modkit-valid-coverage",
            f"N_valid_cov {valid[i]} is not N_mod + N_canonical + N_other_mod "
            f"({n_mod[i]} + {canonical[i]} + {other[i]})",
            lines[i],
            "N_valid_cov",
        )
    _check_percent(contig, position, percent, n_mod, valid, lines, ctx.percent_tolerance, stats)
    return _Rows(contig, position, strand, n_mod, valid, lines)


def _parse_dss(
    path: str, frame: pd.DataFrame, lines: np.ndarray, ctx: MethylationReadContext, stats: FileStats
) -> _Rows:
    fmt = _BY_NAME["dss"]
    _present(path, frame, lines, fmt)
    position = _integers(path, frame, 1, lines, fmt, "integer-position")
    total = _integers(path, frame, 2, lines, fmt, "integer-counts")
    meth = _integers(path, frame, 3, lines, fmt, "integer-counts")
    return _Rows(_contigs(frame), position, _unstranded(len(frame)), meth, total, lines)


def _no_header(path: str, first: str) -> int:
    return 0


def _track_header(path: str, first: str) -> int:
    return 1 if first.startswith("track") else 0


def _dss_header(path: str, first: str) -> int:
    names = first.rstrip("\n").split("\t")
    if [n.strip() for n in names] != ["chr", "pos", "N", "X"]:
        raise InputError(
            path,
            "header",
            f"a DSS file starts with the header 'chr<TAB>pos<TAB>N<TAB>X', found {first.strip()[:80]!r}",
            line=1,
        )
    return 1


FORMATS: tuple[_Format, ...] = (
    _Format(
        "bismark-cov",
        (".bismark.cov.gz", ".bismark.cov", ".cov.gz", ".cov"),
        "Bismark coverage (bismark2bedGraph .cov[.gz]: chr, start, end, %, methylated, unmethylated)",
        ("chr", "start", "end", "percent", "methylated", "unmethylated"),
        False,
        False,
        _no_header,
        _parse_cov,
        ("_bismark_bt2", "_bismark_hisat2", "_bismark"),
    ),
    _Format(
        "bismark-report",
        (
            ".cpg_report.txt.gz",
            ".cpg_report.txt",
            ".cx_report.txt.gz",
            ".cx_report.txt",
        ),
        "Bismark CpG/cytosine report (coverage2cytosine: chr, pos, strand, methylated, "
        "unmethylated, context, trinucleotide)",
        ("chr", "pos", "strand", "methylated", "unmethylated", "context", "trinucleotide"),
        False,
        True,
        _no_header,
        _parse_report,
        ("_bismark_bt2", "_bismark_hisat2", "_bismark"),
    ),
    _Format(
        "modkit",
        (".bedmethyl.gz", ".bedmethyl", ".bed.gz", ".bed"),
        "modkit pileup bedMethyl (18 fields, tab/space delimited; --modification picks the code)",
        (
            "chrom",
            "start",
            "end",
            "code",
            "score",
            "strand",
            "thick_start",
            "thick_end",
            "color",
            "N_valid_cov",
            "percent_modified",
            "N_mod",
            "N_canonical",
            "N_other_mod",
            "N_delete",
            "N_fail",
            "N_diff",
            "N_nocall",
        ),
        True,
        True,
        _no_header,
        _parse_modkit,
    ),
    _Format(
        "methyldackel",
        (".bedgraph.gz", ".bedgraph"),
        "MethylDackel extract bedGraph (chr, start, end, %, methylated, unmethylated)",
        ("chr", "start", "end", "percent", "methylated", "unmethylated"),
        False,
        False,
        _track_header,
        _parse_bedgraph,
        ("_cpg",),
    ),
    _Format(
        "dss",
        (".dss.txt.gz", ".dss.txt", ".txt.gz", ".txt", ".tsv.gz", ".tsv"),
        "DSS text (header chr pos N X: total N and methylated X reads per CpG)",
        ("chr", "pos", "N", "X"),
        False,
        False,
        _dss_header,
        _parse_dss,
    ),
)
_BY_NAME = {f.name: f for f in FORMATS}


# -- detection ----------------------------------------------------------------------------


def _first_line(path: str) -> str:
    try:
        with open_checked_text(path) as f:
            return f.readline()
    except (InputError, OSError):
        return ""


def _looks_like(fmt: _Format, path: str) -> bool:
    """A file of ``fmt``: its suffix, and for shared suffixes its first line."""
    lower = os.path.basename(path).lower()
    if not os.path.isfile(path) or not lower.endswith(fmt.suffixes):
        return False
    if fmt.name == "dss":
        return _first_line(path).split() == ["chr", "pos", "N", "X"]
    if fmt.name == "modkit" and not lower.endswith((".bedmethyl", ".bedmethyl.gz")):
        return len(_first_line(path).split()) == 18
    return True


#: A folder's manifest: a top-level file of one of these names (any case) maps its
#: files to registered samples, one row per file (:func:`read_manifest`).
MANIFEST_NAMES = ("manifest.tsv", "manifest.csv")
#: The manifest's columns: the file's name in the folder, and its registered sample ID
#: (other columns are allowed and ignored).
MANIFEST_FILE_COLUMN = "file"
MANIFEST_SAMPLE_COLUMN = "sample_id"


def _is_manifest(path: str) -> bool:
    return os.path.basename(path).lower() in MANIFEST_NAMES


def _folder_entries(path: str) -> list[str]:
    return sorted(os.path.join(path, n) for n in os.listdir(path) if not n.startswith("."))


def _folder_files(path: str) -> list[str]:
    """The folder's data files: every entry but hidden ones and the manifest."""
    return [f for f in _folder_entries(path) if not _is_manifest(f)]


def _manifest_of(path: str) -> str | None:
    found = [f for f in _folder_entries(path) if _is_manifest(f)]
    if len(found) > 1:
        raise InputError(
            found[1],
            "folder-contents",
            f"a second manifest (also {os.path.basename(found[0])}); keep one",
        )
    return found[0] if found else None


def read_manifest(
    manifest: str, files: Sequence[str], registered: frozenset[str]
) -> list[tuple[str, str]]:
    """``(file, sample)`` for each row of a folder's manifest, in the manifest's order.

    The manifest is a TSV (``manifest.tsv``) or CSV (``manifest.csv``) with a header row
    holding the columns :data:`MANIFEST_FILE_COLUMN` (``file``: a file's name in the
    folder) and :data:`MANIFEST_SAMPLE_COLUMN` (``sample_id``: the registered sample the
    file holds); other columns are ignored, blank lines skipped. Every data file of the
    folder must be listed once, and every sample once.

    Raises
    ------
    InputError
        At the manifest's line: ``manifest-columns`` (a column missing), ``field-count``,
        ``missing-value``, ``manifest-file`` (a file not in the folder, or listed
        twice), ``registered-samples`` (a sample not registered, with the closest one),
        ``duplicate-sample``; ``folder-contents`` at a data file the manifest leaves out.
    """
    delimiter = "," if manifest.lower().endswith(".csv") else "\t"
    by_name = {os.path.basename(f): f for f in files}
    with open_checked_text(manifest) as text:
        rows = [(n, r) for n, r in enumerate(csv.reader(text, delimiter=delimiter), start=1) if r]
    if not rows:
        raise InputError(manifest, "not-empty", "the manifest is empty")
    _, header = rows[0]
    names = [h.strip() for h in header]
    wanted = (MANIFEST_FILE_COLUMN, MANIFEST_SAMPLE_COLUMN)
    missing = [c for c in wanted if c not in names]
    if missing:
        raise InputError(
            manifest,
            "manifest-columns",
            f"needs the columns {' and '.join(repr(c) for c in wanted)} (missing "
            f"{', '.join(repr(c) for c in missing)}; found {', '.join(map(repr, names))})",
            line=rows[0][0],
        )
    at_file, at_sample = names.index(MANIFEST_FILE_COLUMN), names.index(MANIFEST_SAMPLE_COLUMN)
    out: list[tuple[str, str]] = []
    file_line: dict[str, int] = {}
    sample_line: dict[str, int] = {}
    for n, row in rows[1:]:
        if len(row) != len(names):
            raise InputError(
                manifest,
                "field-count",
                f"expected {len(names)} fields, found {len(row)}",
                line=n,
            )
        name, sample = row[at_file].strip(), row[at_sample].strip()
        for column, value in ((MANIFEST_FILE_COLUMN, name), (MANIFEST_SAMPLE_COLUMN, sample)):
            if not value:
                raise InputError(manifest, "missing-value", f"no {column}", line=n, column=column)
        if name not in by_name:
            shown = ", ".join(sorted(by_name)[:5]) + (" ..." if len(by_name) > 5 else "")
            raise InputError(
                manifest,
                "manifest-file",
                f"file {name!r} is not in the folder (its files: {shown or 'none'})",
                line=n,
                column=MANIFEST_FILE_COLUMN,
            )
        if name in file_line:
            raise InputError(
                manifest,
                "manifest-file",
                f"file {name!r} again (also line {file_line[name]}); one row per file",
                line=n,
                column=MANIFEST_FILE_COLUMN,
            )
        check_registered(manifest, [sample], registered, line=n)
        if sample in sample_line:
            raise InputError(
                manifest,
                "duplicate-sample",
                f"sample {sample!r} again (also line {sample_line[sample]}); one file per sample",
                line=n,
                column=MANIFEST_SAMPLE_COLUMN,
            )
        file_line[name], sample_line[sample] = n, n
        out.append((by_name[name], sample))
    for f in files:
        if os.path.basename(f) not in file_line:
            raise InputError(
                f,
                "folder-contents",
                f"not listed in {os.path.basename(manifest)}; add a row for it or remove it",
            )
    return out


def can_open(name: str) -> Callable[[str], bool]:
    """``guess_can_open`` of format ``name``: a file of it, or a folder of only such files."""
    fmt = _BY_NAME[name]

    def guess(path: str) -> bool:
        try:
            if os.path.isdir(path):
                files = _folder_files(path)
                return bool(files) and all(_looks_like(fmt, f) for f in files)
            return _looks_like(fmt, path)
        except OSError:
            return False

    guess.__name__ = f"can_open_{name.replace('-', '_')}"
    return guess


def sample_name(path: str, fmt_name: str) -> str:
    """The sample a file holds by its name: the name without the format's suffix and
    the tool's usual tail (``Sample1_bismark_bt2.bismark.cov.gz`` -> ``Sample1``)."""
    fmt = _BY_NAME[fmt_name]
    name = os.path.basename(path.rstrip("/"))
    lower = name.lower()
    for s in sorted(fmt.suffixes, key=len, reverse=True):
        if lower.endswith(s):
            name = name[: -len(s)]
            break
    for tail in fmt.stem_tails:
        if name.lower().endswith(tail):
            name = name[: -len(tail)]
            break
    return name


# -- streaming one file -------------------------------------------------------------------


class _WhitespaceFields(io.TextIOBase):
    """Whole lines of ``inner`` with every run of tabs and spaces made one tab, each
    non-blank line checked to have ``fields`` fields (modkit mixes tabs and spaces; a
    pandas whitespace split would silently drop or shift the extra fields of a long
    first row)."""

    _TAB_RUN = re.compile(r"\t{2,}")

    def __init__(self, inner: io.TextIOBase, path: str, fields: int, first_line: int) -> None:
        super().__init__()
        self.inner, self.path, self.fields = inner, path, fields
        self.line = first_line - 1  # lines handed out
        self.partial = ""
        self.eof = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = 1 << 16 if size is None or size < 0 else max(size, 1)
        text = self.partial
        while not self.eof and "\n" not in text:
            more = self.inner.read(want)
            if not more:
                self.eof = True
            text += more
        cut = text.rfind("\n") + 1
        if self.eof:
            cut = len(text)
        out, self.partial = text[:cut], text[cut:]
        if not out:
            return ""
        if not out.endswith("\n"):
            out += "\n"
        # every run of tabs and spaces -> one tab, none before a line break; spaces made
        # tabs first, so the regex only sees the (rare) runs: a regex over every single
        # separator cost ~3 us a row, 10x the rest of the parse
        out = out.replace(" ", "\t")
        if "\t\t" in out:
            out = self._TAB_RUN.sub("\t", out)
        if "\t\n" in out:
            out = out.replace("\t\n", "\n")
        rows = out.split("\n")[:-1]
        counts = [r.count("\t") for r in rows]
        if counts.count(self.fields - 1) != len(counts):
            for k, (row, n) in enumerate(zip(rows, counts, strict=True)):
                if n != self.fields - 1 and row.strip():
                    raise InputError(
                        self.path,
                        "field-count",
                        f"expected {self.fields} fields separated by tabs or spaces, found {n + 1}",
                        line=self.line + k + 1,
                    )
        self.line += len(rows)
        return out


def _frames(
    path: str, fmt: _Format, ctx: MethylationReadContext
) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Raw pandas chunks of a file (blank lines dropped) with each row's file line."""
    with open_checked_text(path) as head:
        first = head.readline()
    skip = fmt.header(path, first) if first else 0
    stream = open_checked_text(path)
    with stream:
        for _ in range(skip):
            stream.readline()
        source: io.TextIOBase = stream
        if fmt.whitespace:
            source = _WhitespaceFields(stream, path, len(fmt.columns), skip + 1)
        else:
            stream.expect_fields(len(fmt.columns), "\t")
        reader = pd.read_csv(
            source,
            sep="\t",
            index_col=False,
            header=None,
            names=list(range(len(fmt.columns))),
            dtype={0: str},
            chunksize=max(1, ctx.rows_per_chunk),
            skip_blank_lines=False,
            quoting=csv.QUOTE_NONE,
            na_filter=True,
            keep_default_na=False,
            na_values=[""],
        )
        try:
            for frame in reader:
                lines = frame.index.to_numpy(dtype=np.int64) + skip + 1
                blank = frame.isna().all(axis=1).to_numpy()
                if blank.any():
                    frame, lines = frame[~blank], lines[~blank]
                if len(frame):
                    yield frame, lines
        except pd.errors.ParserError as exc:
            found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
            if found is None:
                raise InputError(path, "parse", f"cannot parse the file ({exc})") from None
            expected, line, saw = (int(x) for x in found.groups())
            raise InputError(
                path,
                "field-count",
                f"expected {expected} fields separated by tabs or spaces, found {saw}",
                line=line + skip,
            ) from None


def _file_chunks(
    path: str, fmt: _Format, ctx: MethylationReadContext, stats: FileStats
) -> Iterator[SiteChunk]:
    """The sorted site chunks of one file (see the module docstring for the rules)."""
    merge = ctx.merge_strands and fmt.stranded
    shift = 1 if merge else 0
    done: set[str] = set()
    contig: str | None = None
    last_position = 0  # last raw position on the current contig
    last_line = 0
    pending: list[tuple[np.ndarray, ...]] = []  # (position, strand, meth, total, line)
    pending_rows = 0

    def emit(final: bool) -> Iterator[SiteChunk]:
        nonlocal pending, pending_rows
        if not pending or contig is None:
            return
        pos, strand, meth, total, line = (
            np.concatenate(parts) for parts in zip(*pending, strict=True)
        )
        pending, pending_rows = [], 0
        if merge:
            mapped = pos - (strand == STRAND_CODES["-"])
            site_strand = np.full_like(strand, STRAND_CODES["*"])
        else:
            mapped, site_strand = pos, strand
        keys = mapped * 4 + site_strand
        order = np.argsort(keys, kind="stable")
        keys, pos, strand, meth, total, line, mapped = (
            a[order] for a in (keys, pos, strand, meth, total, line, mapped)
        )
        if not final:  # rows a later line may still join stay for the next chunk
            cut = int(np.searchsorted(mapped, last_position - shift, side="left"))
            if cut < len(keys):
                pending = [(pos[cut:], strand[cut:], meth[cut:], total[cut:], line[cut:])]
                pending_rows = len(keys) - cut
            keys, strand, meth, total, line = (a[:cut] for a in (keys, strand, meth, total, line))
        if not len(keys):
            return
        same = np.flatnonzero(keys[1:] == keys[:-1]) + 1
        if same.size:
            # merging: a + and a - call of one CpG meet; the same strand twice is a duplicate
            twice = same[strand[same] == strand[same - 1]] if merge else same
            if twice.size:
                i = int(twice[0])
                where = f"{contig}:{keys[i] >> 2}"
                raise _fail(
                    path,
                    "duplicate-site",
                    f"site {where} ({STRANDS[strand[i]]}) appears again (first on line "
                    f"{line[i - 1]}); each site once per sample",
                    line[i],
                )
            starts = np.ones(len(keys), dtype=bool)
            starts[same] = False
            idx = np.flatnonzero(starts)
            keys, meth, total, line = (
                keys[idx],
                np.add.reduceat(meth, idx),
                np.add.reduceat(total, idx),
                line[idx],
            )
        if (np.abs(meth) > _INT32_MAX).any() or (np.abs(total) > _INT32_MAX).any():
            i = int(np.flatnonzero((np.abs(meth) > _INT32_MAX) | (np.abs(total) > _INT32_MAX))[0])
            raise _fail(path, "count-range", "a read count beyond 2,147,483,647", line[i])
        stats.sites += len(keys)
        yield SiteChunk(contig, keys.astype(np.int64), meth, total, int(line[0]))

    for frame, lines in _frames(path, fmt, ctx):
        rows = fmt.parse(path, frame, lines, ctx, stats)
        stats.rows += len(frame)
        if not len(rows.position):
            continue
        present = (rows.methylated != 0) | (rows.total != 0)  # no reads: no site
        contigs = rows.contig
        cuts = np.flatnonzero(contigs[1:] != contigs[:-1]) + 1
        for start, stop in zip([0, *cuts.tolist()], [*cuts.tolist(), len(contigs)], strict=True):
            name = str(contigs[start])
            pos = rows.position[start:stop]
            line = rows.line[start:stop]
            if name != contig:
                yield from emit(final=True)
                if contig is not None:
                    done.add(contig)
                if name in done:
                    raise _fail(
                        path,
                        "sorted-positions",
                        f"contig {name} appears again after other contigs (last seen before "
                        f"line {last_line}); sort the file by contig, then position "
                        "(sort -k1,1 -k2,2n)",
                        line[0],
                    )
                contig, last_position = name, int(pos[0])
            down = np.flatnonzero(np.diff(pos, prepend=last_position) < 0)
            if down.size:
                i = int(down[0])
                before = last_position if i == 0 else int(pos[i - 1])
                raise _fail(
                    path,
                    "sorted-positions",
                    f"position {pos[i]} on {name} comes after {before}: positions must not "
                    "go down within a contig; sort the file (sort -k1,1 -k2,2n)",
                    line[i],
                )
            last_position, last_line = int(pos[-1]), int(line[-1])
            keep = present[start:stop]
            pending.append(
                (
                    pos[keep],
                    rows.strand[start:stop][keep],
                    rows.methylated[start:stop][keep],
                    rows.total[start:stop][keep],
                    line[keep],
                )
            )
            pending_rows += int(keep.sum())
        if pending_rows >= ctx.rows_per_chunk:
            yield from emit(final=False)
    yield from emit(final=True)
    if fmt.name == "modkit" and stats.rows and not stats.sites and stats.skipped_codes:
        codes = ", ".join(f"{c} ({n} rows)" for c, n in sorted(stats.skipped_codes.items()))
        raise InputError(
            path,
            "modification",
            f"no rows with modification code {ctx.modification!r}; the file has {codes}: "
            "choose one with --modification",
            line=1,
        )


# -- the reader ---------------------------------------------------------------------------


def read_methylation(
    path: str | Path, ctx: MethylationReadContext, *, fmt: str
) -> MethylationSource:
    """A file (one sample) or a folder of per-sample files of format ``fmt``.

    The files are checked up front (readable text, one registered sample each, the
    first chunk parses); their sites stream later, when the merge asks for them.

    Raises
    ------
    InputError
        ``folder-contents`` (a folder holding another kind of file or nothing),
        ``registered-samples``, ``duplicate-sample``, or any rule of the first chunk.
    """
    spec = _BY_NAME[fmt]
    path = str(path)
    manifest: str | None = None
    if os.path.isdir(path):
        files = _folder_files(path)
        if not files:
            raise InputError(path, "folder-contents", "the folder holds no files")
        for f in files:
            if os.path.isdir(f) or not os.path.basename(f).lower().endswith(spec.suffixes):
                raise InputError(
                    f,
                    "folder-contents",
                    f"a {fmt} folder holds one {fmt} file per sample "
                    f"({' '.join(spec.suffixes)}), but this is {describe_content(f)}",
                )
        if ctx.sample is not None:
            raise InputError(
                f"--sample {ctx.sample!r}",
                "option",
                "--sample names the sample of a single file; a folder's files are named by "
                "sample, or mapped to samples by its manifest.tsv",
            )
        manifest = _manifest_of(path)
        if manifest is not None:  # every file listed once: never empty here
            mapped = read_manifest(manifest, files, ctx.registered_samples)
            files, samples = [f for f, _ in mapped], [s for _, s in mapped]
        else:
            samples = [sample_name(f, fmt) for f in files]
    else:
        if not os.path.isfile(path):
            raise InputError(path, "format", f"the {fmt} reader needs a file or a folder of files")
        files = [path]
        samples = [ctx.sample or sample_name(path, fmt)]
    seen: dict[str, str] = {}
    for f, s in zip(files, samples, strict=True):
        if s in seen:
            raise InputError(
                f,
                "duplicate-sample",
                f"sample {s!r} again (also {os.path.basename(seen[s])}); one file per sample",
            )
        seen[s] = f
        if os.path.getsize(f) == 0:
            raise InputError(f, "not-empty", "the file is empty")
    for f, s in zip(files, samples, strict=True):
        check_registered(f, [s], ctx.registered_samples)
    out: list[MethylationFile] = []
    for f, s in zip(files, samples, strict=True):
        stats = FileStats()

        def chunks(f: str = f, stats: FileStats = stats) -> Iterator[SiteChunk]:
            return _file_chunks(f, spec, ctx, stats)

        probe = FileStats()
        next(_file_chunks(f, spec, ctx, probe), None)  # a bad start fails before staging
        out.append(MethylationFile(s, f, fmt, stats, chunks))
    details: dict[str, object] = {"files": len(files)}
    if os.path.isdir(path) and manifest is not None:
        details["manifest"] = os.path.basename(manifest)
    if spec.name == "modkit":
        details["modification"] = ctx.modification
    if spec.stranded:
        details["merge_strands"] = ctx.merge_strands
    return MethylationSource(fmt, path, out, details)


def reader_of(name: str) -> Callable[..., MethylationSource]:
    """``Reader.read`` of format ``name``."""

    def read(path: str | Path, ctx: MethylationReadContext) -> MethylationSource:
        return read_methylation(path, ctx, fmt=name)

    read.__name__ = f"read_{name.replace('-', '_')}"
    return read


# The readers and detectors by name, for ``deferred`` declarations in the modality.
read_bismark_cov = reader_of("bismark-cov")
read_bismark_report = reader_of("bismark-report")
read_modkit = reader_of("modkit")
read_methyldackel = reader_of("methyldackel")
read_dss = reader_of("dss")
detect_bismark_cov = can_open("bismark-cov")
detect_bismark_report = can_open("bismark-report")
detect_modkit = can_open("modkit")
detect_methyldackel = can_open("methyldackel")
detect_dss = can_open("dss")
