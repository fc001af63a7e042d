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
