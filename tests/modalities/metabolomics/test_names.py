"""Name -> identifier matcher: rules, ambiguity, bad mapping files, Su 2020 names."""

from pathlib import Path

import pytest

import su2020
from resistomics.errors import InputError
from resistomics.knowledge import builtin_metabolic_programs
from resistomics.modalities.metabolomics._names import (
    NameMap,
    match_names,
    read_name_map,
)

MAP = NameMap(
    "test-map",
    ("chebi", "hmdb"),
    (
        ("L-kynurenine", {"chebi": "CHEBI:16946", "hmdb": "HMDB0000684"}),
        ("L-tryptophan", {"chebi": "CHEBI:16828"}),
        ("lactic acid", {"chebi": "CHEBI:422"}),
        ("D-lactate", {"chebi": "CHEBI:16004"}),
        ("homovanillate", {"chebi": "CHEBI:545959"}),
        ("sphingomyelin", {"chebi": "CHEBI:17636"}),
        ("glucose", {"chebi": "CHEBI:4167"}),
        ("Glucose", {"chebi": "CHEBI:17634"}),  # a conflicting second row
    ),
)


def test_each_rule_matches_and_records_itself() -> None:
    names = [
        "L-kynurenine",  # exact
        "L\u2013KYNURENINE**",  # en dash, case, Metabolon's ** suffix
        "homovanillate (HVA)",  # qualifier
        "lactate",  # -ic acid / -ate
        "tryptophan",  # leading L- dropped
    ]
    res = match_names(names, MAP)
    assert list(res.matches["rule"]) == [
        "exact",
        "normalized",
        "no-qualifier",
        "acid-anion",
        "stereo",
    ]
    assert res.identifiers() == {
        "L-kynurenine": "CHEBI:16946",
        "L\u2013KYNURENINE**": "CHEBI:16946",
        "homovanillate (HVA)": "CHEBI:545959",
        "lactate": "CHEBI:422",
        "tryptophan": "CHEBI:16828",
    }
    assert res.matches.loc[0, "hmdb"] == "HMDB0000684"
    assert res.unmatched.empty


def test_unmatched_and_ambiguous_names_are_reported_never_dropped() -> None:
    names = [
        "D-tryptophan",  # D- forms are never merged with L-
        "sphingomyelin (d18:1/18:1, d18:2/18:0)",  # a lipid species is not its class
        "GLUCOSE",  # two rows ("glucose", "Glucose") give two IDs
        "lactate",
    ]
    res = match_names(names, MAP)
    assert list(res.matches["name"]) == ["lactate"]
    reasons = dict(zip(res.unmatched["name"], res.unmatched["reason"], strict=True))
    assert set(reasons) == set(names) - {"lactate"}
    assert reasons["GLUCOSE"].startswith("ambiguous")
    assert match_names(["glucose"], MAP).identifiers() == {"glucose": "CHEBI:4167"}  # exact
    assert reasons["D-tryptophan"] == "no mapping row under any rule"
    assert "3 unmatched" in res.report()


def test_maps_are_tried_in_order() -> None:
    own = NameMap.from_mapping("own", {"kynurenine": "CHEBI:1"}, kind="chebi")
    res = match_names(["kynurenine", "L-tryptophan"], own, MAP)
    assert res.identifiers() == {"kynurenine": "CHEBI:1", "L-tryptophan": "CHEBI:16828"}
    assert list(res.matches["source"]) == ["own", "test-map"]


def test_read_name_map_with_synonyms(tmp_path: Path) -> None:
    f = tmp_path / "map.tsv"
    f.write_text(
        "# a comment\nName\tChEBI\tHMDB\tsynonyms\n"
        "L-kynurenine\tCHEBI:16946\tHMDB0000684\tkynurenine|Kyn\n"
        "quinolinic acid\tCHEBI:16675\t\t\n"
    )
    m = read_name_map(f)
    assert m.identifiers == ("chebi", "hmdb")
    res = match_names(["Kyn", "quinolinate"], m)
    assert res.identifiers() == {"Kyn": "CHEBI:16946", "quinolinate": "CHEBI:16675"}


@pytest.mark.parametrize(
    ("text", "rule", "line"),
    [
        ("metabolite\tchebi\nx\tCHEBI:1\n", "name-column", 1),
        ("name\tformula\nx\tC6\n", "identifier-column", 1),
        ("name\tchebi\nx\tCHEBI:1\ty\n", "field-count", 2),
        ("name\tchebi\nx\tCHEBI:1\ny\t\n", "identifier", 3),
        ("name\tchebi\n\tCHEBI:1\n", "name", 2),
        ("# only a comment\n", "not-empty", None),
    ],
)
def test_bad_mapping_file_is_one_line_error(
    tmp_path: Path, text: str, rule: str, line: int | None
) -> None:
    f = tmp_path / "bad.tsv"
    f.write_text(text)
    with pytest.raises(InputError) as err:
        read_name_map(f)
    assert err.value.rule == rule
    assert err.value.location.line == line
    assert str(f) in str(err.value) and "\n" not in str(err.value)


def test_missing_mapping_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such name-mapping file"):
        read_name_map(tmp_path / "none.tsv")


@pytest.mark.skipif(not su2020.SU2020.exists(), reason="shared Su 2020 data not present")
def test_su2020_names_pair_with_the_processed_chebi_columns() -> None:
    pairs = {name: chebi for name, chebi, _ in su2020.name_to_chebi()}
    assert len(pairs) == 216
    assert len(set(pairs.values())) == len(pairs)  # one-to-one
    # pairs a chemist can check by name (ChEBI's own names)
    known = {
        "tryptophan": "CHEBI:16828",
        "kynurenine": "CHEBI:16946",
        "citrulline": "CHEBI:16349",
        "glutamate": "CHEBI:16015",
        "glutamine": "CHEBI:18050",
        "glycine": "CHEBI:15428",
        "spermidine": "CHEBI:16610",
        "sphingosine": "CHEBI:16393",
        "lactate": "CHEBI:422",
        "pyruvate": "CHEBI:32816",
        "citrate": "CHEBI:30769",
    }
    assert {k: pairs.get(k) for k in known} == known


@pytest.mark.skipif(not su2020.SU2020.exists(), reason="shared Su 2020 data not present")
def test_su2020_raw_names_match_with_the_catalogue_after_the_study_map() -> None:
    names = [c for c in su2020.raw().columns if c not in su2020.META]
    study = NameMap(
        "su2020-derived", ("chebi",), tuple((n, {"chebi": c}) for n, c, _ in su2020.name_to_chebi())
    )
    catalogue = NameMap.from_mapping(
        "builtin", builtin_metabolic_programs().name_map(), kind="chebi"
    )
    res = match_names(names, study, catalogue)
    assert len(res.matches) + len(res.unmatched) == len(names) == 1050
    ids = res.identifiers()
    # the kynurenine-pathway metabolites the processed table lacks come from the catalogue
    assert ids["quinolinate"] == "CHEBI:16675"
    assert ids["kynurenate"] == "CHEBI:18344"
    assert ids["tryptophan"] == "CHEBI:16828" and ids["kynurenine"] == "CHEBI:16946"
    assert not res.matches["chebi"].duplicated().any()
