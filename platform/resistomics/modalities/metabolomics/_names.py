"""Metabolite names to identifiers (ChEBI, HMDB, KEGG, ...) through a mapping file.

A reported name is looked up under progressively looser keys, and each match records the
rule that made it, so a reviewer can see how loose it was:

1. ``exact``: the name as written;
2. ``normalized``: case, Unicode dashes and primes, spacing around punctuation, and
   Metabolon's ``*`` / ``**`` suffixes (``*``: identified by its spectrum but no
   standard; ``**``: isomer or structure not confirmed; Metabolon / Su et al. 2020
   supplementary notes) ignored;
3. ``no-qualifier``: a trailing parenthetical or bracketed qualifier removed
   (``homovanillate (HVA)``, ``linoleate (18:2n6)``, ``aconitate [cis or trans]``), but
   not a lipid species' composition (a qualifier with ``/``: ``sphingomyelin
   (d18:1/18:1)`` is one species, not the class ``sphingomyelin``);
4. ``acid-anion``: ``-ic acid`` and ``-ate`` taken as the same compound (``lactic acid``
   / ``lactate``: the acid and its conjugate base, which a metabolomics assay does not
   tell apart at physiological pH);
5. ``stereo``: a leading ``L-`` removed on both sides (Metabolon writes ``tryptophan``
   for L-tryptophan; ``D-`` forms are never merged).

Several maps can be given in priority order (a study's own mapping before the built-in
catalogue's names): a name is matched by the first map that matches it under any rule.
A key that two rows of one map claim with different identifiers is ambiguous: the name is
reported unmatched with that reason rather than assigned to one of them. Every name that
matches nothing is in :attr:`NameMatch.unmatched`; nothing is dropped in silence.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from resistomics.errors import InputError

__all__ = ["NameMap", "NameMatch", "match_names", "name_keys", "read_name_map"]

#: Identifier columns a mapping file may hold (case-insensitive header names).
IDENTIFIER_COLUMNS = ("chebi", "hmdb", "kegg", "pubchem", "inchikey", "lipidmaps")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2212"), "-")
_PRIMES = dict.fromkeys(map(ord, "\u2032\u2019\u00b4`"), "'")
_QUALIFIER = re.compile(r"\s*[\(\[][^\(\)\[\]/]*[\)\]]\s*$")
_STAR = re.compile(r"\s*\*+\s*$")


def _normalized(name: str) -> str:
    s = unicodedata.normalize("NFKC", name).translate(_DASHES).translate(_PRIMES)
    s = _STAR.sub("", s.strip()).lower()
    s = re.sub(r"\s*([,;:/\-\(\)\[\]])\s*", r"\1", s)
    return re.sub(r"\s+", " ", s).strip()


def _no_qualifier(key: str) -> str:
    prev = None
    while prev != key:
        prev, key = key, _QUALIFIER.sub("", key).strip()
    return key


def _anion(key: str) -> str:
    return re.sub(r"ic acid\b", "ate", key)


def _stereo(key: str) -> str:
    return re.sub(r"^l-", "", key)


_RULES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("exact", lambda s: s.strip()),
    ("normalized", _normalized),
    ("no-qualifier", lambda s: _no_qualifier(_normalized(s))),
    ("acid-anion", lambda s: _anion(_no_qualifier(_normalized(s)))),
    ("stereo", lambda s: _stereo(_anion(_no_qualifier(_normalized(s))))),
)


def name_keys(name: str) -> list[tuple[str, str]]:
    """``(rule, key)`` for each matching rule, strictest first."""
    return [(rule, f(name)) for rule, f in _RULES]


@dataclass(frozen=True)
class NameMap:
    """Names (and synonyms) -> identifiers, from a mapping file or the catalogue."""

    source: str
    identifiers: tuple[str, ...]  # identifier kinds, e.g. ("chebi", "hmdb")
    rows: tuple[tuple[str, Mapping[str, str]], ...]  # (name, {kind: id})

    @classmethod
    def from_mapping(cls, source: str, mapping: Mapping[str, str], *, kind: str) -> NameMap:
        """A map of one identifier kind, e.g. the catalogue's :meth:`name_map`."""
        return cls(source, (kind,), tuple((n, {kind: i}) for n, i in mapping.items()))


def _open_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such name-mapping file") from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(str(path), "utf-8", "the mapping file is not UTF-8 text") from None


def read_name_map(path: str | Path) -> NameMap:
    """Read a tab-separated name -> identifier mapping.

    Header: ``name``, one or more identifier columns (``chebi``, ``hmdb``, ``kegg``,
    ``pubchem``, ``inchikey``, ``lipidmaps``; any case) and optionally ``synonyms``
    (``|``-separated further names). Lines starting with ``#`` are comments; an empty
    identifier cell means not known.

    Raises
    ------
    InputError
        Missing file, no ``name`` or no identifier column, a line with another number
        of fields than the header, an empty name, a row without any identifier.
    """
    path = Path(path)
    lines = [
        (n, line)
        for n, line in enumerate(_open_text(path).splitlines(), start=1)
        if line.strip() and not line.startswith("#")
    ]
    if not lines:
        raise InputError(str(path), "not-empty", "the mapping file holds no rows")
    header_line, header = lines[0][0], next(csv.reader([lines[0][1]], delimiter="\t"))
    columns = [h.strip().lower() for h in header]
    if "name" not in columns:
        raise InputError(
            str(path), "name-column", "the header has no 'name' column", line=header_line
        )
    kinds = tuple(c for c in columns if c in IDENTIFIER_COLUMNS)
    if not kinds:
        raise InputError(
            str(path),
            "identifier-column",
            f"the header names no identifier column (one of {', '.join(IDENTIFIER_COLUMNS)})",
            line=header_line,
        )
    rows: list[tuple[str, Mapping[str, str]]] = []
    for n, line in lines[1:]:
        fields = next(csv.reader(io.StringIO(line), delimiter="\t"))
        if len(fields) != len(columns):
            raise InputError(
                str(path),
                "field-count",
                f"{len(fields)} fields, the header has {len(columns)}",
                line=n,
            )
        cell = dict(zip(columns, (f.strip() for f in fields), strict=True))
        if not cell["name"]:
            raise InputError(str(path), "name", "empty name", line=n, column="name")
        ids = {k: cell[k] for k in kinds if cell[k]}
        if not ids:
            raise InputError(str(path), "identifier", f"{cell['name']!r} has no identifier", line=n)
        for name in (cell["name"], *(s for s in cell.get("synonyms", "").split("|") if s.strip())):
            rows.append((name.strip(), ids))
    return NameMap(str(path), kinds, tuple(rows))


@dataclass(frozen=True)
class NameMatch:
    """Matched names (``name``, ``rule``, ``matched_name``, ``source``, one column per
    identifier kind) and the unmatched ones with their reason (``name``, ``reason``)."""

    matches: pd.DataFrame
    unmatched: pd.DataFrame

    def identifiers(self, kind: str = "chebi") -> dict[str, str]:
        """Name -> identifier of ``kind`` for the names matched to one."""
        m = self.matches.dropna(subset=[kind])
        return dict(zip(m["name"], m[kind], strict=True))

    def report(self) -> str:
        """One line: matched count by rule, unmatched count and the first few."""
        by_rule = self.matches["rule"].value_counts().to_dict() if len(self.matches) else {}
        rules = ", ".join(f"{v} {k}" for k, v in by_rule.items())
        head = ", ".join(repr(x) for x in self.unmatched["name"].head(5))
        tail = f" (e.g. {head})" if len(self.unmatched) else ""
        return f"{len(self.matches)} matched ({rules or 'none'}); {len(self.unmatched)} unmatched{tail}"


def _index(mapping: NameMap) -> list[dict[str, tuple[str, Mapping[str, str]] | None]]:
    index: list[dict[str, tuple[str, Mapping[str, str]] | None]] = [{} for _ in _RULES]
    for map_name, ids in mapping.rows:
        for level, (_, key) in enumerate(name_keys(map_name)):
            if key in index[level]:
                prior = index[level][key]
                if prior is not None and dict(prior[1]) != dict(ids):
                    index[level][key] = None  # ambiguous at this level
            else:
                index[level][key] = (map_name, ids)
    return index


def match_names(names: Iterable[str], *mappings: NameMap) -> NameMatch:
    """Match metabolite names against one or more maps (rules in the module docstring).

    Within a map a name is matched by the strictest rule under which its key is in the
    map; a key with two different identifier sets is ambiguous and, unless a later map
    matches the name, it is reported unmatched with that reason. Maps are tried in the
    order given; ``matches`` records the ``source`` map of each match.
    """
    if not mappings:
        raise ValueError("match_names needs at least one NameMap")
    indexes = [_index(m) for m in mappings]
    kinds = tuple(dict.fromkeys(k for m in mappings for k in m.identifiers))
    matched: list[dict[str, object]] = []
    unmatched: list[dict[str, str]] = []
    for name in dict.fromkeys(names):
        row: dict[str, object] | None = None
        reason = "no mapping row under any rule"
        keys = name_keys(name)
        for mapping, index in zip(mappings, indexes, strict=True):
            for level, (rule, key) in enumerate(keys):
                if key not in index[level]:
                    continue
                hit = index[level][key]
                if hit is None:
                    reason = f"ambiguous in {mapping.source} under rule {rule!r}"
                else:
                    row = {
                        "name": name,
                        "rule": rule,
                        "matched_name": hit[0],
                        "source": mapping.source,
                        **dict(hit[1]),
                    }
                break
            if row is not None:
                break
        if row is None:
            unmatched.append({"name": name, "reason": reason})
        else:
            matched.append(row)
    cols = ["name", "rule", "matched_name", "source", *kinds]
    return NameMatch(
        matches=pd.DataFrame(matched, columns=cols),
        unmatched=pd.DataFrame(unmatched, columns=["name", "reason"]),
    )
