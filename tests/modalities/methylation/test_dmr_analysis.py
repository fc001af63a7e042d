"""``resistomics methylation dmr`` end to end on the shared RRBS cohort: ingest -> our
smoothed DML test -> DMRs, held to the DMRs DSS 2.46 called on its own smoothed test
(``dss_callDMR_smoothed_p0.01.tsv.gz``), lineage, artifacts, the DMR-track plot."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.config import Settings
from resistomics.modalities.methylation._dmr import DSS_COLUMNS
from resistomics.pipeline import Workspace
from resistomics.storage import read_table
from shared_data import SHARED_DATA

RRBS = SHARED_DATA / "methylation_rrbs"
DML = "rrbs/rrbs.dml.smoothed-span500.case_SLE_vs_HC"
# Our DML statistics agree with DSS's to ~1e-8 relative (test_dml.py), so the DMRs are
# the same and their means and areaStat agree to that order: 1e-6 relative here.
RTOL = 1e-6


def test_dmr_analysis_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.image import imread
    from typer.testing import CliRunner

    from flows.cli import app
    from resistomics.modalities import modality

    if not RRBS.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    folder = tmp_path / "rrbs"
    folder.mkdir()
    for f in RRBS.glob("*.bismark.cov.gz"):
        (folder / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("RESISTOMICS_MODALITIES__METHYLATION__SITES_PER_CHUNK", "1000")
    runner = CliRunner()
    for args in (
        ["study", "register", str(RRBS / "samples.tsv"), "--study", "rrbs"],
        ["ingest", str(folder), "--study", "rrbs", "--modality", "methylation"],
        ["methylation", "dml", "rrbs/rrbs", "--contrast", "case:SLE vs HC", "--smoothing"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["methylation", "dmr", "--help"])
    assert r.exit_code == 0 and "--p-threshold" in r.output and "callDMR" in r.output
    args = ["methylation", "dmr", DML, "--p-threshold", "0.01"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"{DML.split('/')[1]}.dmr" in r.output and "43 DMRs" in r.output, r.output
    ws = Workspace.open(Settings(data_root=str(tmp_path / "root")))
    try:
        result = ws.catalog.resolve(f"{DML}.dmr")
        assert result.dataset_type == "methylation.dmr"
        assert [ws.catalog.get_version(i).ref for i in result.parent_ids] == [f"{DML}@v1"]
        assert result.parameters["p_threshold"] == 0.01 and result.parameters["min_cpg"] == 3
        table = read_table(ws.root, f"{ws.root.to_path(result.uri)}/dmr.parquet")
        ref = pd.read_csv(
            RRBS / "dss_2.46.0" / "dss_callDMR_smoothed_p0.01.tsv.gz", sep="\t"
        ).rename(columns=DSS_COLUMNS)
        keys = ["contig", "start", "end", "length", "n_cpg"]
        assert table[keys].astype(str).values.tolist() == ref[keys].astype(str).values.tolist()
        for column in ("mean_methylation_1", "mean_methylation_2", "diff_methylation", "area_stat"):
            np.testing.assert_allclose(table[column], ref[column], rtol=RTOL, err_msg=column)
        analysis = modality("methylation").analysis("dmr")
        assert analysis.artifacts is not None and analysis.plot is not None
        top, summary = analysis.artifacts(ws, result)
        assert top.table is not None and len(top.table) == 43
        assert top.table["area_stat"].abs().is_monotonic_decreasing
        assert "43 DMRs" in (summary.markdown or "") and "in HC" in (summary.markdown or "")
    finally:
        ws.close()
    png = tmp_path / "tracks.png"
    r = runner.invoke(app, ["plot", f"{DML}.dmr", "-o", str(png), "--top", "3", "--flank", "300"])
    assert r.exit_code == 0, r.output
    image = imread(png)
    assert image.shape[1] > 900 and image[..., :3].std() > 0.05
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "already up to date" in r.output, r.output
    r = runner.invoke(app, ["methylation", "dmr", DML, "--p-threshold", "0.01", "--delta", "0.1"])
    assert r.exit_code == 0 and "DMRs" in r.output, r.output
    # a general design (DSS DMLtest.multiFactor, ~ case + cell, coefficient caseSLE):
    # DSS's callDMR on DSS's own multi-factor table (dss_calldmr/make_reference.R)
    design = ["--design", "~ case + cell", "--coef", "caseSLE"]
    r = runner.invoke(app, ["methylation", "dml", "rrbs/rrbs", *design])
    assert r.exit_code == 0, r.output
    mf = "rrbs/rrbs.dml.design-case_cell.caseSLE"
    r = runner.invoke(app, ["methylation", "dmr", mf, "--p-threshold", "0.05", "--min-cpg", "2"])
    assert r.exit_code == 0, r.output
    ws = Workspace.open(Settings(data_root=str(tmp_path / "root")))
    try:
        result = ws.catalog.resolve(f"{mf}.dmr")
        table = read_table(ws.root, f"{ws.root.to_path(result.uri)}/dmr.parquet")
    finally:
        ws.close()
    ref = pd.read_csv(
        Path(__file__).parent / "dss_calldmr" / "multifactor_caseSLE_p0.05_mincg2.tsv.gz", sep="\t"
    ).rename(columns=DSS_COLUMNS)
    assert len(ref) == 3
    assert table[keys].astype(str).values.tolist() == ref[keys].astype(str).values.tolist()
    np.testing.assert_allclose(table["area_stat"], ref["area_stat"], rtol=RTOL)
    r = runner.invoke(app, ["methylation", "dmr", mf, "--delta", "0.1"])
    assert r.exit_code != 0 and "general design" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["methylation", "dmr", "rrbs/rrbs"])
    assert r.exit_code != 0 and "dataset-type" in r.output and "Traceback" not in r.output
