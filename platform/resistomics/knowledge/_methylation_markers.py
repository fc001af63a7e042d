"""Epigenetic treatment-response markers: the versioned catalogue of methylation markers.

An entry names a gene, the region whose methylation is the marker (a promoter window
around a TSS, or explicit coordinates), the therapy, the ``effect`` of hypermethylation
(``sensitivity``: methylated tumours respond; ``resistance``: they resist), the
methylation ``threshold`` of a call and its reference. The built-in catalogue lives in
``schemas/epigenetic/methylation_markers.yaml`` (hg19) and is read like the mutation
catalogue (:mod:`resistomics.knowledge._mutations`): validated entry by entry, a broken
rule is an :class:`~resistomics.errors.InputError` with the line, and ``source`` /
``version`` go into the lineage of every result that uses it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from resistomics._resources import schemas_dir
from resistomics.errors import InputError
from resistomics.knowledge._yaml_catalogue import file_version, read_yaml_entries

__all__ = [
    "MarkerCatalogue",
    "MethylationMarker",
    "builtin_methylation_markers",
    "read_marker_catalogue",
]

EFFECTS = frozenset({"resistance", "sensitivity"})
_GENE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")


@dataclass(frozen=True)
class MethylationMarker:
    """One catalogue entry; ``contig``/``start``/``end`` are 1-based inclusive."""

    gene: str
    contig: str
    start: int
    end: int
    region: str  # "promoter TSS+-1000" or "explicit"
    therapy: str
    effect: str
    threshold: float
    min_cpgs: int
    evidence: str = ""
    citation: str = ""
    pmid: str = ""
    doi: str = ""

    @property
    def marker_id(self) -> str:
        """Unique within a catalogue: ``GENE:contig:start-end|therapy``."""
        return f"{self.gene}:{self.contig}:{self.start}-{self.end}|{self.therapy}"

    @property
    def reference(self) -> str:
        """``PMID:<id>`` when known, else ``doi:<doi>``."""
        return f"PMID:{self.pmid}" if self.pmid else f"doi:{self.doi}"


@dataclass(frozen=True)
class MarkerCatalogue:
    """Markers plus where they came from (recorded in result lineage)."""

    source: str
    version: str
    genome: str
    entries: tuple[MethylationMarker, ...]

    def __len__(self) -> int:
        return len(self.entries)

    def regions(self) -> pd.DataFrame:
        """One row per distinct marker region: ``region_id``, contig, start, end, name.

        Entries sharing a region (BRCA1 for PARP inhibitors and for platinum) share a
        row; :meth:`table` maps each entry to its ``region_id``.
        """
        t = self.table()
        return (
            t.drop_duplicates("region_id")[["region_id", "contig", "start", "end", "gene"]]
            .rename(columns={"gene": "name"})
            .reset_index(drop=True)
        )

    def table(self) -> pd.DataFrame:
        """The entries as a table, one row each, with their ``region_id``."""
        rows = [
            {
                "marker_id": e.marker_id,
                "gene": e.gene,
                "region_id": f"{e.gene}:{e.contig}:{e.start}-{e.end}",
                "contig": e.contig,
                "start": e.start,
                "end": e.end,
                "region": e.region,
                "therapy": e.therapy,
                "effect": e.effect,
                "threshold": e.threshold,
                "min_cpgs": e.min_cpgs,
                "reference": e.reference,
                "citation": e.citation,
            }
            for e in self.entries
        ]
        return pd.DataFrame(rows)


class _EntryError(Exception):
    def __init__(self, rule: str, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.column = column


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _EntryError("region", f"{what} must be an integer", "region")
    try:
        return int(value)
    except ValueError:
        raise _EntryError("region", f"{what} {value!r} must be an integer", "region") from None


def _region(raw: Any) -> tuple[str, int, int, str]:
    if not isinstance(raw, Mapping):
        raise _EntryError(
            "region", "region is {tss: {contig, position}, flank} or {contig, start, end}", "region"
        )
    if "tss" in raw:
        tss = raw["tss"]
        if not isinstance(tss, Mapping) or not tss.get("contig"):
            raise _EntryError("region", "tss needs contig and position", "region")
        position = _integer(tss.get("position"), "tss position")
        flank = _integer(raw.get("flank", 1000), "flank")
        if position < 1 or flank < 0:
            raise _EntryError("region", "tss position must be >= 1 and flank >= 0", "region")
        contig = str(tss["contig"])
        return contig, max(1, position - flank), position + flank, f"promoter TSS+-{flank}"
    if not raw.get("contig"):
        raise _EntryError("region", "explicit region needs contig, start and end", "region")
    start, end = _integer(raw.get("start"), "start"), _integer(raw.get("end"), "end")
    if not 1 <= start <= end:
        raise _EntryError("region", f"region {start}-{end} needs 1 <= start <= end", "region")
    return str(raw["contig"]), start, end, "explicit"


def _entry(raw: Mapping[str, Any]) -> MethylationMarker:
    gene = _text(raw, "gene")
    if not _GENE_RE.match(gene):
        raise _EntryError("gene-symbol", f"gene {gene!r} is not an HGNC-style symbol", "gene")
    contig, start, end, kind = _region(raw.get("region"))
    therapy = _text(raw, "therapy")
    if not therapy:
        raise _EntryError("therapy", "every entry names a therapy (drug or drug class)", "therapy")
    effect = _text(raw, "effect").lower()
    if effect not in EFFECTS:
        raise _EntryError("effect", f"effect {effect!r} must be one of {sorted(EFFECTS)}", "effect")
    try:
        threshold = float(raw.get("threshold"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _EntryError(
            "threshold", "threshold must be a number in (0, 1)", "threshold"
        ) from None
    if not 0 < threshold < 1:
        raise _EntryError("threshold", f"threshold {threshold} must lie in (0, 1)", "threshold")
    min_cpgs = raw.get("min_cpgs", 3)
    if isinstance(min_cpgs, bool) or not isinstance(min_cpgs, int) or min_cpgs < 1:
        raise _EntryError("min-cpgs", f"min_cpgs {min_cpgs!r} must be an integer >= 1", "min_cpgs")
    pmid, doi = _text(raw, "pmid"), _text(raw, "doi")
    if pmid and not pmid.isdigit():
        raise _EntryError("reference", f"pmid {pmid!r} must be digits only", "pmid")
    if doi and not doi.startswith("10."):
        raise _EntryError("reference", f"doi {doi!r} must start with '10.'", "doi")
    if not pmid and not doi:
        raise _EntryError("reference", "every entry cites its evidence by pmid or doi", "pmid")
    return MethylationMarker(
        gene=gene,
        contig=contig,
        start=start,
        end=end,
        region=kind,
        therapy=therapy,
        effect=effect,
        threshold=threshold,
        min_cpgs=int(min_cpgs),
        evidence=" ".join(_text(raw, "evidence").split()),
        citation=_text(raw, "citation"),
        pmid=pmid,
        doi=doi,
    )


def _read_yaml(path: Path, text: str, *, source: str | None = None) -> MarkerCatalogue:
    doc, located = read_yaml_entries(path, text)
    entries: list[MethylationMarker] = []
    seen: dict[str, int | None] = {}
    for line, raw in located:
        try:
            entry = _entry(raw)
        except _EntryError as err:
            raise InputError(
                str(path), err.rule, err.message, line=line, column=err.column
            ) from None
        if entry.marker_id in seen:
            raise InputError(
                str(path),
                "unique-entries",
                f"{entry.gene} {entry.contig}:{entry.start}-{entry.end} for {entry.therapy} "
                f"appears twice (first at line {seen[entry.marker_id]})",
                line=line,
            )
        seen[entry.marker_id] = line
        entries.append(entry)
    if not entries:
        raise InputError(str(path), "not-empty", "the catalogue holds no entries")
    version = str(doc["version"]) if doc.get("version") else file_version(text)
    return MarkerCatalogue(
        source=source or str(path),
        version=version,
        genome=str(doc.get("genome") or "unknown"),
        entries=tuple(entries),
    )


def read_marker_catalogue(path: str | Path) -> MarkerCatalogue:
    """Read a user's marker catalogue (YAML in the built-in form).

    Raises
    ------
    InputError
        Missing file, YAML syntax, or an entry that breaks a rule (with its line): gene
        symbol, region, therapy, effect other than ``resistance``/``sensitivity``,
        threshold outside (0, 1), ``min_cpgs`` < 1, no pmid/doi, duplicate entry.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such marker catalogue") from None
    return _read_yaml(path, text)


@functools.cache
def builtin_methylation_markers() -> MarkerCatalogue:
    """The built-in, versioned catalogue of methylation markers (``schemas/epigenetic``).

    Every entry cites its evidence by PubMed ID and/or DOI; coordinates are hg19.
    """
    path = schemas_dir() / "epigenetic" / "methylation_markers.yaml"
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    return _read_yaml(path, text, source=f"builtin:{doc['catalogue']}")
