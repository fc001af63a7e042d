"""Gene sets: the GMT reader and the built-in, versioned resistance-program catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from resistomics.errors import InputError
from resistomics.knowledge import (
    builtin_cell_type_markers,
    builtin_programs,
    load_cell_type_markers,
    load_gene_sets,
    read_gmt,
)
from shared_data import GENESETS


def test_hallmark_gmt() -> None:
    sets = read_gmt(GENESETS)
    assert len(sets) == 50
    names = {s.name for s in sets.sets}
    assert {
        "HALLMARK_ESTROGEN_RESPONSE_EARLY",
        "HALLMARK_EPITHELIAL_MESENCHYMAL_TRANSITION",
    } <= names
    early = next(s for s in sets.sets if s.name == "HALLMARK_ESTROGEN_RESPONSE_EARLY")
    assert {"GREB1", "PGR", "TFF1"} <= set(early.genes)
    assert sets.version.startswith("sha256:")


def test_builtin_catalogue_is_versioned_and_referenced() -> None:
    cat = builtin_programs()
    assert cat.version and cat.source == "builtin:resistance_programs"
    names = {s.name for s in cat.sets}
    for required in (
        "DRUG_EFFLUX_ABC",
        "EMT_MESENCHYMAL",
        "DRUG_TOLERANT_PERSISTER",
        "DNA_REPAIR_HR",
        "NRF2_OXIDATIVE_STRESS",
        "STEMNESS_ES_CORE",
        "ANTIGEN_PRESENTATION",
    ):
        assert required in names
    for s in cat.sets:
        assert s.reference and s.doi.startswith("10."), s.name
        assert len(s.genes) >= 8 and len(set(s.genes)) == len(s.genes), s.name
        assert s.direction in ("up", "down")
    assert next(s for s in cat.sets if s.name == "ANTIGEN_PRESENTATION").direction == "down"
    assert load_gene_sets("builtin").version == cat.version


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "not-empty"),
        ("SET_A\tdesc\n", "gmt-fields"),
        ("A\td\tG1\nA\td\tG2\n", "unique-set-names"),
    ],
)
def test_bad_gmt(tmp_path: Path, text: str, rule: str) -> None:
    p = tmp_path / "x.gmt"
    p.write_text(text)
    with pytest.raises(InputError) as info:
        read_gmt(p)
    assert info.value.rule == rule and str(p) in str(info.value)


def test_builtin_cell_type_markers_are_referenced_and_disjoint() -> None:
    cat = builtin_cell_type_markers()
    assert cat.version and cat.source == "builtin:cell_type_markers"
    names = [s.name for s in cat.sets]
    for required in (
        "epithelial_tumour",
        "fibroblast",
        "macrophage",
        "T_cell",
        "B_cell",
        "plasma_cell",
        "NK_cell",
        "endothelial",
        "dendritic_cell",
        "mast_cell",
        "smooth_muscle_pericyte",
    ):
        assert required in names
    seen: set[str] = set()
    for s in cat.sets:
        assert s.reference and s.doi.startswith("10."), s.name
        assert len(s.genes) >= 8 and not seen & set(s.genes), s.name  # no gene in two types
        seen |= set(s.genes)
    epithelial = next(s for s in cat.sets if s.name == "epithelial_tumour")
    assert {"EPCAM", "KRT8", "KRT18", "KRT19", "CDH1"} <= set(epithelial.genes)
    assert {"COL1A1", "DCN", "LUM"} <= set(cat.as_mapping()["fibroblast"])
    assert {"CD68", "CD163", "C1QA"} <= set(cat.as_mapping()["macrophage"])
    assert load_cell_type_markers("builtin").version == cat.version


def test_cell_type_markers_from_gmt_or_refused(tmp_path: Path) -> None:
    p = tmp_path / "markers.gmt"
    p.write_text("tumour\tmine\tEPCAM\tKRT8\tKRT18\nstroma\tmine\tCOL1A1\tDCN\tLUM\n")
    assert load_cell_type_markers(str(p)).as_mapping()["stroma"] == ["COL1A1", "DCN", "LUM"]
    with pytest.raises(InputError, match="file-exists"):
        load_cell_type_markers(str(tmp_path / "absent.gmt"))
    p.write_text("# only a comment\n")
    with pytest.raises(InputError, match="not-empty"):
        load_cell_type_markers(str(p))
