"""Treatment-response mutations: the versioned catalogue and a matcher for protein changes.

A catalogue entry names a gene and one *site* at one of three levels:

``exact``
    one protein change (``EGFR T790M``); it matches that change only, so ``T790A`` does
    **not** hit a ``T790M`` entry.
``codon``
    any change at one codon (``FLT3 D835``, written ``D835*`` in the literature); it matches
    every non-synonymous change that starts at that codon with the same reference residue
    (``D835Y``, ``D835H``, ``D835del``, ``D835fs``).
``region``
    an amino-acid range, e.g. a domain (``PML`` B2 box); it matches every non-synonymous
    change whose span overlaps the range.

The built-in catalogue lives in ``schemas/mutations/resistance_mutations.yaml``; users can
add their own (YAML in the same form, or TSV) and :func:`merge` them.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from resistomics._resources import schemas_dir
from resistomics.errors import InputError
from resistomics.knowledge._yaml_catalogue import file_version, read_yaml_entries

__all__ = [
    "CatalogueHit",
    "MutationCatalogue",
    "ProteinChange",
    "Region",
    "ResistanceMutation",
    "annotate",
    "builtin_mutations",
    "match",
    "merge",
    "parse_protein_change",
    "read_mutation_catalogue",
]

Level = Literal["exact", "codon", "region"]
EFFECTS = frozenset({"resistance", "sensitivity"})
_LEVEL_RANK: dict[str, int] = {"exact": 0, "codon": 1, "region": 2}

_THREE_TO_ONE = {
    "Ala": "A", "Arg": "R", "Asn": "N", "Asp": "D", "Cys": "C", "Gln": "Q", "Glu": "E",
    "Gly": "G", "His": "H", "Ile": "I", "Leu": "L", "Lys": "K", "Met": "M", "Phe": "F",
    "Pro": "P", "Ser": "S", "Thr": "T", "Trp": "W", "Tyr": "Y", "Val": "V", "Sec": "U",
    "Pyl": "O", "Ter": "*", "Xaa": "X",
}  # fmt: skip
_ONE_LETTER = frozenset(_THREE_TO_ONE.values()) - {"X"}


# --------------------------------------------------------------------------------------
# Protein changes
# --------------------------------------------------------------------------------------

ChangeKind = Literal[
    "missense",
    "nonsense",
    "synonymous",
    "deletion",
    "insertion",
    "delins",
    "duplication",
    "frameshift",
    "extension",
]


@dataclass(frozen=True)
class ProteinChange:
    """A parsed protein change: reference residue and span, alternate residue, kind.

    ``ref`` is the one-letter residue at ``start``; ``alt`` is the one-letter residue of a
    substitution (``"*"`` for nonsense) and empty for other kinds.
    """

    ref: str
    start: int
    end: int
    alt: str
    kind: ChangeKind

    @property
    def is_substitution(self) -> bool:
        return self.kind in ("missense", "nonsense")

    @property
    def changes_protein(self) -> bool:
        return self.kind != "synonymous"

    def __str__(self) -> str:
        if self.is_substitution or self.kind == "synonymous":
            return f"{self.ref}{self.start}{self.alt}"
        span = f"{self.ref}{self.start}" + (f"_{self.end}" if self.end != self.start else "")
        return span + _SUFFIX[self.kind]


_ONE_RE = re.compile(r"^([A-Z*])(\d+)(?:_([A-Z*])(\d+))?(.*)$")
_THREE_RE = re.compile(r"^([A-Z][a-z]{2})(\d+)(?:_([A-Z][a-z]{2}|\*)(\d+))?(.*)$")
_SUFFIX: dict[str, str] = {
    "deletion": "del",
    "insertion": "ins",
    "delins": "delins",
    "duplication": "dup",
    "frameshift": "fs",
    "extension": "ext",
}
_KEYWORDS: tuple[tuple[str, ChangeKind], ...] = (
    ("delins", "delins"),
    ("del", "deletion"),
    ("ins", "insertion"),
    ("dup", "duplication"),
    ("ext", "extension"),
)


def parse_protein_change(text: object) -> ProteinChange | None:
    """Parse an HGVS-like protein change; ``None`` when it is not one.

    Accepts ``p.`` or no prefix, optional parentheses, one- or three-letter residues:
    ``T790M``, ``p.T790M``, ``p.Thr790Met``, ``p.(Thr790Met)``, nonsense ``p.E1021*`` /
    ``p.Glu1021Ter`` / ``E1021X``, synonymous ``p.T790=``, in-frame ``p.E746_A750del``,
    ``p.E746_S752delinsV``, ``p.A767_V769dup``, insertions and frameshifts ``p.K123fs`` /
    ``p.Lys123ArgfsTer5``.

    Reference: den Dunnen et al., Hum Mutat 2016;37:564-569 (HGVS nomenclature),
    doi:10.1002/humu.22981.
    """
    if not isinstance(text, str):
        return None
    s = text.strip()
    if s[:2] in ("p.", "P."):
        s = s[2:]
    if s.startswith("(") and s.endswith(")"):
        s = s[1:-1]
    if not s:
        return None
    m = _THREE_RE.match(s)
    if m and m.group(1) in _THREE_TO_ONE:
        ref3, pos, ref3_end, pos_end, rest = m.groups()
        if ref3_end is not None and ref3_end not in _THREE_TO_ONE and ref3_end != "*":
            return None
        return _classify(_three(ref3), int(pos), pos_end, rest, three=True)
    m = _ONE_RE.match(s[0].upper() + s[1:])
    if m:
        ref, pos, _, pos_end, rest = m.groups()
        return _classify(ref, int(pos), pos_end, rest, three=False)
    return None


def _three(code: str) -> str:
    return "*" if code == "*" else _THREE_TO_ONE[code]


def _classify(
    ref: str, start: int, end_text: str | None, rest: str, *, three: bool
) -> ProteinChange | None:
    end = int(end_text) if end_text is not None else start
    if end < start or not rest:
        return None
    if rest == "=":
        return ProteinChange(ref, start, end, ref, "synonymous")
    low = rest.lower()
    # A frameshift may name the first new residue: K123fs, K123Rfs*5, Lys123ArgfsTer5.
    fs = re.match(r"^(?:[a-z]{3}|\*)?fs" if three else r"^[a-z*]?fs", low)
    if fs:
        return ProteinChange(ref, start, end, "", "frameshift")
    for keyword, kind in _KEYWORDS:
        if low.startswith(keyword):
            return ProteinChange(ref, start, end, "", kind)
    if end_text is not None:
        return None  # a range must be a deletion, insertion, duplication or frameshift
    if three:
        if rest not in _THREE_TO_ONE and rest != "*":
            return None
        alt = _three(rest)
    else:
        alt = rest.upper()
        if len(alt) != 1 or (alt not in _ONE_LETTER and alt != "X"):
            return None
    if alt in ("*", "X"):  # "X" is the older MAF spelling of a stop codon
        return ProteinChange(ref, start, end, "*", "nonsense")
    if alt == ref:
        return ProteinChange(ref, start, end, alt, "synonymous")
    return ProteinChange(ref, start, end, alt, "missense")


# --------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    """An inclusive amino-acid range with a name (usually a protein domain)."""

    name: str
    start: int
    end: int

    def overlaps(self, start: int, end: int) -> bool:
        return start <= self.end and end >= self.start


@dataclass(frozen=True)
class ResistanceMutation:
    """One curated catalogue entry: a gene, a site (change, codon or region), its effect.

    Exactly one of ``change`` (``"T790M"``), ``codon`` (``"D835"``) and ``region`` is set.
    """

    gene: str
    therapy: str
    effect: str
    change: str | None = None
    codon: str | None = None
    region: Region | None = None
    evidence: str = ""
    citation: str = ""
    pmid: str = ""
    doi: str = ""

    @property
    def level(self) -> Level:
        if self.change is not None:
            return "exact"
        if self.codon is not None:
            return "codon"
        return "region"

    @property
    def site(self) -> str:
        """The site as written in docs: ``T790M``, ``D835*`` or ``B2 box:184-240``."""
        if self.change is not None:
            return self.change
        if self.codon is not None:
            return f"{self.codon}*"
        assert self.region is not None
        return f"{self.region.name}:{self.region.start}-{self.region.end}"

    @property
    def key(self) -> tuple[str, str, str]:
        """Identity within a catalogue: (upper-case gene, level, site)."""
        return (self.gene.upper(), self.level, self.site)

    @property
    def reference(self) -> str:
        """``PMID:<id>`` when known, else ``doi:<doi>``."""
        return f"PMID:{self.pmid}" if self.pmid else f"doi:{self.doi}"


@dataclass(frozen=True)
class CatalogueHit:
    """A catalogue entry matched by a protein change, and the level that matched."""

    entry: ResistanceMutation
    level: Level
    change: str


@dataclass(frozen=True)
class _GeneIndex:
    exact: dict[tuple[int, str, str], list[ResistanceMutation]] = field(default_factory=dict)
    codon: dict[tuple[int, str], list[ResistanceMutation]] = field(default_factory=dict)
    regions: list[ResistanceMutation] = field(default_factory=list)


@dataclass(frozen=True)
class MutationCatalogue:
    """Catalogue entries plus where they came from (recorded in result lineage)."""

    source: str
    version: str
    entries: tuple[ResistanceMutation, ...]

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def genes(self) -> frozenset[str]:
        """Upper-case gene symbols that have at least one entry."""
        return frozenset(self._index)

    @functools.cached_property
    def _index(self) -> dict[str, _GeneIndex]:
        index: dict[str, _GeneIndex] = {}
        for e in self.entries:
            gi = index.setdefault(e.gene.upper(), _GeneIndex())
            if e.change is not None:
                pc = parse_protein_change(e.change)
                assert pc is not None  # validated when the entry was read
                gi.exact.setdefault((pc.start, pc.ref, pc.alt), []).append(e)
            elif e.codon is not None:
                gi.codon.setdefault((int(e.codon[1:]), e.codon[0]), []).append(e)
            else:
                gi.regions.append(e)
        return index

    def match(self, gene: str, protein_change: object) -> list[CatalogueHit]:
        """Catalogue hits for one protein change in one gene, most specific first.

        The gene symbol is compared case-insensitively. See the module docstring for what
        each level matches; a change that cannot be parsed matches nothing.
        """
        gi = self._index.get(str(gene).strip().upper())
        if gi is None:
            return []
        pc = parse_protein_change(protein_change)
        if pc is None or not pc.changes_protein:
            return []
        label = str(pc)
        hits: list[CatalogueHit] = []
        if pc.is_substitution:
            hits += [
                CatalogueHit(e, "exact", label)
                for e in gi.exact.get((pc.start, pc.ref, pc.alt), [])
            ]
        hits += [CatalogueHit(e, "codon", label) for e in gi.codon.get((pc.start, pc.ref), [])]
        hits += [
            CatalogueHit(e, "region", label)
            for e in gi.regions
            if e.region is not None and e.region.overlaps(pc.start, pc.end)
        ]
        return hits

    def annotate(
        self,
        frame: pd.DataFrame,
        *,
        gene_col: str = "gene",
        change_col: str = "protein_change",
    ) -> pd.DataFrame:
        """A copy of ``frame`` with the catalogue's verdict for each row.

        Added columns: ``catalogue_hit`` (bool), ``catalogue_level`` (``"exact"``,
        ``"codon"``, ``"region"`` or ``None``), ``catalogue_therapy``,
        ``catalogue_effect`` and ``catalogue_reference``. A row reports its most specific
        level; when several entries match at that level their values are joined with
        ``"; "``. Only rows of catalogue genes are parsed, and each distinct change of a
        gene once, so millions of rows take seconds.

        Raises
        ------
        KeyError
            ``gene_col`` or ``change_col`` is not a column of ``frame``.
        """
        n = len(frame)
        hit = np.zeros(n, dtype=bool)
        columns = {
            name: np.full(n, None, dtype=object)
            for name in ("level", "therapy", "effect", "reference")
        }
        genes = frame[gene_col].astype("string").str.strip().str.upper()
        in_catalogue = genes.isin(self.genes).to_numpy(dtype=bool, na_value=False)
        rows = np.flatnonzero(in_catalogue)
        if rows.size:
            sub_genes = genes.to_numpy(dtype=object)[rows]
            sub_changes = frame[change_col].to_numpy(dtype=object)[rows]
            by_gene = pd.Series(np.arange(rows.size)).groupby(sub_genes, sort=False).indices
            for gene, members in by_gene.items():
                codes, uniques = pd.factorize(sub_changes[members])
                verdicts = [_verdict(self.match(str(gene), u)) for u in uniques]
                found = np.array([v is not None for v in verdicts] + [False])
                target = rows[members]
                hit[target] = found[codes]  # code -1 (missing change) reads the last False
                for j, name in enumerate(("level", "therapy", "effect", "reference")):
                    values = np.array(
                        [v[j] if v else None for v in verdicts] + [None], dtype=object
                    )
                    columns[name][target] = values[codes]
        # Explicit object Series keep ``None`` for "no hit" (pandas would infer str/NaN).
        added = {
            f"catalogue_{name}": pd.Series(values, index=frame.index, dtype=object)
            for name, values in columns.items()
        }
        return frame.assign(catalogue_hit=hit, **added)


def _verdict(hits: list[CatalogueHit]) -> tuple[str, str, str, str] | None:
    if not hits:
        return None
    best = min(_LEVEL_RANK[h.level] for h in hits)
    top = [h.entry for h in hits if _LEVEL_RANK[h.level] == best]

    def joined(values: Iterable[str]) -> str:
        return "; ".join(dict.fromkeys(values))

    return (
        hits[0].level,  # match() lists the most specific level first
        joined(e.therapy for e in top),
        joined(e.effect for e in top),
        joined(e.reference for e in top),
    )


# --------------------------------------------------------------------------------------
# Reading catalogues
# --------------------------------------------------------------------------------------


class _EntryError(Exception):
    def __init__(self, rule: str, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.column = column


_GENE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_CODON_RE = re.compile(r"^([A-Z])(\d+)\*?$")


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    return "" if value is None else str(value).strip()


def _entry(raw: Mapping[str, Any]) -> ResistanceMutation:
    gene = _text(raw, "gene")
    if not _GENE_RE.match(gene):
        raise _EntryError("gene-symbol", f"gene {gene!r} is not an HGNC-style symbol", "gene")
    change, codon, region = _text(raw, "change"), _text(raw, "codon"), raw.get("region")
    if sum(bool(x) for x in (change, codon, region)) != 1:
        raise _EntryError(
            "one-site", "give exactly one of change (T790M), codon (D835) or region", "change"
        )
    parsed_change: str | None = None
    if change:
        pc = parse_protein_change(change)
        if pc is None or not pc.is_substitution:
            raise _EntryError(
                "protein-change",
                f"change {change!r} is not a one-residue substitution like T790M",
                "change",
            )
        parsed_change = str(pc)
    parsed_codon: str | None = None
    if codon:
        m = _CODON_RE.match(codon)
        if not m or m.group(1) not in _ONE_LETTER:
            raise _EntryError(
                "codon", f"codon {codon!r} is not a residue and position like D835", "codon"
            )
        parsed_codon = f"{m.group(1)}{int(m.group(2))}"
    parsed_region: Region | None = None
    if region:
        parsed_region = _region(region)
    therapy = _text(raw, "therapy")
    if not therapy:
        raise _EntryError("therapy", "every entry names a therapy (drug or drug class)", "therapy")
    effect = _text(raw, "effect").lower()
    if effect not in EFFECTS:
        raise _EntryError("effect", f"effect {effect!r} must be one of {sorted(EFFECTS)}", "effect")
    pmid, doi = _text(raw, "pmid"), _text(raw, "doi")
    if pmid and not pmid.isdigit():
        raise _EntryError("reference", f"pmid {pmid!r} must be digits only", "pmid")
    if doi and not doi.startswith("10."):
        raise _EntryError("reference", f"doi {doi!r} must start with '10.'", "doi")
    if not pmid and not doi:
        raise _EntryError("reference", "every entry cites its evidence by pmid or doi", "pmid")
    return ResistanceMutation(
        gene=gene,
        therapy=therapy,
        effect=effect,
        change=parsed_change,
        codon=parsed_codon,
        region=parsed_region,
        evidence=_text(raw, "evidence"),
        citation=_text(raw, "citation"),
        pmid=pmid,
        doi=doi,
    )


def _region(raw: object) -> Region:
    if not isinstance(raw, Mapping):
        raise _EntryError("region", "region needs name, start and end", "region")
    try:
        start, end = int(raw["start"]), int(raw["end"])
    except (KeyError, TypeError, ValueError):
        raise _EntryError("region", "region start and end must be integers", "region") from None
    if not 1 <= start <= end:
        raise _EntryError("region", f"region {start}-{end} needs 1 <= start <= end", "region")
    return Region(name=str(raw.get("name") or f"{start}-{end}"), start=start, end=end)


def _build(
    path: str, source: str, version: str, located: Iterable[tuple[int | None, Mapping[str, Any]]]
) -> MutationCatalogue:
    entries: list[ResistanceMutation] = []
    seen: dict[tuple[str, str, str], int | None] = {}
    for line, raw in located:
        try:
            entry = _entry(raw)
        except _EntryError as err:
            raise InputError(path, err.rule, err.message, line=line, column=err.column) from None
        if entry.key in seen:
            first = seen[entry.key]
            where = f" (first at line {first})" if first is not None else ""
            raise InputError(
                path,
                "unique-entries",
                f"{entry.gene} {entry.site} appears twice{where}",
                line=line,
            )
        seen[entry.key] = line
        entries.append(entry)
    if not entries:
        raise InputError(path, "not-empty", "the catalogue holds no entries")
    return MutationCatalogue(source=source, version=version, entries=tuple(entries))


def _read_yaml(path: Path, text: str, *, source: str | None = None) -> MutationCatalogue:
    doc, entries = read_yaml_entries(path, text)
    located = list(entries)
    version = str(doc["version"]) if doc.get("version") else file_version(text)
    return _build(str(path), source or str(path), version, located)


_TSV_SITE_COLUMNS = ("change", "codon", "region_name", "region_start", "region_end")


def _read_tsv(path: Path, text: str) -> MutationCatalogue:
    lines = [(n, line) for n, line in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line.strip() and not line.startswith("#")]
    if not lines:
        raise InputError(str(path), "not-empty", "the catalogue holds no entries")
    header_line, header_text = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([header_text], delimiter="\t"))]
    missing = [c for c in ("gene", "therapy", "effect") if c not in header]
    if missing or not any(c in header for c in _TSV_SITE_COLUMNS):
        need = missing or ["change|codon|region_name/region_start/region_end"]
        raise InputError(
            str(path), "tsv-columns", f"missing column(s): {', '.join(need)}", line=header_line
        )
    located: list[tuple[int | None, Mapping[str, Any]]] = []
    for lineno, line in lines[1:]:
        cells = next(csv.reader([line], delimiter="\t"))
        if len(cells) > len(header):
            raise InputError(
                str(path),
                "tsv-fields",
                f"{len(cells)} fields but the header has {len(header)}",
                line=lineno,
            )
        row: dict[str, Any] = {h: (c.strip() or None) for h, c in zip(header, cells, strict=False)}
        if any(row.get(c) for c in ("region_name", "region_start", "region_end")):
            row["region"] = {
                "name": row.get("region_name"),
                "start": row.get("region_start"),
                "end": row.get("region_end"),
            }
        located.append((lineno, row))
    return _build(str(path), str(path), file_version(text), located)


def read_mutation_catalogue(path: str | Path) -> MutationCatalogue:
    """Read a user's catalogue: YAML in the built-in form, or TSV with a header row.

    TSV columns: ``gene``, one site (``change`` | ``codon`` | ``region_name``,
    ``region_start``, ``region_end``), ``therapy``, ``effect``, ``pmid``, ``doi`` and
    optionally ``evidence`` and ``citation``. Lines starting with ``#`` are comments.

    Raises
    ------
    InputError
        Missing file or columns, or a row that breaks a rule (with its line number): no
        or several sites, a change that is not a substitution, an effect other than
        ``resistance``/``sensitivity``, neither a digit-only pmid nor a ``10.`` doi, or a
        duplicate (gene, site).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such mutation catalogue") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        return _read_yaml(path, text)
    return _read_tsv(path, text)


@functools.cache
def builtin_mutations() -> MutationCatalogue:
    """The built-in, versioned catalogue of curated mutations (``schemas/mutations``).

    Every entry cites its evidence by PubMed ID and/or DOI.
    """
    path = schemas_dir() / "mutations" / "resistance_mutations.yaml"
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    return _read_yaml(path, text, source=f"builtin:{doc['catalogue']}")


def merge(*catalogues: MutationCatalogue) -> MutationCatalogue:
    """One catalogue from several; for the same (gene, site) the later catalogue wins.

    ``source`` and ``version`` record every input, joined with ``" + "``.
    """
    if not catalogues:
        raise ValueError("merge needs at least one catalogue")
    by_key: dict[tuple[str, str, str], ResistanceMutation] = {}
    for catalogue in catalogues:
        for entry in catalogue.entries:
            by_key.pop(entry.key, None)  # re-insert so the winner takes the later position
            by_key[entry.key] = entry
    return MutationCatalogue(
        source=" + ".join(c.source for c in catalogues),
        version=" + ".join(c.version for c in catalogues),
        entries=tuple(by_key.values()),
    )


def match(
    gene: str, protein_change: object, *, catalogue: MutationCatalogue | None = None
) -> list[CatalogueHit]:
    """Hits of one protein change in the built-in (or the given) catalogue.

    See :meth:`MutationCatalogue.match`.
    """
    return (catalogue or builtin_mutations()).match(gene, protein_change)


def annotate(
    frame: pd.DataFrame,
    gene_col: str = "gene",
    change_col: str = "protein_change",
    *,
    catalogue: MutationCatalogue | None = None,
) -> pd.DataFrame:
    """Annotate a mutation table with the built-in (or the given) catalogue.

    See :meth:`MutationCatalogue.annotate`.
    """
    return (catalogue or builtin_mutations()).annotate(
        frame, gene_col=gene_col, change_col=change_col
    )
