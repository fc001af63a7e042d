"""Sample-sheet validation: reserved columns, values, did-you-mean messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from resistomics.catalog import Phase, Response, parse_sample_sheet
from resistomics.errors import SampleSheetError


def sheet(tmp_path: Path, text: str, name: str = "samples.tsv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reserved_columns_and_annotations(tmp_path: Path) -> None:
    p = sheet(
        tmp_path,
        "sample_id\tSubject-ID\ttimepoint\tphase\tresponse\tesr1_genotype\tpurity\n"
        "S1\tP1\t0\tBaseline\tsensitive\tWT\t0.6\n"
        "S2\tP1\t90\ton_treatment\tResistant\tY537S\t0.4\n",
    )
    rows = parse_sample_sheet(p)
    assert [r.sample_id for r in rows] == ["S1", "S2"]
    assert rows[0].subject_id == "P1"
    assert rows[1].phase is Phase.ON_TREATMENT and rows[1].response is Response.RESISTANT
    assert rows[1].timepoint == 90.0
    assert rows[1].annotations == {"esr1_genotype": "Y537S", "purity": 0.4}


def test_subject_defaults_to_sample(tmp_path: Path) -> None:
    rows = parse_sample_sheet(sheet(tmp_path, "sample_id,treatment\nA,veh\n", "s.csv"))
    assert rows[0].subject_id == "A" and rows[0].treatment == "veh"


@pytest.mark.parametrize(
    ("text", "rule", "fragment"),
    [
        ("sample_id\tphase\nS1\tbaseline\nS1\trelapse\n", "unique-sample-id", "line 3"),
        ("sample_id\tphase\nS1\tbasline\n", "phase-value", "did you mean 'baseline'"),
        ("sample_id\tresponse\nS1\tresistent\n", "response-value", "did you mean 'resistant'"),
        ("sampel_id\tphase\nS1\tbaseline\n", "reserved-column", "did you mean 'sample_id'"),
        ("sample_id\ttimpoint\nS1\t3\n", "reserved-column", "did you mean 'timepoint'"),
        ("sample_id\ttimepoint\nS1\tday3\n", "timepoint-number", "column 'timepoint'"),
        ("phase\nbaseline\n", "required-column", "sample_id"),
        ("", "not-empty", "empty"),
        ("sample_id,phase\nS1,baseline\n", "delimiter", "comma-separated"),
        ("sample_id\tphase\nS1\tbaseline\textra\n", "field-count", "line 2"),
    ],
)
def test_bad_sheets_name_file_line_and_rule(
    tmp_path: Path, text: str, rule: str, fragment: str
) -> None:
    p = sheet(tmp_path, text)
    with pytest.raises(SampleSheetError) as info:
        parse_sample_sheet(p)
    message = str(info.value)
    assert info.value.rule == rule
    assert str(p) in message and f"[{rule}]" in message and fragment in message
    assert "\n" not in message


# -- files that are not a sample sheet, and sheets the csv module took in silence --------


def _bad_sheet(tmp_path: Path, data: bytes, name: str = "samples.tsv") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


GOOD = "sample_id\tsubject_id\tphase\nS1\tP1\tbaseline\nS2\tP1\trelapse\nS3\tP2\tbaseline\n"


@pytest.mark.parametrize(
    ("make", "rule", "fragment"),
    [
        (lambda d: _bad_sheet(d, b"\x00\x01\x02garbage\xff\xfe" * 50), "text-encoding", "binary"),
        (lambda d: _bad_sheet(d, GOOD.encode("utf-16")), "text-encoding", "UTF-16"),
        (
            lambda d: _bad_sheet(d, GOOD.replace("P2", "Pé").encode("latin-1")),
            "text-encoding",
            "line 4",
        ),
        (
            lambda d: _bad_sheet(d, GOOD.replace("S2\t", "S\x002\t").encode()),
            "text-encoding",
            "line 3",
        ),
        (lambda d: _bad_sheet(d, GOOD.replace("S2\tP1", 'S2\t"P1').encode()), "quote", "line 3"),
        (
            lambda d: _bad_sheet(
                d, GOOD.replace("S2\tP1", 'S2\t"P1').replace("P2", 'P2"').encode()
            ),
            "quote",
            "line 3",
        ),
        (
            lambda d: _bad_sheet(d, GOOD.replace("baseline\nS2", "x" * 200_000 + "\nS2").encode()),
            "field-length",
            "line 2",
        ),
        (
            lambda d: _bad_sheet(d, GOOD.replace("baseline\nS2", "x" * 70_000 + "\nS2").encode()),
            "field-length",
            "line 2",
        ),
        (lambda d: (d / "sheet_dir").mkdir() or d / "sheet_dir", "not-a-file", "directory"),
        (lambda d: d / "nowhere.tsv", "file-exists", "no such file"),
        (lambda d: _bad_sheet(d, GOOD.encode(), "samples.tsv.gz"), "gzip", "not gzip-compressed"),
        (
            lambda d: _bad_sheet(d, ("sample_id\tnote\nS1\t" + "y" * (1 << 20) + "\n").encode()),
            "line-length",
            "line 2",
        ),
    ],
    ids=[
        "garbage",
        "utf16",
        "latin1",
        "nul",
        "unclosed-quote",
        "quote-spans-lines",
        "200k-field",
        "70k-field",
        "directory",
        "missing",
        "plain-named-gz",
        "long-line",
    ],
)
def test_unreadable_sheet_is_one_line(tmp_path: Path, make, rule: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    p = make(tmp_path)
    with pytest.raises(SampleSheetError) as info:
        parse_sample_sheet(p)
    message = str(info.value)
    assert info.value.rule == rule, message
    assert str(p) in message and f"[{rule}]" in message and fragment in message, message
    assert "\n" not in message


def test_xlsx_sheet_says_to_export_tsv(tmp_path: Path) -> None:
    from modalities.bad_files import xlsx_like

    good = sheet(tmp_path, GOOD, "good.tsv")
    bad = xlsx_like(good, tmp_path / "samples.tsv")
    with pytest.raises(
        SampleSheetError, match=r"\[text-encoding\] .*Excel workbook.*tab-separated"
    ):
        parse_sample_sheet(bad.path)


@pytest.mark.parametrize("value", ["inf", "-inf", "Infinity", "1e999"])
def test_timepoint_must_be_finite(tmp_path: Path, value: str) -> None:
    p = sheet(tmp_path, f"sample_id\ttimepoint\nS1\t0\nS2\t{value}\n")
    with pytest.raises(SampleSheetError) as info:
        parse_sample_sheet(p)
    assert info.value.rule == "timepoint-number"
    assert "line 3, column 'timepoint'" in str(info.value)


def test_nan_timepoint_is_missing_like_na(tmp_path: Path) -> None:
    rows = parse_sample_sheet(sheet(tmp_path, "sample_id\ttimepoint\nS1\tNaN\nS2\tNA\n"))
    assert [r.timepoint for r in rows] == [None, None]


def test_annotation_columns_keep_their_case(tmp_path: Path) -> None:
    rows = parse_sample_sheet(
        sheet(tmp_path, "Sample_ID\tPHASE\tBT\tESR1_Genotype\nS1\tbaseline\t4\tWT\n")
    )
    assert rows[0].sample_id == "S1" and rows[0].phase is Phase.BASELINE
    assert rows[0].annotations == {"BT": 4, "ESR1_Genotype": "WT"}


def test_columns_differing_only_in_case_are_refused(tmp_path: Path) -> None:
    p = sheet(tmp_path, "sample_id\tBT\tbt\nS1\t1\t2\n")
    with pytest.raises(SampleSheetError) as info:
        parse_sample_sheet(p)
    assert info.value.rule == "unique-columns"
    assert "column 'bt'" in str(info.value) and "ignoring case" in str(info.value)


def test_misspelt_reserved_column_in_capitals_gets_a_did_you_mean(tmp_path: Path) -> None:
    p = sheet(tmp_path, "sample_id\tTimpoint\nS1\t3\n")
    with pytest.raises(SampleSheetError, match=r"column 'Timpoint'.*did you mean 'timepoint'"):
        parse_sample_sheet(p)


def test_rows_after_blank_lines_are_named_by_their_own_line(tmp_path: Path) -> None:
    p = sheet(tmp_path, "sample_id\tphase\n\nS1\tbaseline\n\nS2\tbaseline\textra\n")
    with pytest.raises(SampleSheetError) as info:
        parse_sample_sheet(p)
    assert info.value.rule == "field-count" and info.value.location.line == 5


def test_reader_design_columns_are_the_sheets_reserved_columns() -> None:
    from resistomics.catalog import RESERVED_COLUMNS
    from resistomics.modalities._checks import DESIGN_COLUMNS

    assert set(RESERVED_COLUMNS) - {"sample_id"} == DESIGN_COLUMNS
