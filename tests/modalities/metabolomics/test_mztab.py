"""mzTab-M 2.0 reader: a hand-written file parsed exactly, ingested, and bad files
quarantined naming the rule (oracle: the values written into the file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import land
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.modalities.metabolomics._mztab import detect_mztab_m, read_mztab_m
from resistomics.modalities.metabolomics._readers import MetaboliteReadContext
from resistomics.pipeline import Workspace, ingest

STUDY = "mzt"
MTD = [
    "MTD\tmzTab-version\t2.0.0-M",
    "MTD\tmzTab-ID\tMTBLS-test",
    "MTD\tms_run[1]-location\tfile:///data/a.mzML",
    "MTD\tms_run[2]-location\tfile:///data/b.mzML",
    "MTD\tms_run[3]-location\tfile:///data/qc.mzML",
    "MTD\tassay[1]\tassay a",
    "MTD\tassay[1]-ms_run_ref\tms_run[1]",
    "MTD\tassay[1]-sample_ref\tsample[1]",
    "MTD\tassay[2]\tassay b",
    "MTD\tassay[2]-ms_run_ref\tms_run[2]",
    "MTD\tassay[2]-sample_ref\tsample[2]",
    "MTD\tassay[3]\tassay qc",
    "MTD\tassay[3]-ms_run_ref\tms_run[3]",
    "MTD\tassay[3]-sample_ref\tsample[3]",
    "MTD\tsample[1]\tP01",
    "MTD\tsample[2]\tP02",
    "MTD\tsample[3]-name\tQC_pool_1",
    "MTD\tstudy_variable[1]\tcase",
    "MTD\tstudy_variable[1]-assay_refs\tassay[1]|assay[2]",
]
SMH = (
    "SMH\tSML_ID\tSMF_ID_REFS\tdatabase_identifier\tchemical_formula\tchemical_name"
    "\ttheoretical_neutral_mass\tabundance_assay[1]\tabundance_assay[2]\tabundance_assay[3]"
)
SML = [
    "SML\t1\t1\tCHEBI:16946|HMDB:HMDB0000684\tC10H12N2O3\tkynurenine\t208.0848\t10.5\tnull\t3",
    "SML\t2\tnull\tnull\tnull\ttryptophan\t204.0899\t0\t2.25\t1e3",
]
SFH = "SFH\tSMF_ID\texp_mass_to_charge\tcharge\tretention_time_in_seconds"
SMF = ["SMF\t1\t209.0921\t1\t312.5"]


def _text(mtd=MTD, smh=SMH, sml=SML) -> str:  # type: ignore[no-untyped-def]
    lines = ["COM\thand-written", *mtd, "", *([smh] if smh else []), *sml, "", SFH, *SMF]
    return "\n".join(lines) + "\n"


def test_hand_written_file_parses_exactly(tmp_path: Path) -> None:
    p = tmp_path / "a.mzTab"
    p.write_text(_text())
    assert detect_mztab_m(str(p)) and not detect_mztab_m(str(tmp_path))
    t = read_mztab_m(p, MetaboliteReadContext())
    assert t.samples["sample_id"].tolist() == ["P01", "P02", "QC_pool_1"]
    assert t.samples["sample_type"].tolist() == ["study", "study", "qc"]
    assert t.samples["ms_run"].tolist()[2] == "file:///data/qc.mzML"
    assert t.features["feature_id"].tolist() == ["1", "2"]
    assert t.features["name"].tolist() == ["kynurenine", "tryptophan"]
    assert t.features["identifiers"].tolist() == ["CHEBI:16946|HMDB:HMDB0000684", ""]
    # m/z from the referenced SMF row, else the neutral mass; RT only from SMF
    assert t.features["mz"].tolist() == [209.0921, 204.0899]
    assert t.features["rt"].tolist()[0] == 312.5 and np.isnan(t.features["rt"].tolist()[1])
    assert np.array_equal(t.values, [[10.5, np.nan, 3], [0, 2.25, 1e3]], equal_nan=True)
    assert t.details["mztab_id"] == "MTBLS-test"


def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    ws.catalog.register_study(
        STUDY, [SampleRow(sample_id=s, subject_id=f"S{s}") for s in ("P01", "P02")]
    )
    return ws


def test_ingest_detects_and_publishes(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    src = tmp_path / "run.mztab"
    src.write_text(_text())
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None and out.version.parameters["format"] == "mztab-m"
    ws.close()


BAD = {
    "assay-no-sample": (
        _text(mtd=[m for m in MTD if not m.startswith("MTD\tassay[2]-sample_ref")]),
        "assay-sample",
    ),
    "text-abundance": (_text(sml=[SML[0], SML[1].replace("2.25", "n.a.x")]), "number"),
    "no-smh": (_text(smh="", sml=[]), "header"),
    "sml-before-smh": (_text(smh=""), "header"),
    "empty-sml": (_text(sml=[]), "empty"),
    "duplicate-id": (_text(sml=[SML[0], SML[1].replace("SML\t2", "SML\t1")]), "unique-features"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_are_quarantined(tmp_path: Path, case: str) -> None:
    text, rule = BAD[case]
    src = tmp_path / f"{case}.mztab"
    src.write_text(text)
    with pytest.raises(InputError, match=rf"\[{rule}\]"):
        read_mztab_m(src, MetaboliteReadContext())
    ws = _workspace(tmp_path)
    before = ws.catalog.snapshot()
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1 and src.name in out.message
    assert f"[{rule}]" in out.message and out.report["stage"] == "read", out.message
    assert ws.catalog.snapshot() == before
    ws.close()
