"""Pseudonymised subject IDs: the key, the mapping file, the refusals, registration."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resistomics.catalog import Catalog, SampleRow, SubjectPseudonyms, parse_sample_sheet
from resistomics.cli import app
from resistomics.errors import PrivacyError, SampleSheetError


def _open(tmp_path: Path, name: str = "key", **kw: object) -> SubjectPseudonyms:
    folder = tmp_path / "custodian"
    return SubjectPseudonyms.open(folder / name, folder / "map.tsv", **kw)  # type: ignore[arg-type]


def _sheet(tmp_path: Path, rows: list[str], name: str = "s.tsv") -> list[SampleRow]:
    path = tmp_path / name
    path.write_text("\n".join(["sample_id\tsubject_id\tarm", *rows]) + "\n")
    return parse_sample_sheet(path)


def test_key_is_created_private_and_gives_stable_readable_pseudonyms(tmp_path: Path) -> None:
    p = _open(tmp_path)
    assert stat.S_IMODE(p.key_file.stat().st_mode) == 0o600
    a = p.pseudonym("MRN-0042")
    assert a.startswith("subj-") and len(a) == 17 and SubjectPseudonyms.is_pseudonym(a)
    assert _open(tmp_path).pseudonym("MRN-0042") == a  # same key file, same pseudonym
    assert _open(tmp_path, "other-key").pseudonym("MRN-0042") != a
    assert p.pseudonym("MRN-0043") != a
    assert "MRN" not in a and p.key_file.read_text().strip() not in repr(p)


def test_key_refused_inside_the_data_or_readable_by_others(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(PrivacyError, match="inside the data"):
        SubjectPseudonyms.open(root / "k", tmp_path / "m.tsv", data_paths=[root])
    with pytest.raises(PrivacyError, match=r"mapping file .* inside the data"):
        SubjectPseudonyms.open(tmp_path / "k", root / "sub" / "m.tsv", data_paths=[root])
    assert not (root / "k").exists()
    link = tmp_path / "elsewhere"
    link.symlink_to(root)  # a path that only looks outside
    with pytest.raises(PrivacyError, match="inside the data"):
        SubjectPseudonyms.open(link / "k", tmp_path / "m.tsv", data_paths=[root])
    p = _open(tmp_path)
    os.chmod(p.key_file, 0o644)
    with pytest.raises(PrivacyError, match="chmod 600"):
        _open(tmp_path)
    bad = tmp_path / "custodian" / "not-a-key"
    bad.write_text("hello\n")
    bad.chmod(0o600)
    with pytest.raises(PrivacyError, match="not a key"):
        _open(tmp_path, "not-a-key")


def test_pseudonymise_replaces_subjects_and_records_the_mapping(tmp_path: Path) -> None:
    p = _open(tmp_path)
    rows = _sheet(tmp_path, ["A\tPT-7731\tx", "B\tPT-7731\ty", "C\tMRN0042\tx"])
    out = p.pseudonymise("s", rows)
    assert [r.subject_id for r in out] == [p.pseudonym("PT-7731")] * 2 + [p.pseudonym("MRN0042")]
    assert [r.sample_id for r in out] == ["A", "B", "C"]
    assert p.mapping() == {p.pseudonym("PT-7731"): "PT-7731", p.pseudonym("MRN0042"): "MRN0042"}
    assert stat.S_IMODE(p.mapping_file.stat().st_mode) == 0o600
    p.pseudonymise("s", rows)  # again: nothing new recorded
    p.pseudonymise("t", rows[:1])  # another study: recorded for it too
    lines = p.mapping_file.read_text().splitlines()
    assert lines[0] == "pseudonym\tsubject_id\tstudy\trecorded_at" and len(lines) == 4


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("PT-7731-base\tPT-7731\tx", "sample_id"),  # a sample ID derived from the patient
        ("A\tPT-7731\tfrom pt-7731", "arm"),  # an annotation naming the patient
        ("B\tB\tx", "sample_id"),  # no subject column: the sample is its own subject
        ("A-P1\tP1\tx", "sample_id"),  # a short ID as a whole token
    ],
)
def test_a_field_carrying_a_raw_subject_id_is_refused_without_showing_it(
    tmp_path: Path, row: str, column: str
) -> None:
    p = _open(tmp_path)
    rows = _sheet(tmp_path, ["Z\tQQ-0001\tx", row])
    with pytest.raises(SampleSheetError) as err:
        p.pseudonymise("s", rows)
    assert err.value.rule == "pseudonymise"
    assert f"line 3, column '{column}'" in str(err.value)
    raw = row.split("\t")[1]
    assert raw not in str(err.value).replace(str(tmp_path), "")
    assert not p.mapping_file.exists()  # nothing recorded


def test_a_sheet_of_pseudonyms_is_not_hashed_twice(tmp_path: Path) -> None:
    p = _open(tmp_path)
    exported = p.pseudonym("PT-7731")  # as `study show` prints it
    with pytest.raises(SampleSheetError, match="is a pseudonym already") as err:
        p.pseudonymise("s", _sheet(tmp_path, ["A\tQQ-1\tx", f"B\t{exported}\tx"]))
    assert "line 3, column 'subject_id'" in str(err.value)


def test_a_short_id_inside_another_token_is_a_coincidence(tmp_path: Path) -> None:
    p = _open(tmp_path)
    rows = _sheet(tmp_path, ["SP12\tP1\tx"])  # "P1" in "SP12" is not the patient
    assert p.pseudonymise("s", rows)[0].sample_id == "SP12"


def test_a_collision_in_the_mapping_is_refused(tmp_path: Path) -> None:
    p = _open(tmp_path)
    p.pseudonymise("s", _sheet(tmp_path, ["A\tPT-1\tx"]))
    forged = p.mapping_file.read_text().replace("PT-1", "PT-OTHER")
    p.mapping_file.write_text(forged)  # as if PT-OTHER had had PT-1's pseudonym
    with pytest.raises(PrivacyError, match="collision"):
        p.pseudonymise("s", _sheet(tmp_path, ["A\tPT-1\tx"]))


def test_a_study_stays_pseudonymised_with_its_key(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    p = _open(tmp_path)
    rows = _sheet(tmp_path, ["A\tPT-7731\tx", "B\tMRN0042\ty"])
    catalog.register_study("s", rows, pseudonyms=p)
    assert catalog.pseudonym_key("s") == p.key_id
    assert set(catalog.samples("s")["subject_id"]) == {
        p.pseudonym("PT-7731"),
        p.pseudonym("MRN0042"),
    }
    again = catalog.register_study("s", rows, pseudonyms=_open(tmp_path))
    assert (again.added, again.unchanged) == (0, 2)
    with pytest.raises(PrivacyError, match="has pseudonymised subject IDs"):
        catalog.register_study("s", rows)  # raw IDs into a pseudonymised study
    with pytest.raises(PrivacyError, match="another key"):
        catalog.register_study("s", rows, pseudonyms=_open(tmp_path, "other-key"))
    catalog.register_study("raw", rows)
    assert catalog.pseudonym_key("raw") is None
    with pytest.raises(PrivacyError, match="registered with raw subject IDs"):
        catalog.register_study("raw", rows, pseudonyms=p)
    with pytest.raises(SampleSheetError):  # refused inside the transaction: no study
        catalog.register_study("new", _sheet(tmp_path, ["PT-1-a\tPT-1\tx"]), pseudonyms=p)
    assert catalog.studies() == ["raw", "s"]
    catalog.close()


def test_cli_pseudonymises_by_flag_setting_and_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(root))
    sheet = tmp_path / "s.tsv"
    sheet.write_text("sample_id\tsubject_id\nA\tPT-7731\nB\tMRN0042\n")
    runner = CliRunner()

    def register(study: str, *flags: str) -> str:
        result = runner.invoke(app, ["study", "register", str(sheet), "--study", study, *flags])
        return f"{result.exit_code} {result.output}"

    assert "RESISTOMICS_PRIVACY__KEY_FILE" in register("a", "--pseudonymise")
    monkeypatch.setenv("RESISTOMICS_PRIVACY__KEY_FILE", str(root / "key"))
    assert "inside the data" in register("a", "--pseudonymise")
    monkeypatch.setenv("RESISTOMICS_PRIVACY__KEY_FILE", str(tmp_path / "keys" / "key"))
    assert register("a", "--pseudonymise").startswith("0 ")
    assert "pseudonymised" in register("a")  # a pseudonymised study stays so, no flag
    assert "PT-7731" not in runner.invoke(app, ["study", "show", "a"]).output
    assert register("b").startswith("0 ")  # raw IDs by default
    assert "PT-7731" in runner.invoke(app, ["study", "show", "b"]).output
    monkeypatch.setenv("RESISTOMICS_PRIVACY__PSEUDONYMISE", "true")
    assert "pseudonymised" in register("c")  # every new study
    assert "pseudonymised" not in register("b")  # an existing raw study stays raw
    assert (tmp_path / "keys" / "subject-pseudonyms.tsv").exists()
