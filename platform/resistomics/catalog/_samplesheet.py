"""Sample sheets: the design of a study, one row per sample.

Reserved columns (case and ``-``/space insensitive): ``sample_id`` (required),
``subject_id``, ``timepoint`` (days from treatment start), ``phase``
(baseline / on-treatment / progression / relapse), ``treatment``, ``response``
(sensitive / resistant / partial / unknown), ``batch``, ``site``, ``subject_kind``.
Every other column is kept, under its own name (case kept), as a sample annotation
that contrasts and filters can use.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resistomics._text_files import MAX_FIELD_CHARS, open_checked_text
from resistomics.catalog._models import Phase, Response
from resistomics.errors import InputError, SampleSheetError

__all__ = ["MAX_SHEET_CHARS", "RESERVED_COLUMNS", "SampleRow", "parse_sample_sheet"]

# The largest sample sheet read (it is parsed in memory): 64 Mi characters.
MAX_SHEET_CHARS = 64 << 20

RESERVED_COLUMNS = (
    "sample_id",
    "subject_id",
    "timepoint",
    "phase",
    "treatment",
    "response",
    "batch",
    "site",
    "subject_kind",
)

_PHASE_ALIASES = {
    "baseline": Phase.BASELINE,
    "pre": Phase.BASELINE,
    "pre-treatment": Phase.BASELINE,
    "diagnosis": Phase.BASELINE,
    "on-treatment": Phase.ON_TREATMENT,
    "on": Phase.ON_TREATMENT,
    "progression": Phase.PROGRESSION,
    "relapse": Phase.RELAPSE,
}


@dataclass(frozen=True)
class SampleRow:
    """One validated row of a sample sheet."""

    sample_id: str
    subject_id: str
    timepoint: float | None = None
    phase: Phase | None = None
    treatment: str | None = None
    response: Response | None = None
    batch: str | None = None
    site: str | None = None
    subject_kind: str = "patient"
    annotations: dict[str, Any] = field(default_factory=dict)
    # where the row came from, for messages about it (not part of the design)
    sheet: str | None = field(default=None, compare=False)
    line: int | None = field(default=None, compare=False)


def _norm(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _value(raw: str) -> str | None:
    v = raw.strip()
    return None if v == "" or v.upper() in {"NA", "NAN", "NONE", "NULL"} else v


def _annotation(raw: str) -> Any:
    v = _value(raw)
    if v is None:
        return None
    try:
        number = float(v)
    except ValueError:
        return v
    if math.isfinite(number) and number.is_integer() and "." not in v and "e" not in v.lower():
        return int(number)
    return number


def _sheet_text(path: str) -> str:
    """The sheet's text, refused with one line if it is not a readable UTF-8 text file."""
    p = Path(path)
    if not p.exists():
        raise SampleSheetError(path, "file-exists", "no such file")
    if p.is_dir():
        raise SampleSheetError(
            path, "not-a-file", "is a directory; give the sample sheet file (TSV or CSV)"
        )
    try:
        with open_checked_text(p, gz_name_must_be_gzip=True) as f:
            text = f.read(MAX_SHEET_CHARS + 1)
    except SampleSheetError:
        raise
    except InputError as exc:
        raise _as_sheet_error(exc) from None
    if len(text) > MAX_SHEET_CHARS:
        raise SampleSheetError(
            path,
            "file-size",
            f"a sample sheet holds at most {MAX_SHEET_CHARS:,} characters (hundreds of "
            "thousands of samples); is this a data file?",
        )
    return text


def _as_sheet_error(exc: InputError) -> SampleSheetError:
    loc = exc.location
    return SampleSheetError(
        exc.file, exc.rule, exc.detail, line=loc.line, column=loc.column, row=loc.row
    )


def _rows(path: str, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Non-blank rows with the line each starts on; a quote that is never closed, a
    field that spans lines or one longer than ``MAX_FIELD_CHARS`` is refused."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    out: list[tuple[int, list[str]]] = []
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise SampleSheetError(
                    path,
                    "field-length",
                    f"a field is longer than {MAX_FIELD_CHARS:,} characters (the limit)",
                    line=start,
                ) from None
            raise SampleSheetError(
                path,
                "quote",
                f'cannot parse the row ({exc}): a quote (") opened and never closed?',
                line=start,
            ) from None
        end = reader.line_num
        for k, cell in enumerate(row):
            if len(cell) > MAX_FIELD_CHARS:
                raise SampleSheetError(
                    path,
                    "field-length",
                    f"field {k + 1} has {len(cell):,} characters; the limit is {MAX_FIELD_CHARS:,}",
                    line=start,
                )
            if "\n" in cell:
                raise SampleSheetError(
                    path,
                    "quote",
                    f'a quoted field runs from line {start} to line {end}: a quote (") that '
                    "is not closed on its line? (a sample sheet field holds no line break)",
                    line=start,
                )
        if any(c.strip() for c in row):
            out.append((start, row))
        start = end + 1
    return out


def parse_sample_sheet(path: str | Path, text: str | None = None) -> list[SampleRow]:
    """Read and validate a CSV/TSV sample sheet.

    Reserved column names are matched whatever their case and ``-``/space spelling
    (``Subject-ID`` is ``subject_id``); every other column is kept as an annotation
    under its own name, case included (``BT`` stays ``BT``).

    Parameters
    ----------
    path
        The sheet; its name is used in messages. The delimiter is taken from the
        extension (``.csv`` comma, otherwise tab).
    text
        The sheet's content, if already read.

    Raises
    ------
    SampleSheetError
        With file, line, column and rule: not a file or not UTF-8 text (rule
        ``text-encoding`` says what it looks like: xlsx, UTF-16, latin-1), a NUL byte,
        an unclosed quote (``quote``), an overlong field (``field-length``), empty
        sheet, missing ``sample_id``, a column that looks like a misspelt reserved name,
        two columns with the same name (ignoring case), duplicate sample IDs, a bad
        phase, response or timepoint value (``inf`` and ``nan`` are not days), or rows
        with the wrong number of fields.
    """
    path = str(path)
    if text is None:
        text = _sheet_text(path)
    elif "\x00" in text:
        raise SampleSheetError(path, "text-encoding", "the sheet holds a NUL character")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SampleSheetError(path, "not-empty", "the sample sheet is empty")
    delimiter = "," if path.lower().endswith(".csv") else "\t"
    rows = _rows(path, text, delimiter)
    if not rows:
        raise SampleSheetError(path, "not-empty", "the sample sheet is empty")
    header_line, first = rows[0]
    names = [h.strip() for h in first]
    header = [_norm(h) for h in names]
    if len(header) == 1 and ("," in first[0] or "\t" in first[0]):
        other = "tab" if delimiter == "," else "comma"
        raise SampleSheetError(
            path,
            "delimiter",
            f"only one column found; the file looks {other}-separated",
            line=header_line,
        )
    seen: dict[str, str] = {}
    for name, key in zip(names, header, strict=True):
        if key in seen:
            same = (
                ""
                if seen[key] == name
                else f" (as {seen[key]!r}; names are compared ignoring case)"
            )
            raise SampleSheetError(
                path,
                "unique-columns",
                f"duplicate column{same}",
                line=header_line,
                column=name,
            )
        seen[key] = name
    for name, key in zip(names, header, strict=True):
        if key in RESERVED_COLUMNS:
            continue
        close = difflib.get_close_matches(key, RESERVED_COLUMNS, n=1, cutoff=0.75)
        if close and close[0] not in header:
            raise SampleSheetError(
                path,
                "reserved-column",
                f"unknown column {name!r}: did you mean {close[0]!r}? "
                f"(rename it, or it would be kept as an annotation and {close[0]} left empty)",
                line=header_line,
                column=name,
            )
    if "sample_id" not in header:
        raise SampleSheetError(
            path, "required-column", "the sheet needs a 'sample_id' column", line=header_line
        )
    # reserved columns under their canonical name, annotations under their own
    keys = [
        key if key in RESERVED_COLUMNS else name for name, key in zip(names, header, strict=True)
    ]
    out: list[SampleRow] = []
    ids: dict[str, int] = {}
    for lineno, raw in rows[1:]:
        if len(raw) != len(header):
            raise SampleSheetError(
                path,
                "field-count",
                f"expected {len(header)} fields like the header, found {len(raw)}",
                line=lineno,
            )
        rec = dict(zip(keys, raw, strict=True))
        sample_id = _value(rec["sample_id"])
        if sample_id is None:
            raise SampleSheetError(path, "sample-id", "empty sample_id", line=lineno)
        if sample_id in ids:
            raise SampleSheetError(
                path,
                "unique-sample-id",
                f"sample {sample_id!r} is also on line {ids[sample_id]}",
                line=lineno,
                column="sample_id",
            )
        ids[sample_id] = lineno
        phase = None
        if (p := _value(rec.get("phase", ""))) is not None:
            key = _norm(p).replace("_", "-")
            if key not in _PHASE_ALIASES:
                options = ", ".join(m.value for m in Phase)
                guess = difflib.get_close_matches(key, list(_PHASE_ALIASES), n=1)
                hint = f"; did you mean {_PHASE_ALIASES[guess[0]].value!r}?" if guess else ""
                raise SampleSheetError(
                    path,
                    "phase-value",
                    f"phase {p!r} is not one of {options}{hint}",
                    line=lineno,
                    column="phase",
                )
            phase = _PHASE_ALIASES[key]
        response = None
        if (r := _value(rec.get("response", ""))) is not None:
            try:
                response = Response(r.strip().lower())
            except ValueError:
                options = ", ".join(m.value for m in Response)
                guess = difflib.get_close_matches(r.lower(), [m.value for m in Response], n=1)
                hint = f"; did you mean {guess[0]!r}?" if guess else ""
                raise SampleSheetError(
                    path,
                    "response-value",
                    f"response {r!r} is not one of {options}{hint}",
                    line=lineno,
                    column="response",
                ) from None
        timepoint = None
        if (t := _value(rec.get("timepoint", ""))) is not None:
            try:
                timepoint = float(t)
            except ValueError:
                timepoint = math.nan
            if not math.isfinite(timepoint):
                raise SampleSheetError(
                    path,
                    "timepoint-number",
                    f"timepoint {t!r} is not a (finite) number of days; leave it empty if unknown",
                    line=lineno,
                    column="timepoint",
                )
        annotations = {k: _annotation(v) for k, v in rec.items() if k not in RESERVED_COLUMNS}
        out.append(
            SampleRow(
                sample_id=sample_id,
                subject_id=_value(rec.get("subject_id", "")) or sample_id,
                timepoint=timepoint,
                phase=phase,
                treatment=_value(rec.get("treatment", "")),
                response=response,
                batch=_value(rec.get("batch", "")),
                site=_value(rec.get("site", "")),
                subject_kind=_value(rec.get("subject_kind", "")) or "patient",
                annotations=annotations,
                sheet=path,
                line=lineno,
            )
        )
    if not out:
        raise SampleSheetError(path, "not-empty", "the sample sheet has a header but no rows")
    return out
