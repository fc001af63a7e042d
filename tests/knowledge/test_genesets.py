"""Gene sets: the GMT reader and the built-in, versioned resistance-program catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from resistomics.errors import InputError
from resistomics.knowledge import builtin_programs, load_gene_sets, read_gmt
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
