"""Reader of Metabolomics Workbench mwTab files, text and JSON (the ``mwtab`` package of
Smelter & Moseley, *Metabolomics* 14:1 2018, parses them; "mwTab file format
specification" of the Metabolomics Workbench).

The text format is tab-separated and line-oriented: ``#METABOLOMICS WORKBENCH ...`` on
the first line, ``#SECTION`` lines, ``XX:KEY<tab>value`` items,
``SUBJECT_SAMPLE_FACTORS<tab>subject<tab>sample<tab>Name:value | Name:value<tab>Key=value;
Key=value`` lines, blocks between ``MS_METABOLITE_DATA_START`` / ``_END`` (a ``Samples``
header row, an optional ``Factors`` row, then one row per metabolite) and
``METABOLITES_START`` / ``_END`` (``metabolite_name`` header, annotation columns), and
``#END`` last. The JSON form holds the same sections as objects (``Data`` and
``Metabolites`` lists of records under the data section).

Mapped to a :class:`~._readers.MetaboliteTable`:

* the data section (``MS_METABOLITE_DATA``, ``NMR_METABOLITE_DATA`` or ``NMR_BINNED_DATA``,
  whose bins are the features) -> features x samples; ``Units`` kept in the details;
* ``SUBJECT_SAMPLE_FACTORS`` -> per sample: ``class`` (the factor string as written,
  ``Group:COVID19 | Time:0``), one ``factor:<name>`` column per factor, the file's
  subject as ``mwtab_subject``; injection order and batch from the additional sample
  data or the factors (names as ``_readers.INJECTION_ORDER_NAMES`` / ``BATCH_NAMES``);
  the sample type from a ``Sample type`` / ``sample_type`` entry, else the sample name;
* ``METABOLITES`` -> feature annotations: ``hmdb``, ``kegg``, ``pubchem``, ``chebi``,
  ``inchikey`` (from columns whose names contain those words, e.g. ``hmdb_id``,
  ``pubchem_id``, ``inchi_key``), ``mz`` (``moverz_quant``, ``quantified m/z``, ``m/z``)
  and ``rt`` (``retention_time``, ``rt``, or ``ri`` when ``ri_type`` says retention time).

The ``mwtab`` parser neither numbers lines nor checks rows, so the text is first read
through :func:`~._readers._open_text` (encoding, NUL bytes, line length) and its data
block is checked here (rows as wide as the header, unique samples and metabolites, a
closing ``#END``), so that every refusal names its line; JSON refusals name the record.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

__all__ = ["DATA_SECTIONS", "detect_mwtab", "read_mwtab"]

#: The data sections an mwTab file may hold (one of them).
DATA_SECTIONS = ("MS_METABOLITE_DATA", "NMR_METABOLITE_DATA", "NMR_BINNED_DATA")
_SAMPLE_TYPE_NAMES = ("sample type", "sample_type", "sampletype", "sample source type")
_IDENTIFIERS = (
    ("hmdb", re.compile(r"hmdb", re.I)),
    ("kegg", re.compile(r"kegg", re.I)),
    ("pubchem", re.compile(r"pubchem", re.I)),
    ("chebi", re.compile(r"chebi", re.I)),
    ("inchikey", re.compile(r"inchi[ _-]?key", re.I)),
)
_MZ_NAMES = ("moverz_quant", "quantified m/z", "quantified_mz", "m/z", "mz", "moverz")
_RT_NAMES = ("retention_time", "retention time", "rt", "rt(min)", "retention time (min)")


def detect_mwtab(path: str) -> bool:
    """A regular file (plain or gzip) starting ``#METABOLOMICS WORKBENCH`` (text), or a
    JSON object naming ``"METABOLOMICS WORKBENCH"`` in its first few KiB."""
    lines = _head(path, 40)
    if not lines:
        return False
    first = lines[0].lstrip()
    if first.startswith("#METABOLOMICS WORKBENCH"):
        return True
    return first.startswith("{") and '"METABOLOMICS WORKBENCH"' in "".join(lines)


@dataclass
class _TextLayout:
    """Where the parts of a text mwTab file are (1-based lines)."""

    ssf: dict[str, int] = field(default_factory=dict)  # sample -> its SSF line
    header_line: int = 0
    header: list[str] = field(default_factory=list)
    data_lines: list[int] = field(default_factory=list)  # one per metabolite row
    metabolite_lines: dict[str, int] = field(default_factory=dict)


def _check_text(path: str, text: str, section: str) -> _TextLayout:
    """Line checks the ``mwtab`` parser does not make; the layout for error places."""
    lines = text.split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(path, "empty", "the file holds no mwTab text", line=1)
    if lines[-1].strip() != "#END":
        raise InputError(
            path,
            "truncated",
            f"the last line is {lines[-1][:40]!r}, not #END: a cut or truncated file?",
            line=len(lines),
        )
    out = _TextLayout()
    block: str | None = None
    block_line = 0
    width = 0
    header_at = 0
    for n, raw in enumerate(lines, start=1):
        line = raw.rstrip("\n")
        key = line.split("\t", 1)[0].strip()
        if line.startswith("SUBJECT_SAMPLE_FACTORS") and block is None:
            cells = line.split("\t")
            if len(cells) < 4:
                raise InputError(
                    path,
                    "field-count",
                    "a SUBJECT_SAMPLE_FACTORS line has 4 or 5 tab-separated fields "
                    f"(key, subject, sample, factors[, additional data]), found {len(cells)}",
                    line=n,
                )
            out.ssf.setdefault(cells[2].strip(), n)
            continue
        if key.endswith("_START"):
            block, block_line = key.removesuffix("_START"), n
            width = 0
            continue
        if block is not None and line.startswith("#"):
            raise InputError(
                path,
                "unclosed-block",
                f"a section line inside the {block}_START block of line {block_line}: "
                f"its {block}_END is missing",
                line=n,
            )
        if key.endswith("_END") and block is not None:
            block = None
            continue
        if block is None or not line.strip():
            continue
        cells = [c.strip('" ') for c in line.split("\t")]
        if width == 0:  # the block's header
            while len(cells) > 1 and not cells[-1]:
                cells.pop()  # trailing tabs after the header
            width, header_at = len(cells), n
            if block == section:
                out.header_line, out.header = n, cells
            continue
        if block == section and key == "Factors" and not out.data_lines:
            continue
        # trailing empty cells past the header (stray tabs) are tolerated; a row
        # narrower than its header, or with values past it, is not
        used = len(cells)
        while used > width and not cells[used - 1]:
            used -= 1
        if used != width:
            raise InputError(
                path,
                "field-count",
                f"expected {width} tab-separated fields like the {block} header at line "
                f"{header_at}, found {used}",
                line=n,
            )
        if block == section:
            out.data_lines.append(n)
        elif block == "METABOLITES":
            out.metabolite_lines.setdefault(cells[0], n)
    if block is not None:
        raise InputError(
            path, "truncated", f"the {block}_START block has no {block}_END", line=len(lines)
        )
    return out


def _data_section_of_text(text: str) -> str | None:
    for name in DATA_SECTIONS:
        if f"\n{name}_START" in text:
            return name
    return None


def _no_duplicates(path: str) -> Any:
    """A JSON object hook refusing a repeated key (``json`` keeps the last in silence)."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                raise InputError(path, "json-duplicate-key", f"the key {k!r} appears twice")
            seen[k] = v
        return seen

    return hook


def _parse(path: str, text: str, *, is_json: bool) -> Mapping[str, Any]:
    """The file as the ``mwtab`` package reads it (a dict of sections)."""
    from mwtab.mwtab import MWTabFile

    if is_json:
        try:
            d = json.loads(text, object_pairs_hook=_no_duplicates(path))
        except json.JSONDecodeError as exc:
            raise InputError(path, "json-syntax", exc.msg, line=exc.lineno) from None
        _check_json(path, d)
    f = MWTabFile(path)
    try:
        f.read_from_str(text)
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as exc:
        # the tokenizer's message ends "LINE WITH ERROR:\n\t'<line>'": find that line
        msg = str(exc)
        kind = type(exc).__name__
        why = next(
            (s.strip() for s in reversed(msg.split("\n")) if s.strip().startswith(f"{kind}:")),
            f"{kind}: {msg.strip().splitlines()[-1] if msg.strip() else 'no message'}",
        )
        bad = msg.rsplit("LINE WITH ERROR:", 1)[-1].strip() if "LINE WITH ERROR:" in msg else ""
        line = None
        if bad:
            try:
                target = str(ast.literal_eval(bad))  # the tokenizer's repr() of the line
            except (ValueError, SyntaxError):
                target = ""
            line = next((n for n, t in enumerate(text.split("\n"), start=1) if t == target), None)
        raise InputError(
            path, "mwtab-syntax", f"the mwtab parser refused it: {why}", line=line
        ) from None
    return f


def _check_json(path: str, d: Any) -> None:
    """The JSON layout the ``mwtab`` package assumes (it fails on others with a bare
    ``TypeError``): an object; the data section an object whose ``Data`` and
    ``Metabolites`` are lists of records; ``SUBJECT_SAMPLE_FACTORS`` a list of records."""
    if not isinstance(d, dict):
        raise InputError(path, "mwtab-layout", "the JSON is not an object", line=1)
    ssf = d.get("SUBJECT_SAMPLE_FACTORS", [])
    if not isinstance(ssf, list) or not all(isinstance(r, dict) for r in ssf):
        raise InputError(
            path, "mwtab-layout", "not a list of records", row="SUBJECT_SAMPLE_FACTORS"
        )
    for name in DATA_SECTIONS:
        if name not in d:
            continue
        if not isinstance(d[name], dict):
            raise InputError(path, "mwtab-layout", "not an object", row=name)
        for part in ("Data", "Metabolites", "Extended"):
            value = d[name].get(part, [])
            if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
                raise InputError(
                    path, "mwtab-layout", "not a list of records", row=f"{name}.{part}"
                )


def _records(
    path: str, section: Mapping[str, Any], name: str, where: str
) -> list[Mapping[str, Any]]:
    value = section.get(name, [])
    if not isinstance(value, list) or not all(isinstance(r, Mapping) for r in value):
        raise InputError(
            path, "mwtab-layout", f"{where}.{name} is not a list of records", row=where
        )
    return value


def _find_key(d: Mapping[str, Any], names: Sequence[str]) -> Any:
    low = {str(k).strip().lower(): v for k, v in d.items()}
    return next((low[n] for n in names if n in low), None)


def read_mwtab(path: str | Path, ctx: MetaboliteReadContext) -> MetaboliteTable:
    """Read an mwTab file, text or JSON (see the module docstring).

    Raises
    ------
    InputError
        ``data-section`` (none of MS_METABOLITE_DATA / NMR_METABOLITE_DATA /
        NMR_BINNED_DATA), ``empty`` (no samples or no metabolite rows), ``field-count`` (a
        data or SUBJECT_SAMPLE_FACTORS row of the wrong width), ``truncated`` (no closing
        ``#END`` or ``_END``), ``unique-samples``, ``unique-features``, ``number``,
        ``non-negative``, ``all-missing-feature``, ``injection-order``, ``json-syntax``,
        ``json-duplicate-key``, ``mwtab-syntax`` / ``mwtab-layout`` (what the parser
        refuses), and what :func:`~._readers._open_text` refuses.
    """
    path = str(path)
    text = _open_text(path)
    is_json = text.lstrip().startswith("{")
    layout: _TextLayout | None = None
    if not is_json:
        if not text.lstrip().startswith("#METABOLOMICS WORKBENCH"):
            raise InputError(
                path, "mwtab-header", "the first line is not #METABOLOMICS WORKBENCH", line=1
            )
        name = _data_section_of_text(text)
        if name is None:
            raise InputError(
                path,
                "data-section",
                f"no data block ({', '.join(f'{d}_START' for d in DATA_SECTIONS)})",
            )
        layout = _check_text(path, text, name)
        _unique(
            path,
            layout.header[1:],
            "sample",
            lines=[layout.header_line] * (len(layout.header) - 1),
            columns=layout.header[1:],
        )
    f = _parse(path, text, is_json=is_json)
    name = next((d for d in DATA_SECTIONS if d in f), None)
    if name is None:
        raise InputError(path, "data-section", f"no data section ({', '.join(DATA_SECTIONS)})")
    section = f[name]
    if not isinstance(section, Mapping):
        raise InputError(path, "mwtab-layout", f"{name} is not an object", row=name)
    data = _records(path, section, "Data", name)
    if not data:
        raise InputError(
            path,
            "empty",
            f"{name} has no metabolite rows",
            line=layout.header_line if layout else None,
            row=None if layout else f"{name}.Data",
        )
    label = (
        "Bin range(ppm)"
        if name == "NMR_BINNED_DATA" and "Metabolite" not in data[0]
        else "Metabolite"
    )
    skip = {"Metabolite", "Bin range(ppm)"}
    samples_ = layout.header[1:] if layout else [k for k in data[0] if k not in skip]
    if not samples_:
        raise InputError(
            path,
            "empty",
            f"{name} has no sample columns",
            line=layout.header_line if layout else None,
            row=None if layout else f"{name}.Data[0]",
        )

    if layout is not None and len(data) != len(layout.data_lines):
        # mwtab takes the header row for a header only when it names SUBJECT_SAMPLE_FACTORS
        # samples; otherwise it reads it as a metabolite
        raise InputError(
            path,
            "sample-factors",
            f"no sample of the {name} header is listed in SUBJECT_SAMPLE_FACTORS",
            line=layout.header_line,
        )

    def place(i: int) -> dict[str, Any]:
        if layout is not None:
            return {"line": layout.data_lines[i], "row": None}
        return {"line": None, "row": f"{name}.Data[{i}]"}

    ids = [str(r.get(label, r.get("Metabolite", ""))).strip() for r in data]
    for i, x in enumerate(ids):
        if not x:
            raise InputError(path, "feature-id", "a metabolite row without a name", **place(i))
    seen: dict[str, int] = {}
    for i, x in enumerate(ids):
        if x in seen:
            raise InputError(
                path,
                "unique-features",
                f"metabolite {x!r} appears twice (also row {seen[x] + 1})",
                **place(i),
            )
        seen[x] = i
    cells = Cells(path, len(data), len(samples_), ctx)
    for i, r in enumerate(data):
        if layout is None:
            extra = [k for k in r if k not in skip and k not in samples_]
            if extra:
                raise InputError(
                    path, "field-count", f"a column {extra[0]!r} the first record lacks", **place(i)
                )
        for j, s in enumerate(samples_):
            v = r.get(s, "")
            cells.put(i, j, "" if v is None else str(v), column=s, **place(i))
    cells.check_features(
        ids, lines=[place(i)["line"] for i in range(len(ids))],
        rows=[place(i)["row"] for i in range(len(ids))],
    )  # fmt: skip
    features = pd.DataFrame({"feature_id": ids, "name": ids})
    _annotate(path, features, _records(path, section, "Metabolites", name), layout)
    samples = _samples(path, f, samples_, ctx, layout)
    units = section.get("Units", "")
    header = f.get("METABOLOMICS WORKBENCH", {})
    details = {
        "orientation": "columns",
        "mwtab_section": name,
        "units": str(units) if units else "",
        "study_id": str(header.get("STUDY_ID", "")) if isinstance(header, Mapping) else "",
        "analysis_id": str(header.get("ANALYSIS_ID", "")) if isinstance(header, Mapping) else "",
        "mwtab_form": "json" if is_json else "text",
    }
    return MetaboliteTable(features, samples, cells.values, details, cells.reasons)


def _annotate(
    path: str,
    features: pd.DataFrame,
    metabolites: list[Mapping[str, Any]],
    layout: _TextLayout | None,
) -> None:
    """Add the METABOLITES annotations (identifiers, m/z, RT) to ``features``, in place."""
    by_name: dict[str, Mapping[str, Any]] = {}
    for r in metabolites:
        key = str(r.get("Metabolite", r.get("metabolite_name", ""))).strip()
        by_name.setdefault(key, r)
    columns = list(dict.fromkeys(k for r in metabolites for k in r))
    for out, pattern in _IDENTIFIERS:
        source = next((c for c in columns if pattern.search(c)), None)
        features[out] = [
            str(by_name.get(x, {}).get(source, "") or "").strip() if source else ""
            for x in features["feature_id"]
        ]
    mz = np.full(len(features), np.nan)
    rt = np.full(len(features), np.nan)
    low = {c.strip().lower(): c for c in columns}
    mz_col = next((low[n] for n in _MZ_NAMES if n in low), None)
    rt_col = next((low[n] for n in _RT_NAMES if n in low), None)
    for i, x in enumerate(features["feature_id"]):
        found = by_name.get(x)
        if found is None:
            continue
        r = found
        line = layout.metabolite_lines.get(x) if layout else None
        row = None if layout else f"METABOLITES[{x!r}]"
        if mz_col is not None:
            mz[i] = _number(path, str(r.get(mz_col, "") or ""), line=line, column=mz_col, row=row)
        ri_type = str(_find_key(r, ("ri_type",)) or "").lower()
        if rt_col is not None:
            rt[i] = _number(path, str(r.get(rt_col, "") or ""), line=line, column=rt_col, row=row)
        elif "ri" in low and ("rt" in ri_type or "retention time" in ri_type):
            rt[i] = _number(
                path, str(r.get(low["ri"], "") or ""), line=line, column=low["ri"], row=row
            )
    features["mz"] = mz
    features["rt"] = rt


def _samples(
    path: str,
    f: Mapping[str, Any],
    ids: list[str],
    ctx: MetaboliteReadContext,
    layout: _TextLayout | None,
) -> pd.DataFrame:
    """The samples table from SUBJECT_SAMPLE_FACTORS (see the module docstring)."""
    ssf = f.get("SUBJECT_SAMPLE_FACTORS", [])
    by_id: dict[str, Mapping[str, Any]] = {}
    if isinstance(ssf, list):
        for entry in ssf:
            if isinstance(entry, Mapping):
                by_id.setdefault(str(entry.get("Sample ID", "")).strip(), entry)
    samples = pd.DataFrame({"sample_id": ids})

    def part(sample: str, key: str) -> Mapping[str, Any]:
        value = by_id.get(sample, {}).get(key, {})
        return value if isinstance(value, Mapping) else {}

    factors = [part(s, "Factors") for s in ids]
    extra = [part(s, "Additional sample data") for s in ids]
    samples["class"] = [" | ".join(f"{k}:{v}" for k, v in fs.items()) for fs in factors]
    for name in dict.fromkeys(k for fs in factors for k in fs):
        samples[f"factor:{name}"] = [str(fs.get(name, "")) for fs in factors]
    samples["mwtab_subject"] = [str(by_id.get(s, {}).get("Subject ID", "")) for s in ids]
    given = [
        _find_key(e, _SAMPLE_TYPE_NAMES) or _find_key(fs, _SAMPLE_TYPE_NAMES)
        for e, fs in zip(extra, factors, strict=True)
    ]
    types = sample_types(ids, None, ctx)
    if any(g for g in given):
        typed = sample_types(ids, [str(g or "") for g in given], ctx)
        types = [t if g else n for t, n, g in zip(typed, types, given, strict=True)]
    samples.insert(1, "sample_type", types)
    lines = [layout.ssf.get(s) if layout else None for s in ids]
    order = [
        _find_key(e, INJECTION_ORDER_NAMES) or _find_key(fs, INJECTION_ORDER_NAMES)
        for e, fs in zip(extra, factors, strict=True)
    ]
    if any(o not in (None, "") for o in order):
        samples["injection_order"] = run_order(
            path,
            ["" if o is None else str(o) for o in order],
            lines=lines,
            columns=[None if layout else f"SUBJECT_SAMPLE_FACTORS[{s!r}]" for s in ids],
        )
    batch = [
        _find_key(e, BATCH_NAMES) or _find_key(fs, BATCH_NAMES)
        for e, fs in zip(extra, factors, strict=True)
    ]
    if any(b not in (None, "") for b in batch):
        samples["batch"] = ["" if b is None else str(b).strip() for b in batch]
    return samples
