"""Metabolite sets keyed by ChEBI: Reactome, user GMT files and the built-in programs.

Three sources give a :class:`MetaboliteSetCollection` (sets of ``CHEBI:<n>`` IDs, with
their source and version for the lineage of a result):

* :func:`read_reactome_chebi`: Reactome's ``ChEBI2Reactome`` mapping (ChEBI ID, pathway
  ID, URL, pathway name, evidence code, species; Jassal et al., *Nucleic Acids Res.*
  48:D498, 2020), from a path (nothing is downloaded);
* :func:`read_metabolite_gmt`: a GMT file (:func:`~resistomics.knowledge.read_gmt`) whose
  members are ChEBI IDs (``CHEBI:16946`` or ``16946``);
* :func:`builtin_metabolic_programs`: the versioned catalogue of metabolic resistance
  programs in ``schemas/metabolomics/resistance_programs.yaml``, each with its
  metabolites, enzymes and literature reference, read like the methylation-marker
  catalogue (an entry that breaks a rule is an :class:`~resistomics.errors.InputError`
  with the file and the entry's line).

Reactome keys most small molecules by the major microspecies at pH 7.3 (the zwitterion
``CHEBI:57912`` for L-tryptophan) while metabolomics annotations use the neutral compound
(``CHEBI:16828``); :meth:`MetaboliteSetCollection.with_equivalents` maps one onto the
other through the catalogue's ``equivalents`` so that such a set finds its measured
metabolites.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from resistomics._resources import schemas_dir
from resistomics.errors import InputError
from resistomics.knowledge._genesets import read_gmt
from resistomics.knowledge._yaml_catalogue import file_version, read_yaml_entries

__all__ = [
    "MetaboliteSet",
    "MetaboliteSetCollection",
    "ProgramMetabolite",
    "builtin_metabolic_programs",
    "chebi_id",
    "load_metabolite_sets",
    "read_metabolic_programs",
    "read_metabolite_gmt",
    "read_reactome_chebi",
]

_CHEBI_RE = re.compile(r"^(?:chebi:)?\s*(\d+)$", re.IGNORECASE)
_GENE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]*$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def chebi_id(value: object) -> str | None:
    """``CHEBI:<n>`` for ``16946``, ``"16946"``, ``"CHEBI:16946"`` or ``"chebi:16946"``;
    ``None`` for anything else (an empty cell, an HMDB ID)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"CHEBI:{value}" if value > 0 else None
    m = _CHEBI_RE.match(str(value).strip())
    return f"CHEBI:{int(m.group(1))}" if m else None


@dataclass(frozen=True)
class ProgramMetabolite:
    """A metabolite of a built-in program; ``direction`` ``"down"`` when consumed."""

    chebi: str
    name: str
    equivalents: tuple[str, ...] = ()
    synonyms: tuple[str, ...] = ()
    direction: str = "up"


@dataclass(frozen=True)
class MetaboliteSet:
    """A named set of metabolites (``members``: ChEBI IDs, sorted, unique)."""

    set_id: str
    name: str
    members: tuple[str, ...]
    description: str = ""
    reference: str = ""
    doi: str = ""
    enzymes: tuple[str, ...] = ()
    metabolites: tuple[ProgramMetabolite, ...] = ()
    reactome: tuple[str, ...] = ()

    def signs(self) -> dict[str, int]:
        """Member -> +1, or -1 for a metabolite the program consumes (and its equivalents)."""
        out = dict.fromkeys(self.members, 1)
        for m in self.metabolites:
            if m.direction == "down":
                for i in (m.chebi, *m.equivalents):
                    out[i] = -1
        return out


@dataclass(frozen=True)
class MetaboliteSetCollection:
    """Metabolite sets plus where they came from (recorded in result lineage)."""

    source: str
    version: str
    sets: tuple[MetaboliteSet, ...]
    _by_id: dict[str, MetaboliteSet] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.set_id: s for s in self.sets})

    def __len__(self) -> int:
        return len(self.sets)

    def __getitem__(self, set_id: str) -> MetaboliteSet:
        return self._by_id[set_id]

    def as_mapping(self) -> dict[str, tuple[str, ...]]:
        """Set ID -> member ChEBI IDs."""
        return {s.set_id: s.members for s in self.sets}

    def equivalents(self) -> dict[str, str]:
        """ChEBI ID of each catalogue equivalent -> its metabolite's primary ChEBI ID."""
        out: dict[str, str] = {}
        for s in self.sets:
            for m in s.metabolites:
                for e in m.equivalents:
                    out[e] = m.chebi
        return out

    def name_map(self) -> dict[str, str]:
        """Every catalogue name and synonym -> its ChEBI ID (for the name matcher)."""
        out: dict[str, str] = {}
        for s in self.sets:
            for m in s.metabolites:
                for n in (m.name, *m.synonyms):
                    out.setdefault(n, m.chebi)
        return out

    def with_equivalents(self, equivalents: Mapping[str, str]) -> MetaboliteSetCollection:
        """The sets with each member also listed under its equivalent ID(s).

        ``equivalents`` maps an ID to another of the same metabolite (e.g.
        :meth:`equivalents` of the built-in catalogue); both directions are added, so a
        Reactome set holding ``CHEBI:57912`` also holds ``CHEBI:16828``.
        """
        both: dict[str, set[str]] = {}
        for a, b in equivalents.items():
            both.setdefault(a, set()).add(b)
            both.setdefault(b, set()).add(a)
        sets = tuple(
            replace(
                s,
                members=tuple(
                    sorted(set(s.members).union(*(both.get(m, set()) for m in s.members)))
                ),
            )
            for s in self.sets
        )
        return MetaboliteSetCollection(
            source=self.source, version=f"{self.version}+equivalents", sets=sets
        )


def _open_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such metabolite-set file") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(str(path), "utf-8", "the file is not UTF-8 text") from None


def read_reactome_chebi(
    path: str | Path, *, species: str | None = "Homo sapiens"
) -> MetaboliteSetCollection:
    """Read Reactome's ``ChEBI2Reactome[_All_Levels]`` file (tab-separated, optionally gzip).

    Six columns, no header: ChEBI ID, pathway stable ID, URL, pathway name, evidence code,
    species. Rows of other species are skipped when ``species`` is given; a pathway's
    members are its distinct ChEBI IDs over all evidence codes. The version is the file's
    content digest (the release is in its name, e.g. R78).

    Raises
    ------
    InputError
        Missing file, a line without six fields, a ChEBI column that is not a ChEBI ID,
        or a pathway ID that carries two names.
    """
    path = Path(path)
    text = _open_text(path)
    members: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for lineno, fields in enumerate(csv.reader(io.StringIO(text), delimiter="\t"), start=1):
        if not fields or not "".join(fields).strip():
            continue
        if len(fields) < 6:
            raise InputError(
                str(path),
                "reactome-fields",
                "a ChEBI2Reactome line has six tab-separated fields (ChEBI, pathway, URL, "
                f"name, evidence, species), found {len(fields)}",
                line=lineno,
            )
        chebi, pathway, name, organism = fields[0], fields[1].strip(), fields[3].strip(), fields[5]
        if species is not None and organism.strip() != species:
            continue
        cid = chebi_id(chebi)
        if cid is None:
            raise InputError(
                str(path), "chebi-id", f"{chebi!r} is not a ChEBI ID", line=lineno, column="1"
            )
        if names.setdefault(pathway, name) != name:
            raise InputError(
                str(path),
                "pathway-name",
                f"pathway {pathway} is named {names[pathway]!r} and {name!r}",
                line=lineno,
            )
        members.setdefault(pathway, set()).add(cid)
    if not members:
        raise InputError(str(path), "not-empty", f"no pathways of species {species!r}")
    sets = tuple(
        MetaboliteSet(
            set_id=p,
            name=names[p],
            members=tuple(sorted(members[p])),
            reference=f"https://reactome.org/content/detail/{p}",
        )
        for p in sorted(members)
    )
    return MetaboliteSetCollection(source=str(path), version=file_version(text), sets=sets)


def read_metabolite_gmt(path: str | Path) -> MetaboliteSetCollection:
    """A GMT file of ChEBI-keyed sets (members ``CHEBI:16946`` or ``16946``).

    Raises
    ------
    InputError
        As :func:`~resistomics.knowledge.read_gmt`, and a member that is not a ChEBI ID
        (with the set's line).
    """
    genes = read_gmt(path)
    text = Path(path).read_text(encoding="utf-8")
    lines = {
        line.split("\t", 1)[0].strip(): n
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.startswith("#")
    }
    sets: list[MetaboliteSet] = []
    for s in genes.sets:
        ids: list[str] = []
        for m in s.genes:
            cid = chebi_id(m)
            if cid is None:
                raise InputError(
                    str(path),
                    "chebi-id",
                    f"set {s.name!r}: member {m!r} is not a ChEBI ID (CHEBI:<n> or <n>)",
                    line=lines.get(s.name),
                )
            ids.append(cid)
        sets.append(
            MetaboliteSet(
                set_id=s.name,
                name=s.name,
                members=tuple(sorted(set(ids))),
                description=s.description,
                reference=s.reference,
            )
        )
    return MetaboliteSetCollection(source=genes.source, version=genes.version, sets=tuple(sets))


class _EntryError(Exception):
    def __init__(self, rule: str, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.column = column


def _strings(raw: Mapping[str, Any], key: str, *, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
        raise _EntryError("catalogue-layout", f"{where}{key} is a list of names", key)
    return tuple(str(v).strip() for v in value)


def _chebi(value: Any, *, where: str, key: str) -> str:
    text = str(value).strip() if value is not None else ""
    if not re.fullmatch(r"CHEBI:[1-9]\d*", text):
        raise _EntryError("chebi-id", f"{where}{key} {value!r} is not CHEBI:<n>", key)
    return text


def _metabolite(raw: Any, program: str) -> ProgramMetabolite:
    if not isinstance(raw, Mapping):
        raise _EntryError("catalogue-layout", f"{program}: each metabolite is a mapping")
    name = str(raw.get("name") or "").strip()
    where = f"{program} metabolite {name or '?'}: "
    if not name:
        raise _EntryError("metabolite-name", f"{where}every metabolite has a name", "name")
    chebi = _chebi(raw.get("chebi"), where=where, key="chebi")
    equivalents = tuple(
        _chebi(e, where=where, key="equivalents") for e in _strings(raw, "equivalents", where=where)
    )
    direction = str(raw.get("direction", "up")).strip().lower()
    if direction not in ("up", "down"):
        raise _EntryError("direction", f"{where}direction {direction!r} is up or down", "direction")
    return ProgramMetabolite(
        chebi=chebi,
        name=name,
        equivalents=equivalents,
        synonyms=_strings(raw, "synonyms", where=where),
        direction=direction,
    )


def _program(raw: Mapping[str, Any]) -> MetaboliteSet:
    name = str(raw.get("name") or "").strip()
    if not _NAME_RE.match(name):
        raise _EntryError("program-name", f"program name {name!r} is [A-Za-z0-9_-]+", "name")
    metabolites = raw.get("metabolites")
    if not isinstance(metabolites, list) or not metabolites:
        raise _EntryError("metabolites", f"{name}: lists its metabolites", "metabolites")
    mets = tuple(_metabolite(m, name) for m in metabolites)
    seen: set[str] = set()
    for m in mets:
        if m.chebi in seen:
            raise _EntryError("unique-metabolites", f"{name}: {m.chebi} appears twice", "chebi")
        seen.add(m.chebi)
    enzymes = _strings(raw, "enzymes", where=f"{name}: ")
    if not enzymes:
        raise _EntryError("enzymes", f"{name}: lists its enzymes (gene symbols)", "enzymes")
    for g in enzymes:
        if not _GENE_RE.match(g):
            raise _EntryError(
                "gene-symbol", f"{name}: enzyme {g!r} is not a gene symbol", "enzymes"
            )
    citation = str(raw.get("citation") or "").strip()
    doi = str(raw.get("doi") or "").strip()
    if not citation or not doi.startswith("10."):
        raise _EntryError(
            "reference", f"{name}: cites its evidence (citation and a doi 10.x/...)", "doi"
        )
    reactome = _strings(raw, "reactome", where=f"{name}: ")
    for r in reactome:
        if not re.fullmatch(r"R-HSA-\d+", r):
            raise _EntryError("reactome-id", f"{name}: {r!r} is not R-HSA-<n>", "reactome")
    return MetaboliteSet(
        set_id=name,
        name=name,
        members=tuple(sorted({m.chebi for m in mets})),
        description=" ".join(str(raw.get("description") or "").split()),
        reference=citation,
        doi=doi,
        enzymes=enzymes,
        metabolites=mets,
        reactome=reactome,
    )


def _read_programs(path: Path, text: str, *, source: str | None = None) -> MetaboliteSetCollection:
    doc, located = read_yaml_entries(path, text)
    sets: list[MetaboliteSet] = []
    seen: dict[str, int | None] = {}
    for line, raw in located:
        try:
            program = _program(raw)
        except _EntryError as err:
            raise InputError(
                str(path), err.rule, err.message, line=line, column=err.column
            ) from None
        if program.set_id in seen:
            raise InputError(
                str(path),
                "unique-entries",
                f"program {program.set_id} appears twice (first at line {seen[program.set_id]})",
                line=line,
            )
        seen[program.set_id] = line
        sets.append(program)
    if not sets:
        raise InputError(str(path), "not-empty", "the catalogue holds no programs")
    version = str(doc["version"]) if doc.get("version") else file_version(text)
    return MetaboliteSetCollection(source=source or str(path), version=version, sets=tuple(sets))


def read_metabolic_programs(path: str | Path) -> MetaboliteSetCollection:
    """Read a user's catalogue of metabolic programs (YAML in the built-in form).

    Raises
    ------
    InputError
        Missing file, YAML syntax, or an entry that breaks a rule (with its line):
        program name, metabolites (each a name and a ``CHEBI:<n>``; equivalents
        ``CHEBI:<n>``; direction up/down; no duplicate), enzymes as gene symbols,
        citation and DOI, Reactome IDs ``R-HSA-<n>``, duplicate program.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such program catalogue") from None
    return _read_programs(path, text)


@functools.cache
def builtin_metabolic_programs() -> MetaboliteSetCollection:
    """The built-in, versioned metabolic resistance programs (``schemas/metabolomics``).

    Glycolysis / Warburg, OXPHOS / TCA, glutaminolysis, fatty-acid oxidation, serine /
    one-carbon, glutathione / redox, tryptophan-kynurenine, polyamines, sphingolipids /
    ceramide; each cites its paper (citation and DOI).
    """
    path = schemas_dir() / "metabolomics" / "resistance_programs.yaml"
    text = path.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    return _read_programs(path, text, source=f"builtin:{doc['catalogue']}")


def load_metabolite_sets(
    spec: str, *, reactome: str | Path | None = None
) -> MetaboliteSetCollection:
    """``"builtin"``, ``"reactome"`` (the file at ``reactome``) or a path (GMT or YAML).

    Reactome and GMT sets are widened by the built-in catalogue's ChEBI equivalents so
    that a set keyed by a microspecies finds the measured neutral compound.
    """
    builtin = builtin_metabolic_programs()
    if spec == "builtin":
        return builtin
    if spec == "reactome":
        if reactome is None:
            raise InputError("reactome", "reactome-path", "give the ChEBI2Reactome file's path")
        return read_reactome_chebi(reactome).with_equivalents(builtin.equivalents())
    if spec.endswith((".yaml", ".yml")):
        return read_metabolic_programs(spec)
    return read_metabolite_gmt(spec).with_equivalents(builtin.equivalents())
