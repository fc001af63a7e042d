"""mwTab reader (text and JSON, through the ``mwtab`` package): generated Workbench-style
files parsed exactly (oracle: the values, factors and annotations written into them), the
two forms agreeing, NMR binned data, ingest end to end, and what each bad file must say.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import land
from modalities.metabolomics import metabolomics_files as mf
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.modalities.metabolomics._mwtab import detect_mwtab, read_mwtab
from resistomics.modalities.metabolomics._readers import (
    BELOW_DETECTION,
    MEASURED,
    NOT_MEASURED,
    MetaboliteReadContext,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import open_feature_matrix

STUDY = "mw"
SAMPLES = ["S01", "S02", "S03", "S04", "QC_pool_1"]
ORDER = [2, 3, 5, 6, 1]
BATCH = ["B1", "B1", "B2", "B2", "B1"]
CTX = MetaboliteReadContext()


def _expected_reasons(v: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(v), NOT_MEASURED, np.where(np.isneginf(v), BELOW_DETECTION, MEASURED))


def test_text_file_parses_exactly(tmp_path: Path) -> None:
    v = mf.values(9, len(SAMPLES))
    assert np.isnan(v).any() and np.isneginf(v).any()  # both kinds of missing are exercised
    p = mf.write_mwtab(tmp_path / "ST009901_AN009901.txt", SAMPLES, v, order=ORDER, batch=BATCH)
    assert detect_mwtab(str(p)) and not detect_mwtab(str(tmp_path))
    t = read_mwtab(p, CTX)
    assert t.features["feature_id"].tolist() == mf.feature_names(9)
    assert np.array_equal(t.values, np.where(np.isfinite(v), v, np.nan), equal_nan=True)
    assert np.array_equal(t.missing_reason, _expected_reasons(v))
    f = t.features.set_index("feature_id")
    assert f.loc["kynurenine", ["hmdb", "kegg", "pubchem", "inchikey"]].tolist() == [
        "HMDB0000684",
        "C00328",
        "846",
        "YGPSJZOEDVAXAB-UHFFFAOYSA-N",
    ]
    assert f.loc["kynurenine", "mz"] == 209.0921 and f.loc["kynurenine", "rt"] == 3.12
    assert f.loc["unknown 0", "hmdb"] == ""
    s = t.samples
    assert s["sample_id"].tolist() == SAMPLES
    assert s["sample_type"].tolist() == ["study"] * 4 + ["qc"]
    assert s["class"].tolist()[0] == "Group:case | Time:0"
    assert s["factor:Group"].tolist() == ["case"] * 4 + ["QC"]
    assert s["injection_order"].tolist() == ORDER and str(s["injection_order"].dtype) == "Int64"
    assert s["batch"].tolist() == BATCH
    assert t.details["units"] == "Peak area" and t.details["study_id"] == "ST009901"


def test_json_form_reads_as_the_text_form(tmp_path: Path) -> None:
    v = mf.values(9, len(SAMPLES), seed=4)
    text = read_mwtab(mf.write_mwtab(tmp_path / "a.txt", SAMPLES, v, order=ORDER), CTX)
    p = mf.write_mwtab_json(tmp_path / "a.json", SAMPLES, v, order=ORDER)
    assert detect_mwtab(str(p))
    js = read_mwtab(p, CTX)
    assert np.array_equal(js.values, text.values, equal_nan=True)
    assert np.array_equal(js.missing_reason, text.missing_reason)
    cols = ["feature_id", "hmdb", "kegg", "pubchem", "inchikey", "mz", "rt"]
    assert js.features[cols].equals(text.features[cols])
    assert js.samples["injection_order"].tolist() == ORDER
    assert js.details["mwtab_form"] == "json" and text.details["mwtab_form"] == "text"


def test_nmr_binned_data_has_bins_as_features(tmp_path: Path) -> None:
    v = mf.values(4, 3)
    p = mf.write_mwtab(tmp_path / "nmr.txt", SAMPLES[:3], v, section="NMR_BINNED_DATA")
    t = read_mwtab(p, CTX)
    assert t.details["mwtab_section"] == "NMR_BINNED_DATA"
    assert t.features["feature_id"].tolist() == mf.feature_names(4)
    assert np.array_equal(t.values, np.where(np.isfinite(v), v, np.nan), equal_nan=True)


def test_ingest_publishes_abundance_reasons_and_run_order(tmp_path: Path) -> None:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    ws.catalog.register_study(STUDY, [SampleRow(sample_id=s, subject_id=s) for s in SAMPLES[:4]])
    v = mf.values(9, len(SAMPLES))
    src = mf.write_mwtab(tmp_path / "ST009901.txt", SAMPLES, v, order=ORDER, batch=BATCH)
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None and out.version.parameters["format"] == "mwtab"
    store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))
    assert np.array_equal(store.array("missing_reason").compute(), _expected_reasons(v))
    assert store.attributes("missing_reason")["codes"] == {
        "0": "measured",
        "1": "not-measured",
        "2": "below-detection",
    }
    assert store.samples["injection_order"].tolist() == ORDER
    assert store.samples["batch"].tolist() == BATCH
    ws.close()


def _text(tmp_path: Path) -> str:
    return mf.write_mwtab(tmp_path / "good.txt", SAMPLES, mf.values(6, len(SAMPLES))).read_text()


def _json(tmp_path: Path) -> dict:  # type: ignore[type-arg]
    return mf.mwtab_json(SAMPLES, mf.values(6, len(SAMPLES)))


def _line_of(text: str, start: str) -> int:
    return next(n for n, t in enumerate(text.split("\n"), start=1) if t.startswith(start))


TEXT_CASES = {
    # name -> (edit of the good text, rule, the line that must be named: its start)
    "no #END": (lambda t: t.replace("#END\n", ""), "truncated", "METABOLITES_END"),
    "no _END": (
        lambda t: t[: t.index("MS_METABOLITE_DATA_END")] + "#END\n",
        "unclosed-block",
        "#END",
    ),
    "duplicate sample": (lambda t: t.replace("\tS02\tS03", "\tS02\tS02"), "unique-samples", "Samples"),
    "short SSF line": (
        lambda t: "\n".join(
            x.split("\tS03\t")[0] + "\tS03" if "\tSUBJ02\tS03\t" in x else x
            for x in t.split("\n")
        ),
        "field-count",
        "SUBJECT_SAMPLE_FACTORS           \tSUBJ02",
    ),
    "no data block": (
        lambda t: t.replace("MS_METABOLITE_DATA_START", "MS_DATA_START").replace(
            "MS_METABOLITE_DATA_END", "MS_DATA_END"
        ),
        "data-section",
        None,
    ),
    "bad injection order": (
        lambda t: t.replace("RAW_FILE_NAME=S02.raw", "RAW_FILE_NAME=S02.raw; Injection order=2.5"),
        "injection-order",
        "SUBJECT_SAMPLE_FACTORS           \tSUBJ01",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_bad_text_files_name_rule_and_line(tmp_path: Path, case: str) -> None:
    edit, rule, start = TEXT_CASES[case]
    good = _text(tmp_path)
    bad = edit(good)
    assert bad != good
    p = tmp_path / "bad.txt"
    p.write_text(bad)
    with pytest.raises(InputError) as err:
        read_mwtab(p, CTX)
    assert err.value.rule == rule, str(err.value)
    assert err.value.file == str(p)
    if start is not None:
        assert err.value.location.line == _line_of(bad, start), str(err.value)


def test_bad_json_files_name_rule_and_place(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    good = json.dumps(_json(tmp_path), indent=4)
    p.write_text(good.replace('"Units": "Peak area",', '"Units": "Peak area"', 1))
    with pytest.raises(InputError, match=r"\[json-syntax\]") as err:
        read_mwtab(p, CTX)
    assert err.value.location.line is not None
    p.write_text(good.replace('"Units": "Peak area",', '"Units": "a", "Units": "b",', 1))
    with pytest.raises(InputError, match=r"\[json-duplicate-key\].*'Units'"):
        read_mwtab(p, CTX)
    d = _json(tmp_path)
    d["MS_METABOLITE_DATA"]["Data"][2]["S99"] = "1.0"  # a column the first record lacks
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"Data\[2\].*\[field-count\].*'S99'"):
        read_mwtab(p, CTX)
    d = _json(tmp_path)
    d["MS_METABOLITE_DATA"]["Data"] = "not records"
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"\[mwtab-layout\]"):
        read_mwtab(p, CTX)


def test_sniffing_reads_a_few_kib_only(tmp_path: Path) -> None:
    """``guess_can_open`` on a 20 MB file without line breaks returns at once, reading
    no more than the sniffed start."""
    import time

    p = tmp_path / "one_line.json"
    with open(p, "w") as f:
        f.write('{"METABOLOMICS WORKBENCH": {"STUDY_ID": "ST1"}, "x": "')
        f.write("y" * 20_000_000)
        f.write('"}')
    t0 = time.perf_counter()
    assert detect_mwtab(str(p))
    assert time.perf_counter() - t0 < 0.05
    fifo = tmp_path / "fifo.txt"
    import os

    os.mkfifo(fifo)
    assert not detect_mwtab(str(fifo))  # never opened, never blocks
