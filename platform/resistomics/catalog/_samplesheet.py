"""Sample sheets: the design of a study, one row per sample.

Reserved columns (case and ``-``/space insensitive): ``sample_id`` (required),
``subject_id``, ``timepoint`` (days from treatment start), ``phase``
(baseline / on-treatment / progression / relapse), ``treatment``, ``response``
(sensitive / resistant / partial / unknown), ``batch``, ``site``, ``subject_kind``.
Every other column is kept as a sample annotation that contrasts and filters can use.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resistomics.catalog._models import Phase, Response
from resistomics.errors import SampleSheetError

__all__ = ["RESERVED_COLUMNS", "SampleRow", "parse_sample_sheet"]

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


def parse_sample_sheet(path: str | Path, text: str | None = None) -> list[SampleRow]:
    """Read and validate a CSV/TSV sample sheet.

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
        With file, line, column and rule: empty sheet, missing ``sample_id``, a column
        that looks like a misspelt reserved name, duplicate sample IDs, a bad phase,
        response or timepoint value, or rows with the wrong number of fields.
    """
    path = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise SampleSheetError(path, "file-exists", "no such file") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise SampleSheetError(path, "not-empty", "the sample sheet is empty")
    delimiter = "," if path.lower().endswith(".csv") else "\t"
    rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    rows = [r for r in rows if any(c.strip() for c in r)]
    header = [_norm(h) for h in rows[0]]
    if len(header) == 1 and ("," in rows[0][0] or "\t" in rows[0][0]):
        other = "tab" if delimiter == "," else "comma"
        raise SampleSheetError(
            path, "delimiter", f"only one column found; the file looks {other}-separated", line=1
        )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise SampleSheetError(path, "unique-columns", "duplicate column", line=1, column=name)
        seen.add(name)
    for name in header:
        if name in RESERVED_COLUMNS:
            continue
        close = difflib.get_close_matches(name, RESERVED_COLUMNS, n=1, cutoff=0.75)
        if close and close[0] not in header:
            raise SampleSheetError(
                path,
                "reserved-column",
                f"unknown column {name!r}: did you mean {close[0]!r}? "
                f"(rename it, or it would be kept as an annotation and {close[0]} left empty)",
                line=1,
                column=name,
            )
    if "sample_id" not in header:
        raise SampleSheetError(
            path, "required-column", "the sheet needs a 'sample_id' column", line=1
        )
    out: list[SampleRow] = []
    ids: dict[str, int] = {}
    for lineno, raw in enumerate(rows[1:], start=2):
        if len(raw) != len(header):
            raise SampleSheetError(
                path,
                "field-count",
                f"expected {len(header)} fields, found {len(raw)}",
                line=lineno,
            )
        rec = dict(zip(header, raw, strict=True))
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
                raise SampleSheetError(
                    path,
                    "timepoint-number",
                    f"timepoint {t!r} is not a number of days",
                    line=lineno,
                    column="timepoint",
                ) from None
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
            )
        )
    if not out:
        raise SampleSheetError(path, "not-empty", "the sample sheet has a header but no rows")
    return out
