"""Readers of metabolite abundance tables: MetaboAnalyst-style tables and feature tables.

Both return a :class:`MetaboliteTable` (features x samples, float, NaN for missing) with
its feature index and per-sample metadata; the writer stores it as ``feature-matrix@1``.

* ``metaboanalyst``: the table MetaboAnalyst's statistical modules read (Pang et al.,
  *Nat. Protoc.* 17:1735, 2022; "Data formats" of the MetaboAnalyst web site): a
  sample-ID column and an optional class column, samples as rows (a column per feature)
  or as columns (a row per feature, the class as the second row). The orientation is the
  one whose sample axis holds more of the study's registered samples; when neither
  names any, a class row under the header means columns, otherwise rows (option
  ``orientation`` forces it).
* ``feature-table``: the features x samples export of MS-DIAL (alignment result:
  ``Alignment ID``, ``Average Rt(min)``, ``Average Mz``, ``Metabolite name``, ...; the
  ``Class`` / ``File type`` / ``Injection order`` rows above the header are read),
  MZmine 2 (``row ID``, ``row m/z``, ``row retention time``, ``row identity (main ID)``,
  ``<file> Peak area``), MZmine 3 (``id``, ``mz``, ``rt``, ``datafile:<file>:area``) and
  XCMS (``name``, ``mzmed``, ``rtmed``, ... from ``featureDefinitions`` / diffreport).
  The recognised metadata columns are settings (:class:`FeatureTableColumns`); every other
  column is a sample.

Every reader gives each abundance cell a missing reason (:data:`MISSING_REASONS`, stored
as the int8 array ``missing_reason`` next to ``abundance``): an empty cell (or ``NA``,
``NaN``, ``null``, ``-``) is *not measured*; a below-detection marker (``ND``, ``n.d.``,
``<LOD``, ``<LOQ``, ``BLQ``, ``BDL``, ``<0.05``...) is *below detection*; both are NaN
abundance. Injection order and batch, where the file gives them (a MetaboAnalyst column or
row named ``injection_order`` / ``order`` / ``batch``, MS-DIAL's ``Injection order`` and
``Batch ID`` rows, mzTab-M ``assay[n]-custom[k]`` parameters, mwTab additional sample
data), are kept with the samples as ``injection_order`` (integer) and ``batch`` (text), for
QC-RLSC drift correction.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics._text_files import open_checked_text
from resistomics.errors import InputError

__all__ = [
    "BELOW_DETECTION",
    "FEATURE_COLUMNS",
    "MEASURED",
    "MISSING_REASONS",
    "NOT_MEASURED",
    "SAMPLE_ID_NAMES",
    "MetaboliteReadContext",
    "MetaboliteTable",
    "detect_feature_table",
    "detect_metaboanalyst",
    "read_feature_table",
    "read_metaboanalyst",
    "sample_types",
]

#: First-cell names of a MetaboAnalyst table's sample-ID column (case-insensitive).
SAMPLE_ID_NAMES = ("sample", "samples", "sample_id", "sample id", "sampleid", "sample_name")
#: Class-column names recognised when no ``class_column`` option is given.
CLASS_NAMES = ("label", "class", "group", "groups")
#: Codes of the ``missing_reason`` array (int8, next to ``abundance``; the mapping is
#: also stored in the array's attributes).
MEASURED, NOT_MEASURED, BELOW_DETECTION = 0, 1, 2
MISSING_REASONS: dict[int, str] = {
    MEASURED: "measured",
    NOT_MEASURED: "not-measured",
    BELOW_DETECTION: "below-detection",
}
#: Cells meaning "no value, no reason given" (compared lower-case, stripped).
MISSING = frozenset({"", "na", "nan", "n/a", "null", "none", "-"})
#: Cells meaning "below the detection (or quantification) limit".
BELOW_DETECTION_CELLS = frozenset(
    {
        "nd",
        "n.d.",
        "n/d",
        "not detected",
        "bdl",
        "bld",
        "blq",
        "bql",
        "bloq",
        "blod",
        "<lod",
        "<loq",
        "<lloq",
        "<dl",
        "<mdl",
        "< lod",
        "< loq",
        "below lod",
        "below loq",
    }
)
_BELOW_LIMIT = re.compile(r"^<\s*[0-9]*\.?[0-9]+(e[-+]?[0-9]+)?$")  # "<0.05": below that limit
#: Names of the injection-order and batch columns (rows), compared lower-case.
INJECTION_ORDER_NAMES = (
    "injection_order",
    "injection order",
    "injectionorder",
    "order",
    "run_order",
    "run order",
    "runorder",
    "acquisition_order",
    "acquisition order",
)
BATCH_NAMES = ("batch", "batch_id", "batch id", "batchid", "analysis_batch", "analysis batch")
#: Sample types.
STUDY, QC, BLANK = "study", "qc", "blank"

#: The feature-table metadata columns recognised by default (exact names, per role).
FEATURE_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("Alignment ID", "row ID", "id", "name", "Feature ID", "feature_id"),
    "mz": ("Average Mz", "row m/z", "mz", "mzmed", "m/z"),
    "rt": ("Average Rt(min)", "row retention time", "rt", "rtmed", "RT", "retention_time"),
    "name": (
        "Metabolite name",
        "row identity (main ID)",
        "compound_db_identity:compound_name",
        "metabolite",
        "annotation",
    ),
    "identifier": ("INCHIKEY", "InChIKey", "HMDB", "KEGG", "ChEBI", "PubChem", "Formula", "SMILES"),
    # read and dropped: neither a sample nor kept in the index
    "other": (
        "Adduct type",
        "Post curation result",
        "Fill %",
        "MS/MS assigned",
        "Reference RT",
        "Reference m/z",
        "Ontology",
        "Annotation tag (VS1.0)",
        "RT matched",
        "m/z matched",
        "MS/MS matched",
        "Comment",
        "Manually modified for quantification",
        "Manually modified for annotation",
        "Isotope tracking parent ID",
        "Isotope tracking weight number",
        "Total score",
        "RT similarity",
        "Dot product",
        "Reverse dot product",
        "Fragment presence %",
        "S/N average",
        "Spectrum reference file name",
        "MS1 isotopic spectrum",
        "MS/MS spectrum",
        "mzmin",
        "mzmax",
        "rtmin",
        "rtmax",
        "npeaks",
        "isotopes",
        "adduct",
        "pcgroup",
        "row comment",
        "charge",
        "ion_identities:iin_id",
    ),
}
#: Sample columns of an MZmine export: the file name in group 1.
MZMINE_SAMPLE = (re.compile(r"^datafile:(.+):area$"), re.compile(r"^(.+?) Peak area$"))


@dataclass(frozen=True)
class MetaboliteReadContext:
    """What a reader needs besides the file."""

    registered_samples: frozenset[str] = frozenset()
    orientation: str = "auto"  # auto | rows | columns
    class_column: str | None = None
    sample_type_column: str | None = None
    extra_columns: tuple[str, ...] = ()
    injection_order_column: str | None = None
    batch_column: str | None = None
    keep_all_missing: bool = False  # keep features without a single value
    qc_pattern: str = r"(?i)(^|[^a-z])(qc|pool(ed)?)([^a-z]|$)"
    blank_pattern: str = r"(?i)(^|[^a-z])(blank|blk)([^a-z]|$)"
    columns: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(FEATURE_COLUMNS))


@dataclass
class MetaboliteTable:
    """A read table: ``values`` features x samples (float64, NaN missing) and, cell for
    cell, ``missing_reason`` (int8 codes of :data:`MISSING_REASONS`)."""

    features: pd.DataFrame  # feature_id, name, mz, rt, identifiers...
    samples: pd.DataFrame  # sample_id, sample_type, class, injection_order, batch, extras
    values: np.ndarray
    details: dict[str, Any]
    missing_reason: np.ndarray | None = None  # None: NaN cells are not measured

    def reasons(self) -> np.ndarray:
        """The missing reasons, derived from ``values`` when the reader gave none."""
        if self.missing_reason is not None:
            return self.missing_reason
        return np.where(np.isnan(self.values), NOT_MEASURED, MEASURED).astype(np.int8)


class Cells:
    """The abundance matrix of a table being read, filled cell by cell with its reasons.

    ``put`` parses one cell (:func:`abundance`); ``table`` checks that every feature has
    a value somewhere (rule ``all-missing-feature``) unless ``keep_all_missing``.
    """

    def __init__(self, path: str, n_features: int, n_samples: int, ctx: MetaboliteReadContext):
        self.path = path
        self.ctx = ctx
        self.values = np.empty((n_features, n_samples))
        self.reasons = np.zeros((n_features, n_samples), dtype=np.int8)

    def put(self, i: int, j: int, cell: str, *, line: int | None, column: str | None,
            row: str | None = None) -> None:  # fmt: skip
        self.values[i, j], self.reasons[i, j] = abundance(
            self.path, cell, line=line, column=column, row=row
        )

    def check_features(
        self, ids: Sequence[str], *, lines: Sequence[int | None] | None = None,
        columns: Sequence[str | None] | None = None, rows: Sequence[str | None] | None = None,
    ) -> None:  # fmt: skip
        """Refuse a feature with no value in any sample (``all-missing-feature``)."""
        if self.ctx.keep_all_missing or not self.values.shape[1]:
            return
        empty = np.flatnonzero(np.isnan(self.values).all(axis=1))
        if not len(empty):
            return
        i = int(empty[0])
        below = int((self.reasons[i] == BELOW_DETECTION).sum())
        raise InputError(
            self.path,
            "all-missing-feature",
            f"feature {ids[i]!r} has no value in any of {self.values.shape[1]} samples "
            f"({below} below detection; {len(empty)} such features): remove it, or ingest "
            "with --keep-all-missing true",
            line=lines[i] if lines else None,
            column=columns[i] if columns else None,
            row=rows[i] if rows else None,
        )


def _open_text(path: str) -> str:
    """The whole text, through :func:`~resistomics._text_files.open_checked_text`: what is
    not UTF-8 text (``text-encoding``), an overlong line (``line-length``) or a damaged
    gzip stream (``gzip-integrity``) is refused with its line."""
    with open_checked_text(path) as f:
        return f.read()


#: How much of a file ``guess_can_open`` looks at (decompressed bytes).
SNIFF_BYTES = 16 * 1024


def _head(path: str, n: int = 6) -> list[str]:
    """The first ``n`` lines within the first :data:`SNIFF_BYTES` of a regular file
    ([] for anything else: a FIFO or a device would block ``guess_can_open``, which must
    stay cheap and never wait; a file without line breaks is never read whole)."""
    if not os.path.isfile(path):
        return []
    try:
        with open(path, "rb") as f:
            raw = f.read(SNIFF_BYTES)
        if raw[:2] == b"\x1f\x8b":
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, SNIFF_BYTES)
    except (OSError, zlib.error):
        return []
    text = raw.decode("utf-8", errors="replace").removeprefix("\ufeff")
    return [line + "\n" for line in text.replace("\r\n", "\n").split("\n")[:n]]


def _delimiter(path: str, first: str) -> str:
    lower = path.lower().removesuffix(".gz")
    if lower.endswith(".csv"):
        return ","
    return "\t" if first.count("\t") >= first.count(",") else ","


def _rows(path: str) -> tuple[list[list[str]], str]:
    text = _open_text(path)
    if not text.strip():
        raise InputError(path, "empty", "the file holds no table", line=1)
    sep = _delimiter(path, text.split("\n", 1)[0])
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=sep, strict=True))
    except csv.Error as exc:
        raise InputError(path, "syntax", f"not a delimited table ({exc})") from None
    while rows and not any(c.strip() for c in rows[-1]):
        rows.pop()
    width = len(rows[0])
    for n, r in enumerate(rows[1:], start=2):
        if len(r) != width:
            cut = " (a cut or truncated file?)" if n == len(rows) and len(r) < width else ""
            raise InputError(
                path,
                "field-count",
                f"expected {width} fields like the header, found {len(r)}{cut}",
                line=n,
            )
    return rows, sep


def detect_metaboanalyst(path: str) -> bool:
    """A ``.csv``/``.tsv``/``.txt`` whose first header cell names the sample-ID column."""
    lines = _head(path, 1)
    if not lines or not lines[0]:
        return False
    first = lines[0]
    cell = first.split(_delimiter(path, first), 1)[0].strip().strip('"').lower()
    return cell in SAMPLE_ID_NAMES


def detect_feature_table(path: str) -> bool:
    """A table with an m/z and a retention-time column among its first lines."""
    mz = {c.lower() for c in FEATURE_COLUMNS["mz"]}
    rt = {c.lower() for c in FEATURE_COLUMNS["rt"]}
    for line in _head(path):
        cells = {
            c.strip().strip('"').lower() for c in line.rstrip("\r\n").split(_delimiter(path, line))
        }
        if cells & mz and cells & rt:
            return True
    return False


def _number(
    path: str, v: str, *, line: int | None, column: str | None, row: str | None = None
) -> float:
    s = v.strip()
    if s.lower() in MISSING:
        return float("nan")
    try:
        x = float(s)
    except ValueError:
        raise InputError(
            path, "number", f"{v!r} is not a number", line=line, column=column, row=row
        ) from None
    if not math.isfinite(x):
        raise InputError(
            path, "number", f"{v!r} is not a finite number", line=line, column=column, row=row
        )
    return x


def abundance(
    path: str,
    v: str,
    *,
    line: int | None,
    column: str | None,
    row: str | None = None,
) -> tuple[float, int]:
    """One abundance cell: its value and missing reason (:data:`MISSING_REASONS`).

    A negative value is read: whether it is allowed depends on the declared value kind
    (``--log-scaled``), which the dataset type's ``non-negative`` expectation checks.

    Raises
    ------
    InputError
        ``number``: text that is neither a finite number nor a missing /
        below-detection marker.
    """
    s = v.strip().lower()
    if s in MISSING:
        return float("nan"), NOT_MEASURED
    if s in BELOW_DETECTION_CELLS or _BELOW_LIMIT.match(s):
        return float("nan"), BELOW_DETECTION
    return _number(path, v, line=line, column=column, row=row), MEASURED


def run_order(
    path: str, values: Sequence[str], *, lines: Sequence[int | None], columns: Sequence[str | None]
) -> Any:
    """Injection order cells as nullable integers (empty: unknown).

    Raises
    ------
    InputError
        ``injection-order``: a cell that is not a whole number.
    """
    out: list[int | None] = []
    for k, v in enumerate(values):
        s = v.strip()
        if s.lower() in MISSING:
            out.append(None)
            continue
        try:
            x = float(s)
        except ValueError:
            x = float("nan")
        if not math.isfinite(x) or x != int(x):
            raise InputError(
                path,
                "injection-order",
                f"injection order {v!r} is not a whole number",
                line=lines[k],
                column=columns[k],
            )
        out.append(int(x))
    return pd.array(out, dtype="Int64")


def _unique(
    path: str,
    ids: Sequence[str],
    what: str,
    *,
    lines: Sequence[int] | None,
    columns: Sequence[str] | None = None,
) -> None:
    seen: dict[str, int] = {}
    for i, x in enumerate(ids):
        if not x.strip():
            raise InputError(
                path,
                f"{what}-id",
                f"a {what} without an ID",
                line=lines[i] if lines else 1,
                column=columns[i] if columns else None,
            )
        if x in seen:
            raise InputError(
                path,
                f"unique-{what}s",
                f"{what} {x!r} appears twice (also at {what} {seen[x] + 1})",
                line=lines[i] if lines else 1,
                column=columns[i] if columns else None,
            )
        seen[x] = i


def sample_types(
    ids: Sequence[str], given: Sequence[str] | None, ctx: MetaboliteReadContext
) -> list[str]:
    """Each sample's type: ``study``, ``qc`` (pooled QC) or ``blank``.

    From a sample-type column when given (values matched case-insensitively: ``qc``,
    ``pooled qc``, ``pool``, ``quality control`` -> qc; ``blank``, ``solvent blank``,
    ``extraction blank`` -> blank; anything else, e.g. MS-DIAL's ``Sample``, -> study),
    else by the sample name (``qc_pattern``, ``blank_pattern`` regular expressions).
    """
    out = []
    qc, blank = re.compile(ctx.qc_pattern), re.compile(ctx.blank_pattern)
    for i, s in enumerate(ids):
        if given is not None:
            v = given[i].strip().lower()
            out.append(
                QC
                if "qc" in v or "pool" in v or "quality" in v
                else BLANK
                if "blank" in v
                else STUDY
            )
        else:
            out.append(BLANK if blank.search(s) else QC if qc.search(s) else STUDY)
    return out


def _find(header: Sequence[str], name: str | None, defaults: Sequence[str]) -> int | None:
    if name is not None:
        return header.index(name) if name in header else -1
    low = [h.strip().lower() for h in header]
    for d in defaults:
        if d in low:
            return low.index(d)
    return None


def read_metaboanalyst(path: str | Path, ctx: MetaboliteReadContext) -> MetaboliteTable:
    """Read a MetaboAnalyst-style table (see the module docstring).

    Raises
    ------
    InputError
        ``number`` (a cell that is not a number, its line and column), ``unique-samples``,
        ``unique-features``, ``fields`` / ``truncated`` (a row of the wrong width),
        ``column`` (a named option column that is not there), ``orientation``.
    """
    path = str(path)
    rows, _ = _rows(path)
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise InputError(path, "empty", "a header and no rows", line=2)
    if len(header) < 2:
        raise InputError(path, "empty", "a sample-ID column and no features or samples", line=1)
    orientation = ctx.orientation
    if orientation == "auto":
        reg = ctx.registered_samples
        in_rows = sum(r[0].strip() in reg for r in body)
        in_cols = sum(h in reg for h in header[1:])
        if in_rows != in_cols:
            orientation = "rows" if in_rows > in_cols else "columns"
        else:
            second = body[0][0].strip().lower()
            orientation = (
                "columns"
                if second in CLASS_NAMES or second == (ctx.class_column or "").lower()
                else "rows"
            )
    if orientation == "rows":
        return _metaboanalyst_rows(path, header, body, ctx)
    if orientation == "columns":
        return _metaboanalyst_columns(path, header, body, ctx)
    raise InputError(path, "orientation", f"orientation {orientation!r}: auto, rows or columns")


def _named(
    path: str, header: Sequence[str], name: str | None, defaults: Sequence[str], what: str
) -> int | None:
    i = _find(header, name, defaults)
    if i == -1:
        raise InputError(path, "column", f"no {what} column {name!r} in the header", line=1)
    return i


def _run_columns(
    path: str, header: Sequence[str], ctx: MetaboliteReadContext, what: str
) -> dict[str, int]:
    """``injection_order`` / ``batch`` -> index in ``header`` (columns or row labels)."""
    out: dict[str, int] = {}
    for key, name, defaults in (
        ("injection_order", ctx.injection_order_column, INJECTION_ORDER_NAMES),
        ("batch", ctx.batch_column, BATCH_NAMES),
    ):
        i = _named(path, header, name, defaults, f"{key.replace('_', '-')} {what}")
        if i is not None:
            out[key] = i
    return out


def _add_run_order(
    path: str,
    samples: pd.DataFrame,
    cells: dict[str, list[str]],
    *,
    lines: Sequence[int | None],
    columns: Sequence[str | None],
) -> None:
    """Store the given ``injection_order`` / ``batch`` cells with the samples."""
    if "injection_order" in cells:
        samples["injection_order"] = run_order(
            path, cells["injection_order"], lines=lines, columns=columns
        )
    if "batch" in cells:
        samples["batch"] = [c.strip() for c in cells["batch"]]


def _metaboanalyst_rows(
    path: str, header: list[str], body: list[list[str]], ctx: MetaboliteReadContext
) -> MetaboliteTable:
    ci = _named(path, header, ctx.class_column, CLASS_NAMES, "class")
    ti = _named(path, header, ctx.sample_type_column, (), "sample-type")
    run = _run_columns(path, header, ctx, "column")
    meta = {0} | {i for i in (ci, ti) if i is not None} | set(run.values())
    for name in ctx.extra_columns:
        if name not in header:
            raise InputError(path, "column", f"no column {name!r} in the header", line=1)
        meta.add(header.index(name))
    cols = [j for j in range(len(header)) if j not in meta]
    ids = [r[0].strip() for r in body]
    _unique(
        path, ids, "sample", lines=[n + 2 for n in range(len(ids))], columns=[header[0]] * len(ids)
    )
    fids = [header[j] for j in cols]
    if not fids:
        raise InputError(path, "empty", "no feature columns besides the sample metadata", line=1)
    _unique(path, fids, "feature", lines=None, columns=fids)
    cells = Cells(path, len(cols), len(body), ctx)
    for s, r in enumerate(body):
        for k, j in enumerate(cols):
            cells.put(k, s, r[j], line=s + 2, column=header[j])
    cells.check_features(fids, lines=[1] * len(fids), columns=fids)
    samples = pd.DataFrame({"sample_id": ids})
    if ci is not None:
        samples["class"] = [r[ci].strip() for r in body]
    for name in ctx.extra_columns:
        samples[name] = [r[header.index(name)].strip() for r in body]
    _add_run_order(
        path,
        samples,
        {k: [r[j] for r in body] for k, j in run.items()},
        lines=[n + 2 for n in range(len(body))],
        columns=[header[run["injection_order"]] if "injection_order" in run else None] * len(body),
    )
    given = [r[ti] for r in body] if ti is not None else None
    samples.insert(1, "sample_type", sample_types(ids, given, ctx))
    features = pd.DataFrame({"feature_id": fids, "name": fids})
    return MetaboliteTable(features, samples, cells.values, {"orientation": "rows"}, cells.reasons)


def _metaboanalyst_columns(
    path: str, header: list[str], body: list[list[str]], ctx: MetaboliteReadContext
) -> MetaboliteTable:
    labels = [r[0].strip() for r in body]
    low = [x.lower() for x in labels]
    meta_rows: dict[str, int] = {}
    if ctx.class_column is not None:
        if ctx.class_column not in labels:
            raise InputError(path, "column", f"no class row {ctx.class_column!r}", column=header[0])
        meta_rows["class"] = labels.index(ctx.class_column)
    elif low and low[0] in CLASS_NAMES:
        meta_rows["class"] = 0
    if ctx.sample_type_column is not None:
        if ctx.sample_type_column not in labels:
            raise InputError(
                path, "column", f"no sample-type row {ctx.sample_type_column!r}", column=header[0]
            )
        meta_rows["sample_type"] = labels.index(ctx.sample_type_column)
    for name in ctx.extra_columns:
        if name not in labels:
            raise InputError(path, "column", f"no row {name!r}", column=header[0])
        meta_rows[name] = labels.index(name)
    run = _run_columns(path, labels, ctx, "row")
    ids = header[1:]
    _unique(path, ids, "sample", lines=None, columns=ids)
    taken = set(meta_rows.values()) | set(run.values())
    frows = [n for n in range(len(body)) if n not in taken]
    fids = [labels[n] for n in frows]
    if not fids:
        raise InputError(path, "empty", "no feature rows besides the sample metadata", line=2)
    flines = [n + 2 for n in frows]
    _unique(path, fids, "feature", lines=flines, columns=[header[0]] * len(frows))
    cells = Cells(path, len(frows), len(ids), ctx)
    for k, n in enumerate(frows):
        r = body[n]
        for s in range(len(ids)):
            cells.put(k, s, r[s + 1], line=n + 2, column=ids[s])
    cells.check_features(fids, lines=flines, columns=[header[0]] * len(frows))
    samples = pd.DataFrame({"sample_id": ids})
    if "class" in meta_rows:
        samples["class"] = [c.strip() for c in body[meta_rows["class"]][1:]]
    for name in ctx.extra_columns:
        samples[name] = [c.strip() for c in body[meta_rows[name]][1:]]
    _add_run_order(
        path,
        samples,
        {k: body[n][1:] for k, n in run.items()},
        lines=[run["injection_order"] + 2 if "injection_order" in run else None] * len(ids),
        columns=list(ids),
    )
    given = body[meta_rows["sample_type"]][1:] if "sample_type" in meta_rows else None
    samples.insert(1, "sample_type", sample_types(ids, given, ctx))
    features = pd.DataFrame({"feature_id": fids, "name": fids})
    return MetaboliteTable(
        features, samples, cells.values, {"orientation": "columns"}, cells.reasons
    )


def read_feature_table(path: str | Path, ctx: MetaboliteReadContext) -> MetaboliteTable:
    """Read an MS-DIAL / MZmine / XCMS feature table (see the module docstring).

    Raises
    ------
    InputError
        ``feature-columns`` (no feature-ID or m/z column), ``number``, ``unique-samples``,
        ``unique-features``, ``fields`` / ``truncated``.
    """
    path = str(path)
    rows, _ = _rows(path)
    # MS-DIAL: rows above the header (Class, File type, Injection order, Batch ID) start
    # with empty cells; the header is the first row whose first cell is not empty.
    h = next((n for n, r in enumerate(rows) if r[0].strip()), None)
    if h is None:
        raise InputError(path, "feature-columns", "no header row", line=1)
    header = [c.strip() for c in rows[h]]
    above = rows[:h]
    body = rows[h + 1 :]
    if not body:
        raise InputError(path, "empty", "a header and no feature rows", line=h + 2)
    role: dict[int, str] = {}
    known = {name: r for r, names in ctx.columns.items() for name in names}
    for j, c in enumerate(header):
        if c in known:
            if known[c] in ("id", "mz", "rt", "name") and known[c] in role.values():
                role[j] = "other"  # a second candidate (XCMS name + a later id): not a sample
            else:
                role[j] = known[c]
    by = {r: j for j, r in role.items() if r != "other" and r != "identifier"}
    if "mz" not in by:
        raise InputError(
            path, "feature-columns", "no m/z column (settings feature_columns.mz)", line=h + 1
        )
    sample_cols: list[int] = []
    names: list[str] = []
    for j, c in enumerate(header):
        if j in role:
            continue
        m = next((p.match(c) for p in MZMINE_SAMPLE if p.match(c)), None)
        if m is None and any(c.startswith("datafile:") for c in header):
            continue  # MZmine 3: another per-file column (mz, rt, height, ...)
        sample_cols.append(j)
        names.append(m.group(1) if m else c)
    names = [re.sub(r"\.(mzML|mzXML|raw|d|mzData|cdf|CDF)$", "", n) for n in names]
    if not sample_cols:
        raise InputError(path, "feature-columns", "no sample columns", line=h + 1)
    _unique(path, names, "sample", lines=None, columns=[header[j] for j in sample_cols])
    ids = (
        [r[by["id"]].strip() for r in body]
        if "id" in by
        else [str(n + 1) for n in range(len(body))]
    )
    _unique(
        path,
        ids,
        "feature",
        lines=[h + 2 + n for n in range(len(body))],
        columns=[header[by.get("id", 0)]] * len(ids),
    )
    cells = Cells(path, len(body), len(sample_cols), ctx)
    mz = np.empty(len(body))
    rt = np.full(len(body), np.nan)
    for n, r in enumerate(body):
        line = h + 2 + n
        mz[n] = _number(path, r[by["mz"]], line=line, column=header[by["mz"]])
        if "rt" in by:
            rt[n] = _number(path, r[by["rt"]], line=line, column=header[by["rt"]])
        for k, j in enumerate(sample_cols):
            cells.put(n, k, r[j], line=line, column=header[j])
    cells.check_features(
        ids,
        lines=[h + 2 + n for n in range(len(body))],
        columns=[header[by.get("id", 0)]] * len(ids),
    )
    features = pd.DataFrame({"feature_id": ids})
    features["name"] = [r[by["name"]].strip() for r in body] if "name" in by else ""
    features["mz"] = mz
    features["rt"] = rt
    for j, r_ in role.items():
        if r_ == "identifier":
            features[header[j]] = [r[j].strip() for r in body]
    given = None
    for r in above:  # MS-DIAL: the label sits in the column before the first sample
        label = r[sample_cols[0] - 1].strip().lower() if sample_cols[0] > 0 else ""
        if label == "file type":
            given = [r[j] for j in sample_cols]
    samples = pd.DataFrame({"sample_id": names})
    samples["sample_type"] = sample_types(names, given, ctx)
    run: dict[str, list[str]] = {}
    run_line: int | None = None
    for n, r in enumerate(above):
        label = r[sample_cols[0] - 1].strip().lower() if sample_cols[0] > 0 else ""
        if label == "class":
            samples["class"] = [r[j].strip() for j in sample_cols]
        elif label in INJECTION_ORDER_NAMES:
            run["injection_order"], run_line = [r[j] for j in sample_cols], n + 1
        elif label in BATCH_NAMES:
            run["batch"] = [r[j] for j in sample_cols]
    _add_run_order(
        path,
        samples,
        run,
        lines=[run_line] * len(names),
        columns=[header[j] for j in sample_cols],
    )
    return MetaboliteTable(
        features, samples, cells.values, {"orientation": "columns"}, cells.reasons
    )
