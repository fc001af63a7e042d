"""``normalize`` and ``da`` on published metabolomics datasets, their CLI, artifacts, plots.

Oracles: the known biology of Su 2020 (COVID-19 vs healthy donors: kynurenine and
quinolinate up, tryptophan and citrulline down, Su et al., Cell 183:1479), scipy's Welch
and Mann-Whitney tests on the stored processed values, limma 3.54.1 through Rscript on a
generated paired design (``limma_paired/``: the data, the R script and its output), and a
generated study with drift along injection order, pooled QCs and planted changes.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conftest import land
from resistomics.catalog import SampleRow, parse_sample_sheet
from resistomics.config import ClusterSettings, Settings
from resistomics.contrasts import parse_contrast
from resistomics.errors import (
    AnalysisNotApplicableError,
    ContrastNotApplicableError,
    InputError,
    MethodInputError,
)
from resistomics.modalities import modality
from resistomics.modalities.metabolomics._analyses import (
    differential_abundance,
    normalize_abundance,
)
from resistomics.modalities.metabolomics._da import da_table
from resistomics.pipeline import Workspace, analysis_plan, ingest, run_step
from resistomics.storage import open_feature_matrix
from shared_data import SHARED_DATA

SU = SHARED_DATA / "metabolomics_su2020"
COVID = "group:COVID19 vs Healthy Donor"
REFERENCE = Path(__file__).parent / "limma_paired"


def _workspace(root: Path) -> Workspace:
    return Workspace.open(
        Settings(
            data_root=str(root),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )


@pytest.fixture(scope="module")
def su(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Path]]:
    """Su 2020's raw table registered and ingested once (read-mostly: each test publishes
    results of its own parameters)."""
    if not SU.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    root = tmp_path_factory.mktemp("su") / "root"
    ws = _workspace(root)
    ws.catalog.register_study("su", parse_sample_sheet(SU / "samples.tsv"))
    path = land(ws, SU / "Su_metab_data_raw.csv.gz", "su", modality="metabolomics")
    # its 10 metabolites without a value in any sample are kept (refused by default)
    opts = {"extra_columns": ["WHO_status"], "keep_all_missing": True}
    out = ingest(ws, path, study="su", modality="metabolomics", options=opts)
    assert out.status == "published", out.message
    yield ws, root
    ws.close()


def _values(ws: Workspace, ref: str, array: str = "abundance") -> tuple[Any, np.ndarray]:
    version = ws.catalog.resolve(ref)
    store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
    return store, np.asarray(store.array(array).compute())


def test_su2020_covid_vs_healthy_from_the_raw_table(
    su: tuple[Workspace, Path], tmp_path: Path
) -> None:
    """da on the raw dataset normalises it first (published, in the lineage), then limma:
    the tryptophan-kynurenine shift of COVID-19 at FDR < 0.05, fold changes on log2."""
    ws, _ = su
    out = differential_abundance(ws, "su/Su_metab_data_raw", parse_contrast(COVID))
    assert out.status == "published"
    table = out.tables["da"].set_index("feature_id")
    for name, sign in (
        ("kynurenine", 1),
        ("quinolinate", 1),
        ("tryptophan", -1),
        ("citrulline", -1),
    ):
        row = table.loc[name]
        assert row["p_adj"] < 0.05 and np.sign(row["log2fc"]) == sign, (name, row.to_dict())
        assert np.sign(row["statistic"]) == sign
        assert row["n_a"] == 133 and row["n_b"] == 133
    assert set(table["method"]) == {"limma moderated t"}
    assert list(table.columns[:1]) == ["name"]
    # lineage: da <- normalized <- the source; parameters say how
    da_version = out.version
    (normalized,) = [ws.catalog.get_version(i) for i in da_version.parent_ids]
    assert normalized.dataset_type == "metabolomics.normalized"
    assert [ws.catalog.get_version(i).dataset for i in normalized.parent_ids] == [
        "Su_metab_data_raw"
    ]
    steps = da_version.parameters["normalization"]
    assert (
        steps["method"] == "pqn" and steps["transform"] == "log" and steps["impute"] == "half-min"
    )
    assert da_version.parameters["fold_change"] == "difference of means (log2)"
    # log2fc = difference of the arms' means of the stored log2 values
    store, x = _values(ws, normalized.ref)
    group = store.samples["group"].to_numpy()
    i = store.features["feature_id"].tolist().index("kynurenine")
    fc = x[i, group == "COVID19"].mean() - x[i, group == "Healthy Donor"].mean()
    assert table.loc["kynurenine", "log2fc"] == pytest.approx(fc, rel=1e-12)
    # the same request again publishes nothing
    again = differential_abundance(ws, "su/Su_metab_data_raw", parse_contrast(COVID))
    assert again.status == "unchanged" and again.version.id == da_version.id
    # artifacts and the volcano
    plugin = modality("metabolomics")
    arts = plugin.analysis("da").artifacts(ws, da_version)  # type: ignore[misc]
    top = arts[0].table
    assert top is not None and len(top) == 50 and top["p"].is_monotonic_increasing
    assert "higher in COVID19" in (arts[1].markdown or "")
    png = plugin.analysis("da").plot(ws, da_version, tmp_path / "volcano.png", fdr=0.05, labels=10)  # type: ignore[misc]
    assert Path(png).stat().st_size > 10_000


def test_limma_parity_on_the_processed_table_end_to_end(tmp_path: Path) -> None:
    """The authors' processed (log-scaled, auto-scaled) Su 2020 table through ingest
    (``--log-scaled true``) and da: normalize changes nothing on log-scaled values, and
    limma's logFC, t, P.Value and adj.P.Val are limma 3.54.1's (``limma_3.54.1/``) within
    1e-6 relative."""
    if not SU.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    ws = _workspace(tmp_path / "root")
    try:
        ws.catalog.register_study("su", parse_sample_sheet(SU / "samples.tsv"))
        path = land(
            ws, SU / "Su_covid_metabolomics_processed.csv.gz", "su", modality="metabolomics"
        )
        opts = {"extra_columns": ["WHO_status"], "log_scaled": True}
        assert (
            ingest(ws, path, study="su", modality="metabolomics", options=opts).status
            == "published"
        )
        out = differential_abundance(
            ws, "su/Su_covid_metabolomics_processed", parse_contrast(COVID)
        )
        steps = out.version.parameters["normalization"]
        assert (steps["impute"], steps["method"], steps["transform"]) == ("none", "none", "none")
        ref = pd.read_csv(SU / "limma_3.54.1" / "limma_covid_vs_healthy.tsv.gz", sep="\t")
        table = out.tables["da"]
        assert table["feature_id"].tolist() == ref["chebi"].astype(str).tolist()
        for ours, theirs in (
            ("log2fc", "logFC"),
            ("statistic", "t"),
            ("p", "P.Value"),
            ("p_adj", "adj.P.Val"),
        ):
            np.testing.assert_allclose(table[ours], ref[theirs], rtol=1e-6, err_msg=ours)
        assert (table["n_a"] == 130).all() and (table["n_b"] == 133).all()
        with pytest.raises(MethodInputError, match=r"\[log-scaled-input\]"):
            normalize_abundance(ws, "su/Su_covid_metabolomics_processed", method="pqn")
    finally:
        ws.close()


@pytest.mark.parametrize("method", ["welch", "wilcoxon"])
def test_welch_and_wilcoxon_match_scipy(su: tuple[Workspace, Path], method: str) -> None:
    """The da table's statistic and p of every feature equal scipy's on the stored
    processed values (Welch: ``ttest_ind(equal_var=False)``; Wilcoxon: ``mannwhitneyu``)."""
    ws, _ = su
    norm = normalize_abundance(ws, "su/Su_metab_data_raw")
    out = differential_abundance(ws, norm.version.ref, parse_contrast(COVID), method=method)
    table = out.tables["da"]
    assert norm.version.dataset == "Su_metab_data_raw.normalized.pqn-log-none"
    store, x = _values(ws, norm.version.ref)
    group = store.samples["group"].to_numpy()
    a, b = x[:, group == "COVID19"], x[:, group == "Healthy Donor"]
    if method == "welch":
        ref = stats.ttest_ind(a, b, axis=1, equal_var=False)
    else:
        ref = stats.mannwhitneyu(a, b, axis=1, alternative="two-sided")
    np.testing.assert_allclose(table["statistic"], ref.statistic, rtol=1e-10)
    np.testing.assert_allclose(table["p"], ref.pvalue, rtol=1e-10)
    assert (table["p_adj"] >= table["p"]).all()


def test_paired_limma_matches_r() -> None:
    """Paired limma (``~ arm + subject``) on generated log2 values with missing values
    agrees with limma 3.54.1 (``limma_paired/limma_paired.R``) within 1e-6."""
    x = pd.read_csv(REFERENCE / "paired_values.tsv", sep="\t", index_col=0)
    ref = pd.read_csv(REFERENCE / "limma_paired_reference.tsv", sep="\t")
    after = [c for c in x.columns if c.endswith("_after")]
    before = [c.replace("_after", "_before") for c in after]
    cols = list(x.columns)
    table = da_table(
        x.to_numpy(),
        np.array([cols.index(c) for c in after]),
        np.array([cols.index(c) for c in before]),
        method="limma",
        log_scale=True,
        pairs=np.array([c.split("_")[0] for c in after]),
    )
    assert ref["feature_id"].tolist() == x.index.tolist()
    for ours, theirs in (
        ("log2fc", "logFC"),
        ("statistic", "t"),
        ("p", "P.Value"),
        ("p_adj", "adj.P.Val"),
    ):
        np.testing.assert_allclose(table[ours], ref[theirs], rtol=1e-6, atol=1e-12, err_msg=ours)
    # the planted shifts (features 0-5 up, 6-9 down) come out on top
    assert set(table.nsmallest(8, "p").index) <= set(range(10))


# -- a generated study: drift, pooled QCs, a blank, pairs --------------------------------

N_SUBJECTS, N_FEATURES, N_QC = 10, 30, 8


def _generated(path: Path) -> list[SampleRow]:
    """A MetaboAnalyst table: 10 subjects before/after, 8 pooled QCs and a blank in one
    run whose signal drifts (x1 -> x1.8 along injection order); features 0-4 double
    after treatment."""
    rng = np.random.default_rng(11)
    base = rng.lognormal(8, 1, size=N_FEATURES)
    names: list[str] = []
    visit: list[str] = []
    for s in range(N_SUBJECTS):
        for v in ("before", "after"):
            names.append(f"P{s:02d}_{v}")
            visit.append(v)
    study = len(names)
    qc_at = np.linspace(0, study + N_QC - 1, N_QC).round().astype(int)
    order_names: list[str] = []
    it = iter(names)
    q = 0
    for pos in range(study + N_QC):
        if q < N_QC and pos == qc_at[q]:
            order_names.append(f"QC_{q + 1:02d}")
            q += 1
        else:
            order_names.append(next(it))
    order_names.append("Blank_1")
    subject_effect = rng.lognormal(0, 0.3, size=(N_FEATURES, N_SUBJECTS))
    rows = []
    for pos, name in enumerate(order_names):
        drift = 1.0 + 0.8 * pos / len(order_names)
        if name.startswith("QC"):
            v = base * rng.lognormal(0, 0.03, N_FEATURES)
        elif name.startswith("Blank"):
            v = base * 0.01
        else:
            s = int(name[1:3])
            v = base * subject_effect[:, s] * rng.lognormal(0, 0.1, N_FEATURES)
            if name.endswith("after"):
                v[:5] *= 2.0
        rows.append([name, "QC" if name.startswith("QC") else "x", pos + 1, *(v * drift)])
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            ["Sample", "Label", "injection_order", *[f"m{i:02d}" for i in range(N_FEATURES)]]
        )
        w.writerows(rows)
    return [
        SampleRow(sample_id=n, subject_id=n.split("_")[0], annotations={"visit": v})
        for n, v in zip(names, visit, strict=True)
    ]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Path]]:
    root = tmp_path_factory.mktemp("gen") / "root"
    table = root.parent / "drift.csv"
    ws = _workspace(root)
    ws.catalog.register_study("gen", _generated(table))
    path = land(ws, table, "gen", modality="metabolomics")
    out = ingest(
        ws,
        path,
        study="gen",
        modality="metabolomics",
        options={"extra_columns": ["injection_order"]},
    )
    assert out.status == "published", out.message
    yield ws, root
    ws.close()


def test_drift_correction_qc_table_pca_and_paired_da(
    generated: tuple[Workspace, Path], tmp_path: Path
) -> None:
    """QC-RLSC brings the pooled QCs' RSD down; the blank is left out, QCs kept but never
    subjects; paired da finds the planted features and pairs by subject."""
    ws, _ = generated
    norm = normalize_abundance(ws, "gen/drift", method="pqn", transform="log", scale="pareto")
    params = norm.version.parameters
    assert params["drift_corrected"] is True and params["steps"]["scale"] == "pareto"
    qc = norm.tables["feature_qc"]
    before, after = qc["qc_rsd_before"].median(), qc["qc_rsd_after"].median()
    assert before > 15 and after < before / 3, (before, after)
    samples = norm.tables["sample_qc"].set_index("sample_id")
    assert not samples.loc["Blank_1", "processed"] and samples.loc["QC_01", "processed"]
    store, scaled = _values(ws, norm.version.ref, "scaled")
    assert sorted(store.arrays) == ["abundance", "scaled"]
    assert "Blank_1" not in set(store.samples["sample_id"])
    assert (store.samples["sample_type"] == "qc").sum() == N_QC
    np.testing.assert_allclose(np.nanmean(scaled, axis=1), 0, atol=1e-9)  # centred
    arts = modality("metabolomics").analysis("normalize").artifacts(ws, norm.version)  # type: ignore[misc]
    assert [a.key_parts[-1] for a in arts] == ["qc-features", "qc-samples", "summary"]
    assert "after QC-RLSC drift correction" in (arts[2].markdown or "")
    png = (
        modality("metabolomics").analysis("normalize").plot(ws, norm.version, tmp_path / "pca.png")
    )  # type: ignore[misc]
    assert Path(png).stat().st_size > 10_000

    contrast = parse_contrast("visit:after vs before")
    paired = differential_abundance(ws, norm.version.ref, contrast, pair_by="subject_id")
    table = paired.tables["da"]
    assert set(table.nsmallest(5, "p")["feature_id"]) == {f"m{i:02d}" for i in range(5)}
    assert (table.loc[:4, "log2fc"] > 0.7).all() and (table["n_a"] == N_SUBJECTS).all()
    assert table["method"].iloc[0] == "limma moderated t, subject blocked"
    assert paired.version.parameters["n_pairs"] == N_SUBJECTS
    assert paired.version.parameters["n_unpaired_left_out"] == 0
    # aligned by subject: the same as da_table on columns matched by hand
    _, x = _values(ws, norm.version.ref)
    ids = store.samples["sample_id"].tolist()
    a = np.array([ids.index(f"P{s:02d}_after") for s in range(N_SUBJECTS)])
    b = np.array([ids.index(f"P{s:02d}_before") for s in range(N_SUBJECTS)])
    pairs = np.array([f"P{s:02d}" for s in range(N_SUBJECTS)])
    for method in ("welch", "wilcoxon"):
        out = differential_abundance(
            ws, norm.version.ref, contrast, method=method, pair_by="subject_id"
        )
        got = out.tables["da"]
        want = da_table(x, a, b, method=method, log_scale=True, pairs=pairs)  # type: ignore[arg-type]
        np.testing.assert_allclose(got["statistic"], want["statistic"], rtol=1e-12)
        ref = (
            stats.ttest_rel(x[:, a], x[:, b], axis=1)
            if method == "welch"
            else stats.wilcoxon(x[:, a] - x[:, b], axis=1)
        )
        np.testing.assert_allclose(got["p"], ref.pvalue, rtol=1e-10)
    # unpaired: the planted features too (weaker, subject effects unblocked)
    unpaired = differential_abundance(ws, norm.version.ref, contrast).tables["da"]
    assert (unpaired.loc[:4, "p_adj"] < 0.05).all()


def test_missing_values_left_for_the_tests(su: tuple[Workspace, Path]) -> None:
    """Without imputation the tests skip a feature's missing values (n_a, n_b say how
    many remain) and a non-default step publishes a dataset of its own name."""
    ws, _ = su
    norm = normalize_abundance(
        ws, "su/Su_metab_data_raw", impute="none", max_missing=0.9, missing_by="group"
    )
    assert (
        norm.version.dataset
        == "Su_metab_data_raw.normalized.pqn-log-none.impute-none.missing0.9-by-group"
    )
    store, x = _values(ws, norm.version.ref)
    assert np.isnan(x).any()
    group = store.samples["group"].to_numpy()
    out = differential_abundance(ws, norm.version.ref, parse_contrast(COVID), method="welch")
    table = out.tables["da"]
    a, b = x[:, group == "COVID19"], x[:, group == "Healthy Donor"]
    np.testing.assert_array_equal(table["n_a"], (~np.isnan(a)).sum(axis=1))
    # features observed in fewer than 2 samples of an arm: NaN, and scipy warns so
    with pytest.warns(RuntimeWarning, match="too small"):
        ref = stats.ttest_ind(a, b, axis=1, equal_var=False, nan_policy="omit")
    assert np.isnan(table["p"]).any()
    np.testing.assert_allclose(table["p"], np.asarray(ref.pvalue, dtype=float), rtol=1e-10)
    limma = differential_abundance(ws, norm.version.ref, parse_contrast(COVID)).tables["da"]
    assert limma.set_index("feature_id").loc["kynurenine", "p_adj"] < 0.05


def test_bad_requests_are_one_line_errors(generated: tuple[Workspace, Path]) -> None:
    """Each bad request fails with its rule before anything is normalised or published."""
    ws, _ = generated
    snapshot = ws.catalog.snapshot()
    c = parse_contrast("visit:after vs before")
    with pytest.raises(
        ContrastNotApplicableError, match=r"\[contrast-column\].*did you mean 'visit'"
    ):
        differential_abundance(ws, "gen/drift", parse_contrast("visits:after vs before"))
    with pytest.raises(ContrastNotApplicableError, match=r"\[contrast-arm\]"):
        differential_abundance(ws, "gen/drift", parse_contrast("visit:after vs later"))
    with pytest.raises(ContrastNotApplicableError, match=r"\[contrast-arm\]"):
        # QC samples are never subjects: their class label is no arm
        differential_abundance(ws, "gen/drift", parse_contrast("class:QC vs x"))
    with pytest.raises(InputError, match=r"\[option\].*'ttest' is not one of limma"):
        differential_abundance(ws, "gen/drift", c, method="ttest")
    with pytest.raises(InputError, match=r"\[pair-by\]"):
        differential_abundance(ws, "gen/drift", c, pair_by="subject")
    with pytest.raises(InputError, match=r"\[one-sample-per-subject-and-arm\]"):
        differential_abundance(ws, "gen/drift", c, pair_by="visit")
    with pytest.raises(InputError, match=r"\[option\].*'zscore' is not one of"):
        normalize_abundance(ws, "gen/drift", scale="zscore")
    with pytest.raises(InputError, match=r"\[missing-by\]"):
        normalize_abundance(ws, "gen/drift", missing_by="vist")
    assert ws.catalog.snapshot() == snapshot
    da = differential_abundance(ws, "gen/drift", c)
    with pytest.raises(MethodInputError, match=r"\[dataset-type\]"):
        normalize_abundance(ws, da.version.ref)


def test_the_analyse_plan_runs_normalize_and_da_per_contrast(
    generated: tuple[Workspace, Path],
) -> None:
    """The generic analyse template: normalize once, da once per registered contrast
    (with the deployment's defaults; da reuses normalize's result), the enrichment of
    each da result and the program scores of the normalised one."""
    ws, _ = generated
    ws.catalog.save_contrast("gen", column="visit", group_a="after", group_b="before", where={})
    plan = analysis_plan(ws, "gen/drift")
    assert [s.key for s in plan.steps] == [
        "normalize",
        "da [visit:after vs before]",
        "enrich [visit:after vs before]",
        "programs",
    ]
    norm, da = (run_step(ws, "gen/drift", s).outcome.version for s in plan.steps[:2])
    assert da.parent_ids == (norm.id,)
    assert da.parameters["method"] == "limma" and da.parameters["contrast"]["a"] == "after"
    # the generated features carry no ChEBI ID: enrich and programs do not apply, which
    # the deployment notes (tests/flows/test_metabolomics_flow.py; Su 2020 in the demo
    # publishes both)
    for step, given in ((plan.steps[2], da.ref), (plan.steps[3], norm.ref)):
        with pytest.raises(AnalysisNotApplicableError, match=r"\[identifiers\]"):
            run_step(ws, "gen/drift", step, input_ref=given)


def test_cli_normalize_and_da(
    su: tuple[Workspace, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    ws, root = su
    _, raw = _values(ws, "su/Su_metab_data_raw")
    kept = int((np.isnan(raw).mean(axis=1) <= 0.5).sum())  # --max-missing 0.5 by default
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(root))
    # the commands start the configured cluster: threads in this process here (the
    # blockwise path on worker processes is tests/modalities/metabolomics/test_normalize_blocks.py)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    runner = CliRunner()
    for args in (
        ["metabolomics", "--help"],
        ["metabolomics", "normalize", "--help"],
        ["metabolomics", "da", "--help"],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "Usage" in r.output, r.output
    r = runner.invoke(
        app,
        [
            "metabolomics",
            "normalize",
            "su/Su_metab_data_raw",
            "--method",
            "pqn",
            "--transform",
            "log",
            "--scale",
            "pareto",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "published su/Su_metab_data_raw.normalized.pqn-log-pareto@v1" in r.output
    assert f"{kept} of 1050 features kept" in r.output, r.output
    r = runner.invoke(
        app,
        [
            "metabolomics",
            "da",
            "su/Su_metab_data_raw.normalized.pqn-log-pareto",
            "--contrast",
            COVID,
            "--method",
            "welch",
        ],
    )
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())
    assert ".da.welch.group_COVID19_vs_Healthy-Donor@v1" in flat and "atFDR<0.05" in flat
    r = runner.invoke(
        app,
        [
            "plot",
            "su/Su_metab_data_raw.normalized.pqn-log-pareto",
            "-o",
            str(tmp_path / "pca.png"),
            "--color-by",
            "who_status",
        ],
    )
    assert r.exit_code == 0 and (tmp_path / "pca.png").stat().st_size > 10_000, r.output
    r = runner.invoke(
        app,
        [
            "plot",
            "su/Su_metab_data_raw.normalized.pqn-log-pareto",
            "-o",
            str(tmp_path / "x.png"),
            "--fdr",
            "0.1",
        ],
    )
    assert r.exit_code != 0 and "[option]" in r.output and "--color-by" in r.output, r.output
    bad = {
        ("da", "su/Su_metab_data_raw", "--contrast", COVID, "--method", "t"): "[option]",
        ("da", "su/Su_metab_data_raw", "--contrast", "group COVID19"): "[contrast-syntax]",
        ("da", "su/Su_metab_data_raw"): "[option] give --contrast",
        ("da", "su/nope", "--contrast", COVID): "[unknown-dataset]",
        ("normalize", "su/Su_metab_data_raw", "--method", "quantile"): "[option]",
    }
    for args, rule in bad.items():
        r = runner.invoke(app, ["metabolomics", *args])
        assert r.exit_code != 0 and rule in r.output, (args, r.output)
        assert len(r.output.strip().splitlines()) == 1, r.output
