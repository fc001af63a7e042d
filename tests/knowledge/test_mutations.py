"""Treatment-response mutations: the built-in catalogue, user catalogues and the matcher."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.errors import InputError
from resistomics.knowledge import (
    MutationCatalogue,
    annotate,
    builtin_mutations,
    match,
    merge,
    parse_protein_change,
    read_mutation_catalogue,
)

# ------------------------------------------------------------------------------------
# The built-in catalogue
# ------------------------------------------------------------------------------------


def test_builtin_catalogue_is_versioned_and_large_enough() -> None:
    cat = builtin_mutations()
    assert cat.source == "builtin:resistance_mutations"
    assert cat.version == "2026.11.2"
    assert len(cat) >= 40


def test_every_entry_is_complete_and_referenced() -> None:
    for e in builtin_mutations().entries:
        assert e.gene and re.fullmatch(r"[A-Z0-9]+", e.gene), e
        assert e.therapy, e
        assert e.effect in {"resistance", "sensitivity"}, e
        assert (e.pmid and e.pmid.isdigit()) or e.doi.startswith("10."), e
        assert sum(x is not None for x in (e.change, e.codon, e.region)) == 1, e


def test_no_duplicate_sites() -> None:
    keys = [e.key for e in builtin_mutations().entries]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("gene", "site"),
    [
        ("EGFR", "T790M"),
        ("EGFR", "C797S"),
        ("ABL1", "T315I"),
        ("ALK", "G1202R"),
        ("ESR1", "Y537S"),
        ("ESR1", "D538G"),
        ("AR", "F877L"),
        ("BTK", "C481S"),
        ("KRAS", "G12C"),
        ("KRAS", "Y96D"),
        ("FLT3", "D835*"),
        ("SMO", "D473H"),
    ],
)
def test_issue_entries_are_present(gene: str, site: str) -> None:
    sites = {(e.gene, e.site) for e in builtin_mutations().entries}
    assert (gene, site) in sites


def test_pml_and_rara_are_region_entries() -> None:
    regions = {e.gene: e for e in builtin_mutations().entries if e.region is not None}
    assert regions["PML"].therapy == "arsenic trioxide"
    assert "retinoic acid" in regions["RARA"].therapy
    assert regions["PML"].region is not None and regions["PML"].region.start <= 216


# ------------------------------------------------------------------------------------
# Parsing protein changes
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ref", "start", "end", "alt", "kind"),
    [
        ("p.T790M", "T", 790, 790, "M", "missense"),
        ("T790M", "T", 790, 790, "M", "missense"),
        ("p.Thr790Met", "T", 790, 790, "M", "missense"),
        ("p.(Thr790Met)", "T", 790, 790, "M", "missense"),
        ("p.E1021*", "E", 1021, 1021, "*", "nonsense"),
        ("p.Glu1021Ter", "E", 1021, 1021, "*", "nonsense"),
        ("E1021X", "E", 1021, 1021, "*", "nonsense"),
        ("p.T790=", "T", 790, 790, "T", "synonymous"),
        ("p.E746_A750del", "E", 746, 750, "", "deletion"),
        ("p.Glu746_Ala750del", "E", 746, 750, "", "deletion"),
        ("p.E746_S752delinsV", "E", 746, 752, "", "delins"),
        ("p.A767_V769dup", "A", 767, 769, "", "duplication"),
        ("p.K123fs", "K", 123, 123, "", "frameshift"),
        ("p.K123Rfs*5", "K", 123, 123, "", "frameshift"),
        ("p.Lys123ArgfsTer5", "K", 123, 123, "", "frameshift"),
    ],
)
def test_parse_protein_change(
    text: str, ref: str, start: int, end: int, alt: str, kind: str
) -> None:
    pc = parse_protein_change(text)
    assert pc is not None
    assert (pc.ref, pc.start, pc.end, pc.alt, pc.kind) == (ref, start, end, alt, kind)


@pytest.mark.parametrize("text", ["", "p.?", "T790", "foo", "p.T790MM", "p.A750_E746del", None])
def test_unparseable_changes(text: str | None) -> None:
    assert parse_protein_change(text) is None


# ------------------------------------------------------------------------------------
# Matching
# ------------------------------------------------------------------------------------


def _levels(gene: str, change: str) -> set[tuple[str, str]]:
    return {(h.level, h.entry.site) for h in match(gene, change)}


@pytest.mark.parametrize("change", ["p.T790M", "T790M", "p.Thr790Met", "p.(Thr790Met)"])
def test_exact_match_in_every_notation(change: str) -> None:
    hits = match("EGFR", change)
    assert [(h.level, h.entry.change) for h in hits] == [("exact", "T790M")]
    assert hits[0].entry.effect == "resistance"


def test_gene_is_case_insensitive() -> None:
    assert _levels("egfr", "C797S") == {("exact", "C797S")}


@pytest.mark.parametrize("change", ["p.D835Y", "D835H", "p.Asp835Val", "p.D835del", "p.D835fs"])
def test_codon_match(change: str) -> None:
    assert _levels("FLT3", change) == {("codon", "D835*")}


def test_region_match() -> None:
    pml = match("PML", "p.A216V")
    assert [h.level for h in pml] == ["region"]
    assert pml[0].entry.therapy == "arsenic trioxide"
    rara = match("RARA", "p.R294W")
    assert [h.level for h in rara] == ["region"]
    assert "retinoic acid" in rara[0].entry.therapy
    assert match("RARA", "p.Arg294Trp")[0].entry is rara[0].entry


def test_in_frame_deletion_hits_overlapping_region() -> None:
    hits = match("EGFR", "p.E746_A750del")
    assert [(h.level, h.entry.effect) for h in hits] == [("region", "sensitivity")]
    # a deletion that ends inside the region overlaps it too
    assert _levels("EGFR", "p.L740_E746del") == {
        ("region", "exon 19 deletion hotspot (E746-A750):746-750")
    }


def test_nonsense_in_a_region_hits_the_region() -> None:
    assert [h.level for h in match("RARA", "p.R294*")] == ["region"]


@pytest.mark.parametrize(
    ("gene", "change"),
    [
        # Exact entries match only exact changes: T790A is at the T790M codon but is not
        # T790M, and the catalogue holds no codon-level EGFR T790 entry.
        ("EGFR", "p.T790A"),
        ("EGFR", "p.T790="),  # synonymous
        ("EGFR", "p.T790fs"),  # a frameshift at an exact-entry codon is not that change
        ("FLT3", "p.E835K"),  # wrong reference residue: not the D835 codon of this transcript
        ("FLT3", "p.D836Y"),
        ("PML", "p.A300V"),  # outside the B2 box
        ("KRAS", "p.G12D"),
        ("TP53", "p.R175H"),  # gene not in the catalogue
        ("EGFR", "not a change"),
    ],
)
def test_non_matching(gene: str, change: str) -> None:
    assert match(gene, change) == []


# ------------------------------------------------------------------------------------
# User catalogues
# ------------------------------------------------------------------------------------

HEADER = "gene\tchange\tcodon\tregion_name\tregion_start\tregion_end\ttherapy\teffect\tpmid\tdoi\n"


def _tsv(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "mine.tsv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def test_user_tsv_catalogue(tmp_path: Path) -> None:
    path = _tsv(
        tmp_path,
        "# my lab's findings",
        "MTOR\tF2108L\t\t\t\t\trapalogs\tresistance\t12345678\t",
        "KIT\t\tD816\t\t\t\timatinib\tresistance\t\t10.1000/example",
        "ERBB2\t\t\tkinase domain\t720\t987\ttrastuzumab\tresistance\t1\t",
    )
    cat = read_mutation_catalogue(path)
    assert len(cat) == 3 and cat.version.startswith("sha256:")
    assert [h.level for h in cat.match("mtor", "p.Phe2108Leu")] == ["exact"]
    assert [h.level for h in cat.match("KIT", "D816V")] == ["codon"]
    assert [h.level for h in cat.match("ERBB2", "L755S")] == ["region"]


def test_merge_later_catalogue_wins(tmp_path: Path) -> None:
    path = _tsv(
        tmp_path,
        "EGFR\tT790M\t\t\t\t\tosimertinib\tsensitivity\t25923549\t",
        "MTOR\tF2108L\t\t\t\t\trapalogs\tresistance\t12345678\t",
    )
    builtin = builtin_mutations()
    merged = merge(builtin, read_mutation_catalogue(path))
    assert len(merged) == len(builtin) + 1
    assert [h.entry.therapy for h in merged.match("EGFR", "T790M")] == ["osimertinib"]
    assert builtin.source in merged.source and builtin.version in merged.version


@pytest.mark.parametrize(
    ("bad_row", "rule"),
    [
        ("EGFR\tT790M\t\t\t\t\tosimertinib\tresistant\t1\t", "effect"),
        ("EGFR\tT790M\t\t\t\t\tosimertinib\tresistance\t\t", "reference"),
        ("EGFR\tT790M\t\t\t\t\tosimertinib\tresistance\tPMC123\t", "reference"),
        ("EGFR\tT790M\t\t\t\t\tosimertinib\tresistance\t\tdoi.org/x", "reference"),
        ("EGFR\tT790M\tT790\t\t\t\tosimertinib\tresistance\t1\t", "one-site"),
        ("EGFR\t\t\t\t\t\tosimertinib\tresistance\t1\t", "one-site"),
        ("EGFR\tT790\t\t\t\t\tosimertinib\tresistance\t1\t", "protein-change"),
        ("EGFR\t\t\tloop\t800\t700\tosimertinib\tresistance\t1\t", "region"),
        ("EGFR\tT790M\t\t\t\t\t\tresistance\t1\t", "therapy"),
        ("KIT\tD816V\t\t\t\t\timatinib\tresistance\t1\t", "unique-entries"),
    ],
)
def test_user_tsv_bad_row_names_its_line(tmp_path: Path, bad_row: str, rule: str) -> None:
    path = _tsv(tmp_path, "KIT\tD816V\t\t\t\t\timatinib\tresistance\t1\t", bad_row)
    with pytest.raises(InputError) as info:
        read_mutation_catalogue(path)
    assert info.value.rule == rule
    assert info.value.location.line == 3
    assert str(path) in str(info.value) and "line 3" in str(info.value)


def test_user_tsv_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "mine.tsv"
    path.write_text("gene\tchange\teffect\nEGFR\tT790M\tresistance\n", encoding="utf-8")
    with pytest.raises(InputError, match="therapy") as info:
        read_mutation_catalogue(path)
    assert info.value.rule == "tsv-columns" and info.value.location.line == 1


def test_user_yaml_catalogue_bad_entry_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "catalogue: mine\n"
        "version: '1'\n"
        "entries:\n"
        "  - {gene: KIT, codon: D816, therapy: imatinib, effect: resistance, pmid: '1'}\n"
        "  - gene: EGFR\n"
        "    change: T790M\n"
        "    therapy: osimertinib\n"
        "    effect: maybe\n"
        "    pmid: '1'\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as info:
        read_mutation_catalogue(path)
    assert info.value.rule == "effect" and info.value.location.line == 5


def test_missing_user_catalogue(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such"):
        read_mutation_catalogue(tmp_path / "absent.tsv")


# ------------------------------------------------------------------------------------
# Annotating mutation tables
# ------------------------------------------------------------------------------------


def test_annotate_small_frame() -> None:
    frame = pd.DataFrame(
        {
            "gene": ["EGFR", "flt3", "PML", "TP53", "EGFR", "KRAS", None],
            "protein_change": ["p.T790M", "p.D835Y", "p.L218P", "p.R175H", None, "G12C", "x"],
        }
    )
    out = annotate(frame)
    assert list(frame.columns) == ["gene", "protein_change"]  # input untouched
    assert out["catalogue_hit"].tolist() == [True, True, True, False, False, True, False]
    assert out["catalogue_level"].tolist() == [
        "exact",
        "codon",
        "region",
        None,
        None,
        "exact",
        None,
    ]
    assert out.loc[0, "catalogue_reference"] == "PMID:15728811"
    assert out.loc[5, "catalogue_effect"] == "sensitivity"
    assert out.loc[2, "catalogue_therapy"] == "arsenic trioxide"


def test_annotate_custom_columns_and_catalogue(tmp_path: Path) -> None:
    path = _tsv(tmp_path, "MTOR\tF2108L\t\t\t\t\trapalogs\tresistance\t12345678\t")
    frame = pd.DataFrame({"symbol": ["MTOR", "EGFR"], "hgvsp": ["F2108L", "T790M"]})
    cat: MutationCatalogue = read_mutation_catalogue(path)
    out = annotate(frame, "symbol", "hgvsp", catalogue=cat)
    assert out["catalogue_hit"].tolist() == [True, False]


def test_annotate_a_million_rows_recovers_planted_hits() -> None:
    rng = np.random.default_rng(7)
    n = 1_000_000
    genes = np.array(["EGFR", "FLT3", "PML", "RARA", "KRAS", "TP53", "TTN", "GAPDH"])
    # Background changes hit nothing: no catalogue site sits at residues 1, 2 or 1000.
    background = np.array(["p.M1I", "p.P2L", "p.A1000V", "p.Met1Ile", None], dtype=object)
    frame = pd.DataFrame(
        {
            "gene": genes[rng.integers(0, len(genes), n)],
            "protein_change": background[rng.integers(0, len(background), n)],
        }
    )
    planted = {
        "exact": ("EGFR", "p.Thr790Met"),
        "codon": ("FLT3", "p.D835H"),
        "region": ("RARA", "p.R294W"),
    }
    rows = rng.choice(n, size=3 * 500, replace=False).reshape(3, -1)
    for (gene, change), where in zip(planted.values(), rows, strict=True):
        frame.loc[where, "gene"] = gene
        frame.loc[where, "protein_change"] = change

    out = annotate(frame)

    assert out["catalogue_hit"].sum() == rows.size
    for level, where in zip(planted, rows, strict=True):
        assert (out.loc[where, "catalogue_level"] == level).all()
        assert out.loc[where, "catalogue_hit"].all()
    assert out.loc[rows[0], "catalogue_reference"].eq("PMID:15728811").all()
    assert out.loc[rows[2], "catalogue_therapy"].eq("all-trans retinoic acid (ATRA)").all()
