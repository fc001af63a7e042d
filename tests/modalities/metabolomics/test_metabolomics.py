"""Metabolomics ingest: MetaboAnalyst tables and feature tables into ``feature-matrix@1``.

Oracles: the generated tables' own values (exact round trip, both orientations), pandas'
reading of the real Su 2020 table (every value exactly, ``float_precision="round_trip"``)
and its known biology (kynurenine up, tryptophan down in COVID-19), and the rule each bad
file breaks.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import land
from resistomics.catalog import SampleRow, VersionStatus
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.modalities.metabolomics._readers import (
    MetaboliteReadContext,
    read_feature_table,
    read_metaboanalyst,
)
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_feature_matrix

STUDY = "met"
IDS = [f"P{i:02d}" for i in range(7)]
EXTRA = ["QC_pool_01", "QC_pool_02", "Blank_extraction"]


def _workspace(tmp_path: Path, **metabolomics: object) -> Workspace:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
            modalities={"metabolomics": metabolomics} if metabolomics else {},
        )
    )
    rows = [
        SampleRow(sample_id=s, subject_id=f"S{i}", annotations={"arm": "a" if i % 2 else "b"})
        for i, s in enumerate(IDS)
    ]
    ws.catalog.register_study(STUDY, rows)
    return ws


def _values(n_features: int = 11, n_samples: int = len(IDS) + len(EXTRA)) -> np.ndarray:
    rng = np.random.default_rng(7)
    v = rng.lognormal(0.0, 1.5, size=(n_features, n_samples))
    v[rng.random(v.shape) < 0.15] = np.nan
    v[0, 0] = 0.0
    return v


def _cell(x: float) -> str:
    return "" if np.isnan(x) else repr(float(x))


FEATURES = [f"metabolite {i}, ({i} TMS)" for i in range(11)]  # commas: quoted in CSV


def _write_rows(path: Path, v: np.ndarray, *, sep: str = ",") -> Path:
    import csv

    samples = IDS + EXTRA
    with open(path, "w", newline="") as f:
        w = csv.writer(f, delimiter=sep)
        w.writerow(["Sample", "Label", *FEATURES])
        for j, s in enumerate(samples):
            w.writerow([s, "QC" if s.startswith("QC") else "case", *[_cell(x) for x in v[:, j]]])
    return path


def _write_columns(path: Path, v: np.ndarray) -> Path:
    samples = IDS + EXTRA
    lines = ["\t".join(["Sample", *samples]), "\t".join(["Label", *["x"] * len(samples)])]
    lines += ["\t".join([f, *[_cell(x) for x in v[i]]]) for i, f in enumerate(FEATURES)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _stored(ws: Workspace, ref: str) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    version = ws.catalog.resolve(ref)
    store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
    return store.features, store.samples, np.asarray(store.array("abundance").compute())


@pytest.mark.parametrize("orientation", ["rows", "columns"])
def test_generated_tables_round_trip_exactly(tmp_path: Path, orientation: str) -> None:
    ws = _workspace(tmp_path)
    v = _values()
    src = tmp_path / ("t.csv" if orientation == "rows" else "t.tsv")
    (_write_rows if orientation == "rows" else _write_columns)(src, v)
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None and out.version.parameters["orientation"] == orientation
    features, samples, stored = _stored(ws, out.version.ref)
    assert features["feature_id"].tolist() == FEATURES
    assert samples["sample_id"].tolist() == IDS + EXTRA
    assert np.array_equal(stored, v, equal_nan=True)  # bit for bit, NaN where empty
    types = dict(zip(samples["sample_id"], samples["sample_type"], strict=True))
    assert [types[s] for s in EXTRA] == ["qc", "qc", "blank"]
    assert {types[s] for s in IDS} == {"study"}
    # the design joins study samples only; QC and blanks match no subject
    assert samples.set_index("sample_id").loc[IDS, "subject_id"].notna().all()
    assert samples.set_index("sample_id").loc[EXTRA, "subject_id"].isna().all()
    assert validate_version(ws, ws.catalog.resolve(out.version.ref)).success
    ws.close()


def test_orientation_detection_and_forcing(tmp_path: Path) -> None:
    v = _values()
    cols = _write_columns(tmp_path / "c.tsv", v)
    rows = _write_rows(tmp_path / "r.csv", v)
    nobody = MetaboliteReadContext()  # nothing registered: the class row decides
    assert read_metaboanalyst(cols, nobody).details["orientation"] == "columns"
    assert read_metaboanalyst(rows, nobody).details["orientation"] == "rows"
    # forced the wrong way: the class row becomes a sample, whose labels are no numbers
    forced = MetaboliteReadContext(orientation="rows")
    with pytest.raises(InputError, match=r"line 2, column 'P00'\): \[number\]"):
        read_metaboanalyst(cols, forced)
    # a columns table without a class row: registered samples decide
    plain = tmp_path / "p.tsv"
    lines = cols.read_text().splitlines()
    plain.write_text("\n".join([lines[0], *lines[2:]]) + "\n")
    reg = MetaboliteReadContext(registered_samples=frozenset(IDS))
    got = read_metaboanalyst(plain, reg)
    assert got.details["orientation"] == "columns"
    assert np.array_equal(got.values, v, equal_nan=True)


def test_feature_tables_of_ms_dial_mzmine_and_xcms(tmp_path: Path) -> None:
    ctx = MetaboliteReadContext()
    # MS-DIAL alignment export: 4 rows above the header, label in the last metadata column
    meta = [
        "Alignment ID",
        "Average Rt(min)",
        "Average Mz",
        "Metabolite name",
        "INCHIKEY",
        "Fill %",
    ]
    pad = [""] * (len(meta) - 1)
    lines = [
        "\t".join([*pad, "Class", "case", "ctrl", "QC", "Blank"]),
        "\t".join([*pad, "File type", "Sample", "Sample", "QC", "Blank"]),
        "\t".join([*pad, "Injection order", "1", "2", "3", "4"]),
        "\t".join([*pad, "Batch ID", "1", "1", "1", "1"]),
        "\t".join([*meta, "s1", "s2", "pool", "b1"]),
        "\t".join(
            [
                "0",
                "1.25",
                "180.0634",
                "glucose",
                "WQZGKKKJIJFFOK-GASJEMHNSA-N",
                "1",
                "10",
                "",
                "12",
                "0.5",
            ]
        ),
        "\t".join(["1", "3.5", "205.0972", "Unknown", "", "0.5", "7", "8", "9", "0"]),
    ]
    p = tmp_path / "msdial.txt"
    p.write_text("\n".join(lines) + "\n")
    t = read_feature_table(p, ctx)
    assert t.samples["sample_id"].tolist() == ["s1", "s2", "pool", "b1"]
    assert t.samples["sample_type"].tolist() == ["study", "study", "qc", "blank"]
    assert t.samples["class"].tolist() == ["case", "ctrl", "QC", "Blank"]
    assert t.features["mz"].tolist() == [180.0634, 205.0972]
    assert t.features["rt"].tolist() == [1.25, 3.5]
    assert t.features["name"].tolist() == ["glucose", "Unknown"]
    assert t.features["INCHIKEY"].tolist()[0] == "WQZGKKKJIJFFOK-GASJEMHNSA-N"
    assert np.array_equal(t.values, [[10, np.nan, 12, 0.5], [7, 8, 9, 0]], equal_nan=True)
    # MZmine 2 CSV
    p = tmp_path / "mzmine2.csv"
    p.write_text(
        "row ID,row m/z,row retention time,row identity (main ID),a.mzML Peak area,"
        "QC_1.mzML Peak area,\n1,100.5,2.0,x,3.5,4,\n2,101.5,2.5,,5,6,\n"
    )
    with pytest.raises(Exception, match="sample"):  # MZmine 2's trailing comma: an empty name
        read_feature_table(p, ctx)
    p.write_text(
        "row ID,row m/z,row retention time,row identity (main ID),a.mzML Peak area,"
        "QC_1.mzML Peak area\n1,100.5,2.0,x,3.5,4\n2,101.5,2.5,,5,6\n"
    )
    t = read_feature_table(p, ctx)
    assert t.samples["sample_id"].tolist() == ["a", "QC_1"]
    assert t.samples["sample_type"].tolist() == ["study", "qc"]
    assert t.features["feature_id"].tolist() == ["1", "2"]
    # MZmine 3: only the :area columns are samples
    p = tmp_path / "mzmine3.csv"
    p.write_text(
        "id,mz,rt,compound_db_identity:compound_name,datafile:a.mzML:area,datafile:a.mzML:mz,"
        "datafile:b.mzML:area\n7,300.1,5.5,caffeine,1e6,300.1,2e6\n"
    )
    t = read_feature_table(p, ctx)
    assert t.samples["sample_id"].tolist() == ["a", "b"]
    assert t.values.tolist() == [[1e6, 2e6]] and t.features["name"].tolist() == ["caffeine"]
    # XCMS featureDefinitions + featureValues
    p = tmp_path / "xcms.tsv"
    p.write_text(
        "name\tmzmed\tmzmin\tmzmax\trtmed\trtmin\trtmax\tnpeaks\tS1\tS2\n"
        "FT01\t200.1\t200.0\t200.2\t61.2\t60\t62\t2\t11\t12\n"
    )
    t = read_feature_table(p, ctx)
    assert t.samples["sample_id"].tolist() == ["S1", "S2"]
    assert t.features["feature_id"].tolist() == ["FT01"] and t.features["rt"].tolist() == [61.2]


def test_real_su2020_table_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Su 2020 MetaboAnalyst table (266 samples as rows x 1,050 metabolites, Group and
    WHO_status columns) through ``resistomics study register`` and ``resistomics ingest``:
    every value as pandas reads it, ~19 % missing, and the kynurenine shift of COVID-19."""
    from typer.testing import CliRunner

    from flows.cli import app
    from shared_data import SHARED_DATA

    su = SHARED_DATA / "metabolomics_su2020"
    if not su.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    table = tmp_path / "Su_metab_data_raw.csv.gz"
    table.write_bytes((su / table.name).read_bytes())
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    runner = CliRunner()
    r = runner.invoke(app, ["study", "register", str(su / "samples.tsv"), "--study", "su"])
    assert r.exit_code == 0, r.output
    args = ["ingest", str(table), "--study", "su", "--modality", "metabolomics"]
    # 10 of its metabolites have no value in any sample: refused unless kept
    r = runner.invoke(app, [*args, "--extra-columns", "WHO_status"])
    assert r.exit_code == 1 and "[all-missing-feature]" in r.output, r.output
    assert "10 such features" in " ".join(r.output.split()), r.output
    args += ["--keep-all-missing", "true"]
    # 19 metabolites are measured in at most 1 of 266 samples: a 0.99 bound refuses them
    monkeypatch.setenv("RESISTOMICS_MODALITIES__METABOLOMICS__MAX_FEATURE_MISSING", "0.99")
    r = runner.invoke(app, [*args, "--extra-columns", "WHO_status"])
    assert r.exit_code == 1 and "[validation] feature-missingness" in r.output, r.output
    assert "19 failing" in r.output, r.output
    monkeypatch.delenv("RESISTOMICS_MODALITIES__METABOLOMICS__MAX_FEATURE_MISSING")
    r = runner.invoke(app, [*args, "--extra-columns", "WHO_status"])
    assert r.exit_code == 0, r.output
    assert "1050 features x 266 samples" in " ".join(r.output.split()), r.output
    expected = pd.read_csv(su / table.name, float_precision="round_trip")
    ws = Workspace.open(Settings(data_root=str(tmp_path / "root")))
    try:
        features, samples, stored = _stored(ws, "su/Su_metab_data_raw")
        names = features["feature_id"].tolist()
        assert names == list(expected.columns[1:-2])
        assert samples["sample_id"].tolist() == expected["sample_id"].astype(str).tolist()
        assert np.array_equal(stored, expected[names].to_numpy().T, equal_nan=True)
        assert 0.18 < np.isnan(stored).mean() < 0.21  # README: ~19 %
        assert samples["class"].str.strip().value_counts().to_dict() == {
            "COVID19": 133,
            "Healthy Donor": 133,
        }
        assert set(samples["sample_type"]) == {"study"}
        covid = (samples["class"].str.strip() == "COVID19").to_numpy()
        row = {n: i for i, n in enumerate(names)}

        def shift(name: str) -> float:
            x = stored[row[name]]
            return float(np.nanmedian(x[covid]) / np.nanmedian(x[~covid]))

        assert shift("kynurenine") > 1.2 and shift("quinolinate") > 1.2
        assert shift("tryptophan") < 0.9 and shift("citrulline") < 0.9
    finally:
        ws.close()


def _bad_cases(v: np.ndarray) -> dict[str, tuple[str, str]]:
    """name -> (file text, the rule its message names)."""
    head = "Sample,Label," + ",".join(f"M{i}" for i in range(4))

    def body(*lines: str) -> str:
        return "\n".join([head, *lines]) + "\n"

    good = [f"{s},x,1,2,3,4" for s in IDS]
    return {
        "non-numeric": (body(*good[:3], f"{IDS[3]},x,1,2,n.d.x,4", *good[4:]), "number"),
        "duplicate-sample": (body(*good, f"{IDS[0]},x,1,2,3,4"), "unique-samples"),
        "duplicate-feature": (
            "Sample,Label,M0,M1,M0\n" + "\n".join(f"{s},x,1,2,3" for s in IDS) + "\n",
            "unique-features",
        ),
        "unregistered": (body(*good, "P99,x,1,2,3,4"), "registered-samples"),
        "truncated": (body(*good, f"{IDS[0]}x,x,1,2"), "[field-count]"),
        "negative": (body(*good[:2], f"{IDS[2]},x,1,-2,3,4", *good[3:]), "non-negative"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "non-numeric",
        "duplicate-sample",
        "duplicate-feature",
        "unregistered",
        "truncated",
        "negative",
    ],
)
def test_bad_tables_are_quarantined_naming_file_place_and_rule(tmp_path: Path, case: str) -> None:
    ws = _workspace(tmp_path)
    text, rule = _bad_cases(_values())[case]
    src = tmp_path / f"{case}.csv"
    src.write_text(text)
    before = ws.catalog.snapshot()
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1 and src.name in out.message
    assert rule in out.message, out.message
    if case == "negative":  # reads, fails validation: the feature block's rule
        assert "[validation]" in out.message
        assert out.version is not None and out.version.status == VersionStatus.QUARANTINED
    else:
        assert out.report["stage"] == "read" and out.report["location"], out.report
        assert ws.catalog.snapshot() == before
    assert not ws.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    assert out.quarantine_uri is not None
    ws.close()


def test_truncated_gzip_is_an_input_error(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    raw = gzip.compress(_write_rows(tmp_path / "t.csv", _values()).read_bytes())
    src = tmp_path / "t.csv.gz"
    src.write_bytes(raw[: len(raw) // 2])
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "quarantined" and "[gzip-integrity]" in out.message, out.message
    ws.close()


def test_log_scaled_allows_negatives_and_missingness_bounds_apply(tmp_path: Path) -> None:
    raw = _values()
    v = np.log2(np.where(raw == 0, 1e-3, raw))
    assert (v < 0).any()
    ws = _workspace(tmp_path)
    src = _write_rows(tmp_path / "log.csv", v)
    out = ingest(ws, land(ws, src, STUDY, modality="metabolomics"), study=STUDY)
    assert out.status == "quarantined" and "non-negative" in out.message, out.message
    out = ingest(
        ws,
        land(ws, src, STUDY, "log2.csv", modality="metabolomics"),
        study=STUDY,
        options={"log_scaled": True},
    )
    assert out.status == "published", out.message
    ws.close()
    # a sample missing more than the bound fails validation
    ws = _workspace(tmp_path / "strict", max_sample_missing=0.05)
    out = ingest(
        ws,
        land(ws, _write_rows(tmp_path / "m.csv", _values()), STUDY, modality="metabolomics"),
        study=STUDY,
    )
    assert out.status == "quarantined" and "sample-missingness" in out.message, out.message
    ws.close()


def test_qc_rsd_d_ratio_and_blank_ratio_are_reported_and_bounded(tmp_path: Path) -> None:
    """Oracle: numpy's per-feature SD (ddof 1) and mean over the pooled QCs / blanks /
    study samples of the generated table (NaN-aware), as Broadhurst et al. 2018 define
    RSD, D-ratio and blank contribution."""
    from resistomics.modalities.metabolomics._summaries import summarize_metabolomics

    v = _values()
    ws = _workspace(tmp_path)
    out = ingest(
        ws,
        land(ws, _write_rows(tmp_path / "t.csv", v), STUDY, modality="metabolomics"),
        study=STUDY,
    )
    assert out.status == "published", out.message
    version = ws.catalog.resolve(out.version.ref)
    store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
    features = summarize_metabolomics(store, log_scaled=False)["features"]
    n = len(IDS)
    qc, blank, study = v[:, n : n + 2], v[:, n + 2 :], v[:, :n]
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        qc_sd = np.nanstd(qc, axis=1, ddof=1)
        rsd = qc_sd / np.nanmean(qc, axis=1)
        d = qc_sd / np.nanstd(study, axis=1, ddof=1)
        b = np.nanmean(blank, axis=1) / np.nanmean(qc, axis=1)
    np.testing.assert_allclose(features["qc_rsd"], rsd, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(features["d_ratio"], d, rtol=1e-12, equal_nan=True)
    np.testing.assert_allclose(features["blank_qc_ratio"], b, rtol=1e-12, equal_nan=True)
    assert np.isfinite(rsd).sum() >= 5 and np.isnan(rsd).any()  # both cases exercised
    assert (features["n_qc_measured"] == (~np.isnan(qc)).sum(axis=1)).all()
    # on log-scaled data the ratios of means are undefined, the D-ratio is not
    logged = summarize_metabolomics(store, log_scaled=True)["features"]
    assert logged["qc_rsd"].isna().all() and logged["blank_qc_ratio"].isna().all()
    np.testing.assert_allclose(logged["d_ratio"], d, rtol=1e-12, equal_nan=True)
    ws.close()
    # bounds: a tight RSD bound fails validation and names the rule; so does the blank one
    for key, rule in (("max_qc_rsd", "qc-rsd"), ("max_blank_qc_ratio", "blank-contribution")):
        limit = float(np.nanmin(rsd if key == "max_qc_rsd" else b)) / 2
        ws = _workspace(tmp_path / key, **{key: limit})
        out = ingest(
            ws,
            land(ws, _write_rows(tmp_path / f"{key}.csv", v), STUDY, modality="metabolomics"),
            study=STUDY,
        )
        assert out.status == "quarantined" and rule in out.message, out.message
        ws.close()
