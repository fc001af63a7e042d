"""Reader of mzTab-M 2.0 files (Hoffmann et al., *Anal. Chem.* 91:3302, 2019; the
mzTab-M 2.0.0 specification of HUPO-PSI / the Metabolomics Society).

An mzTab-M file is tab-separated text, each line named by its first cell: ``MTD``
(metadata: ``mzTab-version``, ``ms_run[n]-location``, ``assay[n]``,
``assay[n]-sample_ref``, ``assay[n]-ms_run_ref``, ``sample[n]``, ...), ``SMH`` / ``SML``
(the small-molecule summary: header and rows), ``SFH`` / ``SMF`` (features),
``SEH`` / ``SME`` (evidence, not read) and ``COM`` (comments). ``null`` is a missing cell.

The abundance matrix is the SML section's ``abundance_assay[n]`` columns; assay ``n`` is
the sample its ``assay[n]-sample_ref`` names (the sample's ``sample[m]`` value, or
``sample[m]-name``), and its ms run is kept with the sample. Features: ``SML_ID``,
``chemical_name``, ``database_identifier`` (``|``-separated, e.g. ``CHEBI:16946|HMDB:...``),
``theoretical_neutral_mass``; m/z and retention time (seconds) from the first SMF row the
SML row references (``SMF_ID_REFS``), m/z falling back to the neutral mass without one.

Missing reasons: ``null`` (and an empty cell) is *not measured*; a below-detection marker
(``ND``, ``<LOD``, ...; see ``_readers.abundance``) is *below detection*. Injection order
and batch come from user parameters of the assay or of its sample,
``MTD assay[n]-custom[k]  [,,injection order,12]`` and ``[,,batch,B2]`` (names as in
``_readers.INJECTION_ORDER_NAMES`` / ``BATCH_NAMES``); the ``ms_run[n]`` index is kept as
``ms_run_index`` but not taken for an injection order (run numbering in a file need not
be the acquisition order).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.errors import InputError
from resistomics.modalities.metabolomics._readers import (
    BATCH_NAMES,
    INJECTION_ORDER_NAMES,
    Cells,
    MetaboliteReadContext,
    MetaboliteTable,
    _head,
    _number,
    _open_text,
    _unique,
    run_order,
    sample_types,
)

__all__ = ["detect_mztab_m", "read_mztab_m"]

_VERSION = re.compile(r"^MTD\tmzTab-version\t2\.0")
_INDEXED = re.compile(r"^(assay|sample|ms_run)\[(\d+)\](?:-(.+))?$")
_CUSTOM = re.compile(r"^(assay|sample)\[(\d+)\]-custom\[\d+\]$")
_ABUNDANCE = re.compile(r"^abundance_assay\[(\d+)\]$")
_PREFIXES = frozenset({"MTD", "SMH", "SML", "SFH", "SMF", "SEH", "SME", "COM"})


def detect_mztab_m(path: str) -> bool:
    """A regular file (plain or gzip) declaring ``MTD  mzTab-version  2.0...`` in its
    first lines (the specification puts it first; comments may precede it)."""
    if not os.path.isfile(path):
        return False
    return any(_VERSION.match(line) for line in _head(path, 20))


@dataclass(frozen=True)
class _Section:
    """A header (``SMH`` / ``SFH``) and its rows, each with its 1-based line number."""

    header: list[str]
    header_line: int
    rows: list[tuple[int, list[str]]]


def _cell(v: str) -> str:
    s = v.strip()
    return "" if s == "null" else s


def _sections(path: str, text: str) -> tuple[dict[str, tuple[int, str]], dict[str, _Section]]:
    """MTD key -> (line, value); section (``SML``, ``SMF``) -> header and rows."""
    mtd: dict[str, tuple[int, str]] = {}
    headers = {"SMH": "SML", "SFH": "SMF"}
    sections: dict[str, _Section] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        cells = raw.split("\t")
        prefix = cells[0].strip()
        if prefix not in _PREFIXES:
            raise InputError(
                path, "line-prefix", f"line starts with {prefix!r}, not an mzTab prefix", line=n
            )
        if prefix == "MTD":
            if len(cells) != 3:
                raise InputError(
                    path,
                    "field-count",
                    f"an MTD line has 3 tab-separated fields (MTD, key, value), found {len(cells)}",
                    line=n,
                )
            mtd.setdefault(cells[1].strip(), (n, cells[2].strip()))
        elif prefix in headers:
            name = headers[prefix]
            if name in sections:
                raise InputError(path, "header", f"a second {prefix} header line", line=n)
            sections[name] = _Section([c.strip() for c in cells], n, [])
        elif prefix in ("SML", "SMF"):
            if prefix not in sections:
                head = "SMH" if prefix == "SML" else "SFH"
                raise InputError(
                    path, "header", f"an {prefix} row before any {head} header line", line=n
                )
            sec = sections[prefix]
            if len(cells) != len(sec.header):
                raise InputError(
                    path,
                    "field-count",
                    f"expected {len(sec.header)} fields as the header at line "
                    f"{sec.header_line}, found {len(cells)}",
                    line=n,
                )
            sec.rows.append((n, cells))
    return mtd, sections


def _column(path: str, sec: _Section, name: str, *, required: bool) -> int | None:
    if name in sec.header:
        return sec.header.index(name)
    if required:
        raise InputError(
            path, "header", f"no {name} column in the header", line=sec.header_line, column=name
        )
    return None


def _assay_samples(
    path: str, mtd: dict[str, tuple[int, str]], assays: Sequence[int], header_line: int
) -> tuple[list[str], list[str]]:
    """Each abundance column's sample name and ms-run location."""
    sample_name: dict[str, str] = {}
    for key, (_, value) in mtd.items():
        m = _INDEXED.match(key)
        if m and m.group(1) == "sample" and m.group(3) in (None, "name") and value:
            sample_name.setdefault(f"sample[{m.group(2)}]", value)
    names, runs = [], []
    for a in assays:
        key = f"assay[{a}]"
        if key not in mtd:
            raise InputError(
                path,
                "assay-sample",
                f"abundance_assay[{a}] has no MTD {key} entry",
                line=header_line,
                column=f"abundance_assay[{a}]",
            )
        line = mtd[key][0]
        ref_line, ref = mtd.get(f"{key}-sample_ref", (line, ""))
        if ref not in sample_name:
            what = f"names {ref!r}, which no MTD sample entry defines" if ref else "is missing"
            raise InputError(
                path,
                "assay-sample",
                f"{key}-sample_ref {what}: the assay maps to no sample",
                line=ref_line,
            )
        run_line, run = mtd.get(f"{key}-ms_run_ref", (line, ""))
        location = mtd.get(f"{run}-location", (0, ""))[1] if run else ""
        if run and f"{run}-location" not in mtd:
            raise InputError(
                path,
                "assay-ms-run",
                f"{key}-ms_run_ref names {run!r}, which has no location",
                line=run_line,
            )
        names.append(sample_name[ref])
        runs.append(location)
    return names, runs


def _custom_params(mtd: dict[str, tuple[int, str]]) -> dict[str, dict[str, tuple[int, str]]]:
    """``assay[n]`` / ``sample[m]`` -> user-parameter name (lower case) -> (line, value),
    from ``MTD assay[n]-custom[k]  [CV, accession, name, value]``."""
    out: dict[str, dict[str, tuple[int, str]]] = {}
    for key, (line, value) in mtd.items():
        m = _CUSTOM.match(key)
        if m is None:
            continue
        parts = [p.strip() for p in value.strip().removeprefix("[").removesuffix("]").split(",", 3)]
        if len(parts) == 4 and parts[2]:
            owner = out.setdefault(f"{m.group(1)}[{m.group(2)}]", {})
            owner.setdefault(parts[2].lower().replace("-", " "), (line, parts[3]))
    return out


def _run_order(
    path: str,
    mtd: dict[str, tuple[int, str]],
    assays: Sequence[int],
    samples: pd.DataFrame,
) -> None:
    """Add ``injection_order`` / ``batch`` from the assays' (else their samples')
    user parameters, when any assay gives them."""
    custom = _custom_params(mtd)
    for column, names in (("injection_order", INJECTION_ORDER_NAMES), ("batch", BATCH_NAMES)):
        cells: list[str] = []
        lines: list[int | None] = []
        for a in assays:
            ref = mtd.get(f"assay[{a}]-sample_ref", (0, ""))[1]
            found = next(
                (
                    params[n]
                    for owner in (f"assay[{a}]", ref)
                    if (params := custom.get(owner))
                    for n in names
                    if n in params
                ),
                None,
            )
            cells.append(found[1] if found else "")
            lines.append(found[0] if found else None)
        if not any(cells):
            continue
        if column == "batch":
            samples["batch"] = [c.strip() for c in cells]
        else:
            samples["injection_order"] = run_order(
                path, cells, lines=lines, columns=[None] * len(cells)
            )


def _first_float(path: str, v: str, *, line: int, column: str) -> float:
    """The first of ``|``-separated numbers (``theoretical_neutral_mass`` may hold several)."""
    return _number(path, _cell(v).split("|", 1)[0], line=line, column=column)


def read_mztab_m(path: str | Path, ctx: MetaboliteReadContext) -> MetaboliteTable:
    """Read an mzTab-M 2.0 file's small-molecule summary (see the module docstring).

    Raises
    ------
    InputError
        ``mztab-version`` (no ``MTD mzTab-version 2.0``), ``header`` (no SMH header, an SML
        row before it, a missing SML_ID column), ``empty`` (no SML rows), ``assay-sample``
        (an assay that maps to no sample), ``assay-ms-run``, ``number`` (text in an
        abundance column), ``unique-features`` (a repeated SML_ID), ``unique-samples``,
        ``fields``, ``line-prefix``.
    """
    path = str(path)
    mtd, sections = _sections(path, _open_text(path))
    version = mtd.get("mzTab-version", (1, ""))
    if not version[1].startswith("2.0"):
        raise InputError(
            path,
            "mztab-version",
            f"mzTab-version {version[1]!r}: this reads mzTab-M 2.0",
            line=version[0],
        )
    if "SML" not in sections:
        raise InputError(path, "header", "no SMH header line (small-molecule summary)")
    sml = sections["SML"]
    if not sml.rows:
        raise InputError(path, "empty", "an SMH header and no SML rows", line=sml.header_line)
    id_col = _column(path, sml, "SML_ID", required=True)
    assert id_col is not None
    abundance = [
        (j, int(m.group(1))) for j, h in enumerate(sml.header) if (m := _ABUNDANCE.match(h))
    ]
    if not abundance:
        raise InputError(path, "header", "no abundance_assay[n] column", line=sml.header_line)
    names, runs = _assay_samples(path, mtd, [a for _, a in abundance], sml.header_line)
    columns = [sml.header[j] for j, _ in abundance]
    _unique(path, names, "sample", lines=None, columns=columns)
    ids = [_cell(r[id_col]) for _, r in sml.rows]
    _unique(path, ids, "feature", lines=[n for n, _ in sml.rows], columns=["SML_ID"] * len(ids))
    cells = Cells(path, len(sml.rows), len(abundance), ctx)
    for i, (n, r) in enumerate(sml.rows):
        for k, (j, _) in enumerate(abundance):
            cells.put(i, k, _cell(r[j]), line=n, column=sml.header[j])
    cells.check_features(ids, lines=[n for n, _ in sml.rows], columns=["SML_ID"] * len(ids))

    def text(name: str) -> list[str]:
        j = _column(path, sml, name, required=False)
        return [_cell(r[j]) if j is not None else "" for _, r in sml.rows]

    neutral = np.full(len(ids), np.nan)
    if (jm := _column(path, sml, "theoretical_neutral_mass", required=False)) is not None:
        for i, (n, r) in enumerate(sml.rows):
            neutral[i] = _first_float(path, r[jm], line=n, column=sml.header[jm])
    mz, rt = neutral.copy(), np.full(len(ids), np.nan)
    refs = _column(path, sml, "SMF_ID_REFS", required=False)
    if "SMF" in sections and refs is not None:
        smf = sections["SMF"]
        f_id = _column(path, smf, "SMF_ID", required=True)
        f_mz = _column(path, smf, "exp_mass_to_charge", required=False)
        f_rt = _column(path, smf, "retention_time_in_seconds", required=False)
        by_id = {_cell(r[f_id]): (n, r) for n, r in smf.rows} if f_id is not None else {}
        for i, (n, r) in enumerate(sml.rows):
            first = _cell(r[refs]).split("|", 1)[0].strip()
            if not first:
                continue
            if first not in by_id:
                raise InputError(
                    path,
                    "smf-ref",
                    f"SMF_ID_REFS names {first!r}, no SMF row has that SMF_ID",
                    line=n,
                    column="SMF_ID_REFS",
                )
            fn, fr = by_id[first]
            if f_mz is not None:
                mz[i] = _number(path, _cell(fr[f_mz]), line=fn, column="exp_mass_to_charge")
            if f_rt is not None:
                rt[i] = _number(path, _cell(fr[f_rt]), line=fn, column="retention_time_in_seconds")
    features = pd.DataFrame(
        {
            "feature_id": ids,
            "name": text("chemical_name"),
            "mz": mz,
            "rt": rt,
            "theoretical_neutral_mass": neutral,
            "identifiers": text("database_identifier"),
            "chemical_formula": text("chemical_formula"),
            "inchi": text("inchi"),
        }
    )
    samples = pd.DataFrame(
        {
            "sample_id": names,
            "sample_type": sample_types(names, None, ctx),
            "assay": [f"assay[{a}]" for _, a in abundance],
            "ms_run": runs,
            "ms_run_index": pd.array(
                [
                    int(m.group(1)) if (m := re.match(r"^ms_run\[(\d+)\]$", ref)) else None
                    for ref in (mtd.get(f"assay[{a}]-ms_run_ref", (0, ""))[1] for _, a in abundance)
                ],
                dtype="Int64",
            ),
        }
    )
    _run_order(path, mtd, [a for _, a in abundance], samples)
    details = {
        "orientation": "columns",
        "mztab_id": mtd.get("mzTab-ID", (0, ""))[1],
        "rt_unit": "s",
    }
    return MetaboliteTable(features, samples, cells.values, details, cells.reasons)
