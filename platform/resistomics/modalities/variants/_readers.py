"""Readers of variant-call formats (VCF, MAF) into streamed call tables.

Each reader checks the header when called (so a bad header, an unknown sample or a
missing column fails before anything is staged) and then streams pandas batches of at
most ``ctx.rows_per_batch`` rows in the canonical columns of ``variants.calls``. What the
readers refuse are files they cannot parse; value checks (VAF outside [0, 1], allele
counts that disagree with the depth, bad alleles, unknown contigs, duplicate calls) are
validation's job (:func:`~resistomics.modalities.variants.validate_variant_batches`).
"""

from __future__ import annotations

import difflib
import gzip
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from resistomics._text_files import (
    current_limits,
    describe_content,
    open_checked_text,
    open_regular,
)
from resistomics.errors import InputError
from resistomics.modalities._checks import check_registered
from resistomics.modalities.variants._annotation import (
    Annotation,
    annotation_format,
    maf_consequence,
    pick_annotation,
    short_protein_change,
)
from resistomics.modalities.variants._source import (
    VariantReadContext,
    VariantSource,
    canonical_frame,
    empty_calls,
)

__all__ = ["read_maf", "read_vcf"]

_GZIP_MAGIC = b"\x1f\x8b"
# The 28-byte empty block every complete BGZF file ends with (SAM/BAM spec, 4.1.2).
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
# htslib's "missing" and "end of vector" sentinels for int32 FORMAT values.
_INT32_MISSING = -2147483647


# -- shared ------------------------------------------------------------------------------


def _compression(path: Path) -> str | None:
    """``"bgzip"``, ``"gzip"`` or ``None``, from the first bytes of the file."""
    with open_regular(path) as f:
        head = f.read(18)
    if head[:2] != _GZIP_MAGIC:
        return None
    # BGZF: FEXTRA set and a 'BC' subfield first in the extra field.
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    return "gzip"


def _gzip_damage(path: Path) -> str | None:
    """What is wrong with a gzip/bgzip stream, or ``None`` if it decompresses whole (or
    further than the inflation limits allow, which the checked stream reports)."""
    limits = current_limits()
    budget = min(
        limits.max_inflated_bytes,
        max(limits.inflation_floor_bytes, limits.max_inflation_ratio * path.stat().st_size),
    )
    seen = 0
    try:
        with open_regular(path) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as f:
            while seen <= budget and (chunk := f.read(1 << 20)):
                seen += len(chunk)
    except (EOFError, OSError, zlib.error) as exc:
        return str(exc) or type(exc).__name__
    return None


def _gzip_error(path: Path, reason: str, **where: Any) -> InputError:
    return InputError(
        str(path),
        "gzip-integrity",
        f"the compressed stream is damaged or truncated ({reason}); re-export or re-copy the file",
        **where,
    )


def _refuse_non_file(path: Path, fmt: str) -> None:
    if path.is_dir():
        raise InputError(
            str(path),
            "format",
            f"the {fmt} reader needs a file, but this is {describe_content(path)}",
        )


def _check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise InputError(str(path), "not-empty", "the file is empty")


class _SiteBatcher:
    """Collects VCF sites and hands out canonical frames of exactly ``size`` rows (the
    last one smaller).

    Each (record, alt allele) adds one *slot* per sample: the site's fields and views of
    its FORMAT columns (AD ref, AD alt, DP, AF; htslib int32 sentinels for missing
    values). The arithmetic (missing values, VAF, which samples are informative) runs
    once per batch over all slots, so a record costs a few appends whatever its number
    of samples.
    """

    _SITE = ("chrom", "pos", "ref", "alt", "gene", "protein_change", "consequence")
    _VALUES = ("ref_count", "alt_count", "depth", "af", "called")

    def __init__(self, size: int, samples: list[str], subjects: list[str | None]) -> None:
        self.size = max(1, size)
        self.samples = np.asarray(samples, dtype=object)
        self.subjects = np.asarray(subjects, dtype=object)
        self.n = len(samples)
        self.missing = np.full(self.n, np.nan)
        self.no_call = np.zeros(self.n, dtype=bool)
        self._reset()
        self.carry: pd.DataFrame | None = None

    def _reset(self) -> None:
        self.sites: dict[str, list[Any]] = {c: [] for c in self._SITE}
        self.values: dict[str, list[np.ndarray]] = {c: [] for c in self._VALUES}

    @property
    def slots(self) -> int:
        return len(self.sites["chrom"]) * self.n

    def add(self, site: tuple[Any, ...], values: dict[str, np.ndarray | None]) -> None:
        for c, v in zip(self._SITE, site, strict=True):
            self.sites[c].append(v)
        for c in self._VALUES:
            v = values[c]
            self.values[c].append(
                v if v is not None else (self.no_call if c == "called" else self.missing)
            )

    def _frame(self) -> pd.DataFrame:
        if not self.sites["chrom"]:
            carry, self.carry = self.carry, None
            return carry if carry is not None else empty_calls()
        count = {}
        for c in ("ref_count", "alt_count", "depth"):
            v = np.concatenate(self.values[c]).astype(np.float64)
            v[v <= _INT32_MISSING] = np.nan
            count[c] = v
        af = np.concatenate(self.values["af"]).astype(np.float64)
        called = np.concatenate(self.values["called"])
        ref_count, alt_count, depth = count["ref_count"], count["alt_count"], count["depth"]
        total = ref_count + alt_count
        with np.errstate(invalid="ignore", divide="ignore"):
            vaf = np.where(total > 0, alt_count / total, np.nan)
        vaf = np.where(np.isfinite(af), af, vaf)
        keep = (depth > 0) | (alt_count > 0) | ~np.isnan(vaf) | called
        slot = np.flatnonzero(keep)
        site, sample = np.divmod(slot, self.n)
        columns: dict[str, Any] = {
            c: np.asarray(v, dtype=object)[site] for c, v in self.sites.items()
        }
        columns["pos"] = np.asarray(self.sites["pos"], dtype=np.int64)[site]
        columns["subject_id"] = self.subjects[sample]
        columns["sample_id"] = self.samples[sample]
        columns["ref_count"] = ref_count[slot]
        columns["alt_count"] = alt_count[slot]
        columns["depth"] = depth[slot]
        columns["vaf"] = vaf[slot]
        self._reset()
        frame = canonical_frame(columns)
        if self.carry is not None:
            frame = pd.concat([self.carry, frame], ignore_index=True)
            self.carry = None
        return frame

    def full(self) -> Iterator[pd.DataFrame]:
        if self.slots + (0 if self.carry is None else len(self.carry)) < self.size:
            return
        frame = self._frame()
        cut = len(frame) - len(frame) % self.size
        for start in range(0, cut, self.size):
            yield frame.iloc[start : start + self.size].reset_index(drop=True)
        if cut < len(frame):
            self.carry = frame.iloc[cut:].reset_index(drop=True)

    def rest(self) -> Iterator[pd.DataFrame]:
        if self.slots or self.carry is not None:
            yield self._frame()


# -- VCF ---------------------------------------------------------------------------------


def _cr_line_endings(path: Path, compression: str | None) -> bool:
    """True when the file's first 64 KiB hold CR line breaks and no LF."""
    opener = gzip.open if compression else open
    try:
        with opener(path, "rb") as f:
            head = f.read(1 << 16)
    except (OSError, EOFError, zlib.error):
        return False
    return b"\r" in head and b"\n" not in head


# htslib holds the whole header in memory, several times its size
_MAX_VCF_HEADER_CHARS = 64 << 20


def _check_vcf_header(path: Path) -> None:
    """Read the VCF header (through the ``#CHROM`` line) as checked text (see
    :mod:`resistomics._text_files`); htslib reads it only after this passed."""
    size = 0
    with open_checked_text(path) as text:
        for line in text:
            size += len(line)
            if size > _MAX_VCF_HEADER_CHARS:
                raise InputError(
                    str(path),
                    "vcf-header",
                    f"the header is longer than {_MAX_VCF_HEADER_CHARS:,} characters (real "
                    "headers, thousands of contigs included, take well under 1 MiB)",
                    line=text.line,
                )
            if line.startswith("#CHROM"):
                text.check_field_lengths(line.rstrip("\n").split("\t"), line=text.line)
                return
            if not line.startswith("##"):
                return


def _detect_vcf(path: str) -> bool:
    p = path.lower()
    return p.endswith((".vcf", ".vcf.gz", ".vcf.bgz"))


def _header_has(vcf: Any, tag: str) -> bool:
    try:
        vcf.get_header_type(tag)
    except KeyError:
        return False
    return True


def read_vcf(path: str | Path, ctx: VariantReadContext) -> VariantSource:
    """Multi-sample VCF (plain, gzip or bgzip), parsed by cyvcf2 (htslib).

    One row per (sample, alt allele) at every site where that sample has any evidence:
    reads covering the site (``depth > 0``, so a VAF of 0 at baseline is kept for
    clonal analysis), alt reads, an ``AF`` value, or a called genotype carrying the
    allele. Samples with neither coverage nor a call at a site get no row.
    Multi-allelic sites are split per alt allele. The per-sample arithmetic runs on
    numpy arrays once per batch (``_SiteBatcher``), not per sample in Python: ~1.6 M
    rows/s for 200-sample VCFs, ~0.1 M rows/s for 2-sample ones (cyvcf2's per-record
    cost and the annotation parsing dominate there).

    Counts come from FORMAT ``AD`` (ref, then this alt allele); ``depth`` is FORMAT
    ``DP``, else the sum of ``AD``; ``vaf`` is FORMAT ``AF`` for this allele if present,
    else ``alt_count / (ref_count + alt_count)``. Gene, consequence and protein change
    come from VEP ``CSQ`` or SnpEff ``ANN`` (see ``_annotation``).

    Raises
    ------
    InputError
        ``not-empty``, ``gzip`` (a plain file named ``.gz``: refused, not guessed),
        ``text-encoding``, ``gzip-integrity``, ``vcf-line-endings`` (CR-only line
        breaks), ``vcf-header`` (with htslib's own message), ``vcf-samples`` (no
        sample columns), ``vcf-format-type`` (AD/DP declared other than Integer, AF
        other than Float) on call; ``vcf-record`` (with htslib's message),
        ``field-count`` (a record with more or fewer columns than the header, or a
        cut last line, which htslib would pad or ignore), ``line-length`` or
        ``gzip-integrity`` while streaming, with the record's line and ``CHROM:POS``
        of the last good record. The same lines are read as text one ahead of
        htslib for the field-count check (~8 % more CPU).
    UnregisteredSampleError
        A sample column is not a registered sample (rule ``registered-samples``).
    """
    import cyvcf2

    path = Path(path)
    _refuse_non_file(path, "VCF")
    _check_not_empty(path)
    compression = _compression(path)
    # The header goes through the checked stream before htslib parses it: a plain file
    # named .gz, UTF-16, a workbook, binary data, an overlong meta line or sample name
    # and a gzip bomb in the header are refused before htslib inflates a byte of it
    # (records are read the same way, one ahead of htslib, below).
    _check_vcf_header(path)
    if compression == "bgzip":
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - len(_BGZF_EOF)))
            if f.read() != _BGZF_EOF:
                raise _gzip_error(path, "the BGZF end-of-file block is missing", line=None)
    htslib = _HtslibMessages()
    try:
        with htslib.captured():
            vcf = cyvcf2.VCF(str(path))
    # cyvcf2 raises a bare Exception (or OSError) when htslib cannot parse the header.
    except Exception as exc:
        damage = _gzip_damage(path) if compression else None
        if damage:
            raise _gzip_error(path, damage, line=1) from None
        if _cr_line_endings(path, compression):
            raise InputError(
                str(path),
                "vcf-line-endings",
                "the VCF uses CR (classic Mac) line endings; VCF lines end in LF: convert "
                "it, e.g. tr '\\r' '\\n' < in.vcf > out.vcf",
                line=1,
            ) from None
        reason = htslib.gist() or (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        looks = describe_content(path)
        seen = "" if "VCF" in looks else f"; the file looks like {looks}"
        raise InputError(
            str(path),
            "vcf-header",
            f"htslib cannot parse the VCF header ({reason}); it needs '##fileformat=VCFv4.x', "
            "well-formed '##' meta lines and a tab-separated '#CHROM POS ID REF ALT QUAL "
            f"FILTER INFO FORMAT <samples>' line{seen}",
            line=1,
        ) from None
    samples = [str(s) for s in vcf.samples]
    if not samples:
        vcf.close()
        raise InputError(
            str(path), "vcf-samples", "the VCF has no sample columns (sites-only VCF)", line=None
        )
    header_lines = len(vcf.raw_header.rstrip("\n").split("\n"))
    try:
        check_registered(path, samples, ctx.registered_samples, line=header_lines)
        _check_format_types(path, vcf)
    except InputError:
        vcf.close()
        raise
    fmt = None
    for tag in ("CSQ", "ANN"):
        if _header_has(vcf, tag):
            fmt = annotation_format(tag, str(vcf.get_header_type(tag).get("Description", "")))
            if fmt is not None:
                break
    has = {tag: _header_has(vcf, tag) for tag in ("AD", "DP", "AF", "GT")}
    subjects = [ctx.subjects.get(s) for s in samples]
    details: dict[str, Any] = {
        "compression": compression or "none",
        "annotation": fmt.tag if fmt else None,
        "format_fields": sorted(t for t, present in has.items() if present),
    }

    def batches() -> Iterator[pd.DataFrame]:
        batcher = _SiteBatcher(ctx.rows_per_batch, samples, subjects)
        # htslib pads a short record and ignores extra columns or a cut last line: the
        # same lines are read as text alongside, one ahead of htslib, to refuse them
        text = open_checked_text(path)
        for _ in range(header_lines):
            text.readline()
        # INFO (VEP CSQ, SnpEff ANN) may exceed the field limit; the line limit bounds it
        text.expect_fields(9 + len(samples), "\t", comment="#", wide=frozenset({7}))
        state = _VcfProgress()
        it = iter(vcf)

        def step() -> list[pd.DataFrame]:
            """Records until a batch is full (or the end), with htslib's stderr captured."""
            out: list[pd.DataFrame] = []
            with htslib.captured():
                while not out:
                    try:
                        raw = text.readline()
                    except InputError as exc:  # name the last good record too
                        raise InputError(
                            exc.file,
                            exc.rule,
                            exc.detail,
                            line=exc.location.line,
                            row=f"after {state.last}",
                        ) from None
                    try:
                        record = next(it)
                    except StopIteration:
                        state.done = True
                        break
                    # cyvcf2 raises a bare Exception when htslib fails to read a record.
                    except Exception as exc:
                        line = header_lines + state.records + 1
                        damage = _gzip_damage(path) if compression else None
                        if damage:
                            raise _gzip_error(
                                path, damage, line=line, row=f"after {state.last}"
                            ) from None
                        why = htslib.gist() or str(exc).splitlines()[0]
                        raise InputError(
                            str(path),
                            "vcf-record",
                            f"htslib cannot parse the record after {state.last}: "
                            f"{why} (a non-numeric POS or FORMAT number, too few columns, "
                            "or a contig missing from the header?)",
                            line=line,
                        ) from None
                    if not raw:  # htslib read a record the text does not have
                        break
                    state.records += 1
                    state.last = f"{record.CHROM}:{record.POS}"
                    _record_rows(record, has, fmt, batcher)
                    out.extend(batcher.full())
                if state.done:
                    while text.readline():  # the rest must be blank (checks a cut last line)
                        pass
                    out.extend(batcher.rest())
            return out

        try:
            while not state.done:
                yield from step()
        finally:
            vcf.close()
            text.close()
            if htslib.lines:
                details["htslib_messages"] = htslib.lines[:5]
        if state.records == 0:
            raise InputError(str(path), "not-empty", "the VCF has a header but no records")

    return VariantSource(
        fmt="vcf",
        path=str(path),
        samples=samples,
        batches=batches(),
        details=details,
    )


@dataclass
class _VcfProgress:
    """How far a VCF has been read: records so far, the last one, whether it ended."""

    records: int = 0
    last: str = "the first record"
    done: bool = False


# FORMAT fields the reader takes numbers from, with the header type each must declare.
_FORMAT_TYPES = {"AD": "Integer", "DP": "Integer", "AF": "Float"}


def _check_format_types(path: Path, vcf: Any) -> None:
    """Refuse AD/DP/AF declared with a type the reader cannot take numbers from."""
    for tag, expected in _FORMAT_TYPES.items():
        if not _header_has(vcf, tag):
            continue
        declared = str(vcf.get_header_type(tag).get("Type", ""))
        if declared != expected and not (expected == "Float" and declared == "Integer"):
            lines = vcf.raw_header.split("\n")
            line = next(
                (i for i, t in enumerate(lines, start=1) if t.startswith(f"##FORMAT=<ID={tag},")),
                None,
            )
            raise InputError(
                str(path),
                "vcf-format-type",
                f"FORMAT {tag} is declared Type={declared}; the reader needs Type={expected} "
                f"(fix the ##FORMAT=<ID={tag},...> header line)",
                line=line,
                column=tag,
            )


class _HtslibMessages:
    """htslib's own stderr lines (``[E::vcf_parse] ...``), captured at the file-descriptor
    level while cyvcf2 reads, so they do not precede the one-line error; the gist goes
    into that line instead.

    The capture covers fd 2 of the whole process while it is active (a header read, one
    batch of records): what other code writes to stderr meanwhile (a log line from
    another thread) is written back to stderr when the capture ends, not kept.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._others: list[str] = []
        self._file: IO[bytes] | None = None

    @contextmanager
    def captured(self) -> Iterator[None]:
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as tmp:
            os.dup2(tmp.fileno(), 2)
            self._file = tmp
            try:
                yield
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                self._collect()
                self._file = None
                if self._others:
                    os.write(2, ("\n".join(self._others) + "\n").encode())
                    self._others.clear()

    def _collect(self) -> None:
        if self._file is None:
            return
        self._file.seek(0)
        new = self._file.read().decode("utf-8", errors="replace").splitlines()
        self._file.seek(0)
        self._file.truncate()
        for line in new:
            if _HTSLIB_LINE.match(line):
                self.lines.append(line.strip())
            elif line.strip():
                self._others.append(line)

    def gist(self) -> str:
        """The last error htslib printed, without its ``[E::function]`` prefix."""
        self._collect()
        errors = [line for line in self.lines if line.startswith("[E::")] or self.lines
        if not errors:
            return ""
        return errors[-1].split("] ", 1)[-1]


# htslib's message lines: "[E::vcf_parse] ...", "[W::bcf_hdr_check_sanity] ..."
_HTSLIB_LINE = re.compile(r"^\[[EWID]::\w+\] ")


def _record_rows(record: Any, has: dict[str, bool], fmt: Any, batcher: _SiteBatcher) -> None:
    """Add one record's slots (per alt allele) to the batcher: views of its FORMAT arrays."""
    alts: list[str] = [str(a) for a in record.ALT]
    if not alts:
        return  # a reference-only site has no alt allele to report
    ref = str(record.REF)
    # FORMAT keys of this record (a record may carry fewer than the header declares;
    # cyvcf2 raises on genotype access when the record has no GT).
    keys = {str(k) for k in record.FORMAT or ()}
    ad = record.format("AD") if has["AD"] and "AD" in keys else None
    dp = record.format("DP") if has["DP"] and "DP" in keys else None
    af = record.format("AF") if has["AF"] and "AF" in keys else None
    # (n_samples, ploidy + 1): allele indices (-1 missing), then the phase flag.
    gts = record.genotype.array()[:, :-1] if has["GT"] and "GT" in keys else None
    depth = dp[:, 0] if dp is not None else None
    if ad is not None and (depth is None or (depth <= _INT32_MISSING).any()):
        # No DP: the depth is the sum of the allele depths present (none present: missing).
        present = ad > _INT32_MISSING
        summed = np.where(present.any(axis=1), np.where(present, ad, 0).sum(axis=1), _INT32_MISSING)
        depth = summed if depth is None else np.where(depth > _INT32_MISSING, depth, summed)
    ref_count = ad[:, 0] if ad is not None and ad.shape[1] > 0 else None
    value = record.INFO.get(fmt.tag) if fmt is not None else None
    chrom, pos = str(record.CHROM), int(record.POS)
    for k, alt in enumerate(alts, start=1):
        note = (
            pick_annotation(fmt, value, ref, alts, alt)
            if fmt is not None
            else Annotation(None, None, None)
        )
        batcher.add(
            (chrom, pos, ref, alt, note.gene, note.protein_change, note.consequence),
            {
                "ref_count": ref_count,
                "alt_count": ad[:, k] if ad is not None and ad.shape[1] > k else None,
                "depth": depth,
                "af": af[:, k - 1] if af is not None and af.shape[1] >= k else None,
                "called": (gts == k).any(axis=1) if gts is not None else None,
            },
        )


# -- MAF ---------------------------------------------------------------------------------

_MAF_REQUIRED = (
    "Chromosome",
    "Start_Position",
    "Reference_Allele",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
)
_MAF_PROTEIN = ("HGVSp_Short", "Protein_Change", "amino_acid_change", "HGVSp")
_MAF_COUNTS = {"ref_count": "t_ref_count", "alt_count": "t_alt_count", "depth": "t_depth"}
_MISSING_TEXT = {"", "NA", "N/A", ".", "NaN", "nan"}


def _detect_maf(path: str) -> bool:
    return path.lower().endswith((".maf", ".maf.gz", ".maf.txt", ".maf.txt.gz"))


def _text_or_none(values: pd.Series) -> pd.Series:
    stripped = values.str.strip()
    return stripped.where(~stripped.isin(_MISSING_TEXT), None)


def _whole_numbers(raw: pd.Series) -> pd.Series | None:
    """The column as Int64 when every value is a plain integer (what callers write),
    else ``None`` (blanks, NA, decimals, junk: the caller's checked path names them)."""
    try:
        ints = pc.cast(pa.array(raw.to_numpy(dtype=object), type=pa.string()), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return pd.Series(
        pd.array(ints.to_pylist() if ints.null_count else ints.to_numpy(), dtype="Int64"),
        index=raw.index,
    )


def _maf_counts(path: Path, raw: pd.Series, column: str, lines: np.ndarray) -> pd.Series:
    fast = _whole_numbers(raw)
    if fast is not None:
        return fast
    text = raw.str.strip()
    missing = text.isin(_MISSING_TEXT)
    num = pd.to_numeric(text.where(~missing, None), errors="coerce")
    bad = (num.isna() & ~missing) | (num.notna() & (num % 1 != 0))
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            str(path),
            "numeric-counts",
            f"read count {raw.iloc[i]!r} is not a whole number (leave it empty or NA if unknown)",
            line=int(lines[i]),
            column=column,
        )
    return num.astype("Int64")


def read_maf(path: str | Path, ctx: VariantReadContext) -> VariantSource:
    """Mutation Annotation Format (GDC/TCGA style), plain or gzip, any line endings.

    Required columns: ``Chromosome``, ``Start_Position``, ``Reference_Allele``,
    ``Tumor_Seq_Allele2`` (the alt allele) and ``Tumor_Sample_Barcode`` (the sample).
    Optional: ``Hugo_Symbol`` (``Unknown`` becomes null), ``Variant_Classification``
    (mapped to an SO term), the protein change from the first of ``HGVSp_Short``,
    ``Protein_Change``, ``amino_acid_change``, ``HGVSp``, and tumour read counts
    ``t_ref_count``, ``t_alt_count``, ``t_depth``. Without counts, counts and VAF are
    null; ``vaf`` is ``t_alt_count / (t_ref_count + t_alt_count)``, ``depth`` is
    ``t_depth``, else the sum of the two counts. Alleles keep MAF notation (``-`` for
    the empty side of an indel). Lines starting with ``#`` are skipped.

    Raises
    ------
    InputError
        ``not-empty``, ``gzip-integrity``, ``gzip`` (a plain file named ``.gz``),
        ``format`` (a VCF given to the MAF reader), ``unique-columns``,
        ``maf-columns`` (with a did-you-mean), ``maf-position`` and
        ``numeric-counts`` (with the line); from the checked text stream
        (:mod:`resistomics._text_files`) ``text-encoding``, ``line-length`` and
        ``field-count`` (a row with more or fewer fields than the header, e.g. a
        file cut mid-row), with the line.
    UnregisteredSampleError
        A ``Tumor_Sample_Barcode`` is not a registered sample, with its line.
    """
    path = Path(path)
    _refuse_non_file(path, "MAF")
    _check_not_empty(path)
    compression = _compression(path)
    # CR, LF and CRLF line endings all read as lines (the maftools example MAFs use bare CR)
    handle = open_checked_text(path)
    line_no = 0
    try:
        header_line = ""
        vcf_like = False
        for text in handle:
            line_no += 1
            vcf_like = vcf_like or text.startswith("##fileformat=VCF")
            if text.strip() and not text.startswith("#"):
                header_line = text
                break
    except (EOFError, OSError, zlib.error) as exc:
        handle.close()
        raise _gzip_error(path, str(exc) or type(exc).__name__, line=line_no + 1) from None
    except InputError:
        handle.close()
        raise
    if vcf_like:
        handle.close()
        raise InputError(
            str(path),
            "format",
            f"the MAF reader was given {describe_content(path)} (its first line is "
            "'##fileformat=VCF...'): read it as a VCF (a .vcf name or --format vcf)",
            line=1,
        )
    if not header_line:
        handle.close()
        raise InputError(str(path), "not-empty", "the MAF has no header line")
    header = [h.strip() for h in header_line.rstrip("\r\n").split("\t")]
    try:
        handle.check_field_lengths(header, line=line_no)
    except InputError:
        handle.close()
        raise
    dup = next((h for h in header if header.count(h) > 1), None)
    if dup is not None:
        handle.close()
        raise InputError(
            str(path),
            "unique-columns",
            f"column {dup!r} appears {header.count(dup)} times in the header",
            line=line_no,
            column=dup,
        )
    missing = [c for c in _MAF_REQUIRED if c not in header]
    if missing:
        handle.close()
        hints = []
        lower = {h.lower(): h for h in header}
        for c in missing:
            guess = lower.get(c.lower()) or next(
                iter(difflib.get_close_matches(c, header, n=1, cutoff=0.6)), None
            )
            hints.append(f"{c!r} (did you mean {guess!r}?)" if guess else repr(c))
        tab_hint = (
            "; the header has one column: is the file tab-separated?" if len(header) == 1 else ""
        )
        raise InputError(
            str(path),
            "maf-columns",
            f"required MAF column{'s' if len(missing) > 1 else ''} missing: {', '.join(hints)}{tab_hint}",
            line=line_no,
            column=missing[0],
        )
    header_line_no = line_no
    # every row must have the header's fields: a short (cut, truncated) or long row is
    # refused with its line, never padded or cut by the parser
    handle.expect_fields(len(header), "\t", comment="#")
    protein_col = next((c for c in _MAF_PROTEIN if c in header), None)

    def batches() -> Iterator[pd.DataFrame]:
        done = 0
        seen_samples: set[str] = set()
        try:
            reader = pd.read_csv(
                handle,
                sep="\t",
                header=None,
                names=header,
                dtype=str,
                na_filter=False,
                keep_default_na=False,
                chunksize=max(1, ctx.rows_per_batch),
                engine="c",
                quoting=3,
                skip_blank_lines=True,
                index_col=False,
            )
            for chunk in reader:
                first_line = header_line_no + 1 + done
                done += len(chunk)
                keep = ~chunk[header[0]].str.startswith("#")
                lines = first_line + np.flatnonzero(keep.to_numpy())
                chunk = chunk[keep].reset_index(drop=True)
                if chunk.empty:
                    continue
                yield _maf_frame(path, chunk, lines, ctx, protein_col, seen_samples)
        except pd.errors.ParserError as exc:
            raise InputError(str(path), "field-count", str(exc).strip().splitlines()[-1]) from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _gzip_error(
                path, str(exc) or type(exc).__name__, line=header_line_no + done + 1
            ) from None
        finally:
            handle.close()
        if not seen_samples:
            raise InputError(str(path), "not-empty", "the MAF has a header but no mutations")

    return VariantSource(
        fmt="maf",
        path=str(path),
        samples=[],
        batches=batches(),
        details={
            "compression": compression or "none",
            "protein_change_column": protein_col,
            "read_counts": all(c in header for c in ("t_ref_count", "t_alt_count")),
        },
    )


def _map_distinct(values: pd.Series, func: Callable[[Any], Any]) -> pd.Series:
    """``values.map(func)`` calling ``func`` once per distinct value (NaN included)."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    mapped = np.empty(len(uniques), dtype=object)
    mapped[:] = [func(u) for u in uniques]
    return pd.Series(mapped[codes], index=values.index)


def _maf_frame(
    path: Path,
    chunk: pd.DataFrame,
    lines: np.ndarray,
    ctx: VariantReadContext,
    protein_col: str | None,
    seen_samples: set[str],
) -> pd.DataFrame:
    samples = chunk["Tumor_Sample_Barcode"].str.strip()
    new = [s for s in pd.unique(samples) if s not in seen_samples]
    unknown = [s for s in new if s not in ctx.registered_samples]
    if unknown:
        i = int(np.flatnonzero((samples == unknown[0]).to_numpy())[0])
        check_registered(path, unknown, ctx.registered_samples, line=int(lines[i]))
    seen_samples.update(new)
    pos = _whole_numbers(chunk["Start_Position"])
    if pos is None:  # blanks, NA or something else: find and name it
        pos_text = chunk["Start_Position"].str.strip()
        pos_missing = pos_text.isin(_MISSING_TEXT)
        pos = pd.to_numeric(pos_text.where(~pos_missing, None), errors="coerce")
        bad = (pos.isna() & ~pos_missing) | (pos.notna() & (pos % 1 != 0))
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                str(path),
                "maf-position",
                f"Start_Position {pos_text.iloc[i]!r} is not a whole number",
                line=int(lines[i]),
                column="Start_Position",
            )
    counts: dict[str, pd.Series] = {}
    for name, col in _MAF_COUNTS.items():
        if col in chunk.columns:
            counts[name] = _maf_counts(path, chunk[col], col, lines)
        else:
            counts[name] = pd.Series(pd.NA, index=chunk.index, dtype="Int64")
    ref_count, alt_count = counts["ref_count"], counts["alt_count"]
    total = ref_count + alt_count
    vaf = (alt_count / total.where(total > 0)).astype("float64")
    depth = counts["depth"].fillna(total)
    gene = (
        _text_or_none(chunk["Hugo_Symbol"]).replace("Unknown", None)
        if "Hugo_Symbol" in chunk.columns
        else None
    )
    consequence = (
        _map_distinct(chunk["Variant_Classification"], maf_consequence)
        if "Variant_Classification" in chunk.columns
        else None
    )
    protein = _map_distinct(chunk[protein_col], short_protein_change) if protein_col else None
    alt = _text_or_none(chunk["Tumor_Seq_Allele2"])
    if "Variant_Classification" in chunk.columns:
        # An FLT3-ITD sized by fragment analysis is reported with no coordinates or
        # allele (Variant_Classification "ITD", Start_Position NA): record it as the
        # symbolic tandem duplication it is, so it stays a call without a locus.
        itd = chunk["Variant_Classification"].str.strip().str.upper().eq("ITD")
        alt = alt.where(~(itd & alt.isna()), "<DUP:TANDEM>")
    return canonical_frame(
        {
            "subject_id": _map_distinct(samples, ctx.subjects.get),
            "sample_id": samples,
            # a missing key (NA) is kept for validation's complete-keys rule to report
            "chrom": _text_or_none(chunk["Chromosome"]),
            "pos": pos,
            "ref": _text_or_none(chunk["Reference_Allele"]),
            "alt": alt,
            "gene": gene,
            "protein_change": protein,
            "consequence": consequence,
            "ref_count": ref_count,
            "alt_count": alt_count,
            "depth": depth,
            "vaf": vaf,
        }
    )
