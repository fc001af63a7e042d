"""ChEBI-keyed metabolite sets: Reactome, GMT and the built-in metabolic programs."""

from pathlib import Path

import pytest

import su2020
from resistomics.errors import InputError
from resistomics.knowledge import (
    builtin_metabolic_programs,
    chebi_id,
    load_metabolite_sets,
    read_metabolic_programs,
    read_metabolite_gmt,
    read_reactome_chebi,
)

PROGRAMS = {
    "GLYCOLYSIS_WARBURG",
    "OXPHOS_TCA",
    "GLUTAMINOLYSIS",
    "FATTY_ACID_OXIDATION",
    "SERINE_ONE_CARBON",
    "GLUTATHIONE_REDOX",
    "TRYPTOPHAN_KYNURENINE",
    "POLYAMINES",
    "SPHINGOLIPID_CERAMIDE",
}


def test_chebi_id_forms() -> None:
    assert chebi_id(16946) == chebi_id("16946") == chebi_id("chebi: 16946") == "CHEBI:16946"
    assert chebi_id("HMDB0000684") is None and chebi_id("") is None and chebi_id(True) is None


def test_builtin_programs_are_complete_and_cited() -> None:
    cat = builtin_metabolic_programs()
    assert cat.source == "builtin:metabolic_resistance_programs" and cat.version == "2026.12.1"
    assert {s.set_id for s in cat.sets} == PROGRAMS
    for s in cat.sets:
        assert len(s.metabolites) >= 5 and len(s.enzymes) >= 10
        assert s.reference and s.doi.startswith("10.") and s.reactome
    trp = cat["TRYPTOPHAN_KYNURENINE"]
    by_name = {m.name: m for m in trp.metabolites}
    assert by_name["L-kynurenine"].chebi == "CHEBI:16946"
    assert by_name["L-tryptophan"].chebi == "CHEBI:16828"
    assert by_name["quinolinic acid"].chebi == "CHEBI:16675"
    assert by_name["L-tryptophan"].direction == "down"
    assert trp.signs()["CHEBI:57912"] == -1 and trp.signs()["CHEBI:16946"] == 1
    assert {"IDO1", "TDO2", "KYNU", "KMO"} <= set(trp.enzymes)


@pytest.mark.skipif(not su2020.REACTOME.exists(), reason="shared Reactome file not present")
def test_builtin_ids_cross_check_with_reactome_and_su2020() -> None:
    cat = builtin_metabolic_programs()
    reactome = read_reactome_chebi(su2020.REACTOME)
    in_reactome = set().union(*(s.members for s in reactome.sets))
    su_ids = {c for _, c, _ in su2020.name_to_chebi()} if su2020.SU2020.exists() else set()
    for program in cat.sets:
        pathway = set().union(*(reactome[r].members for r in program.reactome))
        found = [m for m in program.metabolites if {m.chebi, *m.equivalents} & pathway]
        # most of a program's metabolites are members of its Reactome pathways
        assert len(found) >= 0.7 * len(program.metabolites), program.set_id
        for m in program.metabolites:
            for e in m.equivalents:
                assert e in in_reactome or e in su_ids, (program.set_id, m.name, e)
    # a catalogue name that the Su 2020 authors also annotated has their ChEBI ID as its
    # ID or an equivalent: 35 names, 30 of them on the primary ID
    if su_ids:
        su = {n: c for n, c, _ in su2020.name_to_chebi()}
        pairs = [
            (su[n], m)
            for program in cat.sets
            for m in program.metabolites
            for n in (m.name, *m.synonyms)
            if n in su
        ]
        assert len(pairs) == 35
        assert sum(c == m.chebi for c, m in pairs) == 30
        for c, m in pairs:
            assert c in {m.chebi, *m.equivalents}, (m.name, c, m.chebi)


@pytest.mark.skipif(not su2020.REACTOME.exists(), reason="shared Reactome file not present")
def test_reactome_r78_file() -> None:
    rx = read_reactome_chebi(su2020.REACTOME)
    assert len(rx) == 2243
    trp = rx["R-HSA-71240"]
    assert trp.name == "Tryptophan catabolism" and "CHEBI:16946" in trp.members
    assert "CHEBI:16828" not in trp.members and "CHEBI:57912" in trp.members
    widened = load_metabolite_sets("reactome", reactome=su2020.REACTOME)
    assert "CHEBI:16828" in widened["R-HSA-71240"].members
    assert widened.version == f"{rx.version}+equivalents"


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("16946\tR-HSA-1\thttp://x\tP\tTAS\n", "reactome-fields"),
        ("HMDB1\tR-HSA-1\thttp://x\tP\tTAS\tHomo sapiens\n", "chebi-id"),
        (
            "1\tR-HSA-1\thttp://x\tP\tTAS\tHomo sapiens\n2\tR-HSA-1\thttp://x\tQ\tTAS\tHomo sapiens\n",
            "pathway-name",
        ),
        ("1\tR-MMU-1\thttp://x\tP\tTAS\tMus musculus\n", "not-empty"),
    ],
)
def test_bad_reactome_file(tmp_path: Path, line: str, rule: str) -> None:
    f = tmp_path / "rx.tsv"
    f.write_text(line)
    with pytest.raises(InputError) as err:
        read_reactome_chebi(f)
    assert err.value.rule == rule and str(f) in str(err.value)


def test_gmt_of_chebi_ids(tmp_path: Path) -> None:
    f = tmp_path / "sets.gmt"
    f.write_text("KYN\tkynurenine\tCHEBI:16946\t16675\nTRP\tx\tCHEBI:57912\n")
    sets = read_metabolite_gmt(f)
    assert sets["KYN"].members == ("CHEBI:16675", "CHEBI:16946")
    widened = load_metabolite_sets(str(f))
    assert "CHEBI:16828" in widened["TRP"].members
    f.write_text("KYN\tkynurenine\tCHEBI:16946\tkynurenine\n")
    with pytest.raises(InputError, match="not a ChEBI ID") as err:
        read_metabolite_gmt(f)
    assert err.value.location.line == 1


GOOD = """\
catalogue: mine
version: "1"
entries:
  - name: P1
    citation: Someone 2020
    doi: 10.1/x
    enzymes: [IDO1]
    metabolites:
      - {chebi: CHEBI:16946, name: kynurenine}
"""


@pytest.mark.parametrize(
    ("old", "new", "rule"),
    [
        ("CHEBI:16946", "16946", "chebi-id"),
        ("name: kynurenine", "name: ''", "metabolite-name"),
        ("[IDO1]", "['IDO 1']", "gene-symbol"),
        ("[IDO1]", "[]", "enzymes"),
        ("doi: 10.1/x", "doi: x", "reference"),
        ("name: P1", "name: 'P 1'", "program-name"),
        ("kynurenine}", "kynurenine, direction: sideways}", "direction"),
        (
            "kynurenine}",
            "kynurenine}\n      - {chebi: CHEBI:16946, name: again}",
            "unique-metabolites",
        ),
    ],
)
def test_bad_program_entry_names_file_and_line(
    tmp_path: Path, old: str, new: str, rule: str
) -> None:
    f = tmp_path / "programs.yaml"
    f.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(InputError) as err:
        read_metabolic_programs(f)
    assert err.value.rule == rule
    assert err.value.location.line == 4  # the entry's line
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_user_programs_and_duplicates(tmp_path: Path) -> None:
    f = tmp_path / "programs.yaml"
    f.write_text(GOOD)
    cat = read_metabolic_programs(f)
    assert cat.version == "1" and cat["P1"].members == ("CHEBI:16946",)
    assert load_metabolite_sets(str(f))["P1"].enzymes == ("IDO1",)
    entry = GOOD.split("entries:\n", 1)[1]
    f.write_text(GOOD + entry)
    with pytest.raises(InputError, match="appears twice") as err:
        read_metabolic_programs(f)
    assert err.value.location.line == 10
    with pytest.raises(InputError, match="no such program catalogue"):
        read_metabolic_programs(tmp_path / "none.yaml")
