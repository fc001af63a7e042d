"""Gene sets: GMT files and the built-in, versioned catalogues of resistance programs and
of cell-type markers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from resistomics._resources import schemas_dir
from resistomics.errors import InputError

__all__ = [
    "GeneSet",
    "GeneSetCollection",
    "builtin_cell_type_markers",
    "builtin_programs",
    "load_cell_type_markers",
    "load_gene_sets",
    "read_gmt",
]


@dataclass(frozen=True)
class GeneSet:
    """A named gene program.

    ``direction`` is ``"up"`` when a high score means the program is active and
    ``"down"`` when resistance shows as its loss.
    """

    name: str
    genes: tuple[str, ...]
    description: str = ""
    reference: str = ""
    doi: str = ""
    direction: str = "up"


@dataclass(frozen=True)
class GeneSetCollection:
    """Gene sets plus where they came from (recorded in result lineage)."""

    source: str
    version: str
    sets: tuple[GeneSet, ...]

    def as_mapping(self) -> dict[str, list[str]]:
        return {s.name: list(s.genes) for s in self.sets}

    def __len__(self) -> int:
        return len(self.sets)


def read_gmt(path: str | Path) -> GeneSetCollection:
    """Read a GMT file (name, description, genes... per tab-separated line).

    Raises
    ------
    InputError
        Empty file, a line with fewer than three fields, or a duplicate set name.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(str(path), "file-exists", "no such gene-set file") from None
    sets: list[GeneSet] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            raise InputError(
                str(path),
                "gmt-fields",
                "a GMT line needs name, description and genes (tab-separated)",
                line=lineno,
            )
        name, description = fields[0].strip(), fields[1].strip()
        if name in seen:
            raise InputError(
                str(path), "unique-set-names", f"gene set {name!r} appears twice", line=lineno
            )
        seen.add(name)
        genes = tuple(dict.fromkeys(g.strip() for g in fields[2:] if g.strip()))
        sets.append(
            GeneSet(
                name=name,
                genes=genes,
                description=description,
                reference=description if description.startswith("http") else "",
            )
        )
    if not sets:
        raise InputError(str(path), "not-empty", "the GMT file holds no gene sets")
    return GeneSetCollection(source=str(path), version=_file_version(path), sets=tuple(sets))


def _file_version(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def builtin_programs() -> GeneSetCollection:
    """The built-in catalogue of curated resistance programs (``schemas/genesets``).

    Every program carries its literature reference (citation and DOI).
    """
    return _builtin_catalogue("resistance_programs.yaml", "programs")


def builtin_cell_type_markers() -> GeneSetCollection:
    """The built-in catalogue of cell-type marker genes
    (``schemas/genesets/cell_type_markers.yaml``).

    One set per cell type (epithelial/tumour, fibroblast, macrophage, T, B, plasma, NK,
    endothelial, dendritic, mast, smooth muscle/pericyte), canonical markers as listed by
    PanglaoDB (Franzén et al. 2019, Database baz046), CellMarker 2.0 (Hu et al. 2023,
    Nucleic Acids Res 51:D870) and the cited atlases; each type carries its reference
    and no gene is in two types. Scored per cell by
    :func:`resistomics.signatures.marker_labels`.
    """
    return _builtin_catalogue("cell_type_markers.yaml", "cell_types")


def _builtin_catalogue(file: str, key: str) -> GeneSetCollection:
    path = schemas_dir() / "genesets" / file
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    sets = tuple(
        GeneSet(
            name=p["name"],
            genes=tuple(p["genes"]),
            description=p.get("description", ""),
            reference=p["reference"]["citation"],
            doi=p["reference"].get("doi", ""),
            direction=p.get("direction", "up"),
        )
        for p in doc[key]
    )
    return GeneSetCollection(
        source=f"builtin:{doc['catalogue']}", version=str(doc["version"]), sets=sets
    )


def load_gene_sets(spec: str) -> GeneSetCollection:
    """``"builtin"`` for the catalogue, else a path to a GMT file."""
    if spec == "builtin":
        return builtin_programs()
    return read_gmt(spec)


def load_cell_type_markers(spec: str) -> GeneSetCollection:
    """``"builtin"`` for :func:`builtin_cell_type_markers`, else a GMT file of one marker
    set per cell type (the set name is the label).

    Raises
    ------
    InputError
        As :func:`read_gmt` (no such file, a malformed line, a repeated name, no sets).
    """
    if spec == "builtin":
        return builtin_cell_type_markers()
    return read_gmt(spec)
