"""DSS's general-design DML test (``DMLfit.multiFactor`` + ``DMLtest.multiFactor``).

Oracles: DSS 2.46's own outputs on the RRBS data of ../shared/data/methylation_rrbs
(stored references for ``~ case + cell``; DSS run through ``Rscript`` here for the
smoothed fit, the term tests and the missing-coverage rules), R's ``model.matrix``
column names, and a planted paired design.

Tolerance (measured 2.6e-11 worst for ``stat``, 7e-14 for ``pvals``/``fdrs``): relative
1e-9 on ``stat``, ``pvals``, ``fdrs`` and ``phi``; the references carry 15 significant
digits.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import land
from resistomics.catalog import parse_sample_sheet
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import MethodInputError
from resistomics.modalities.methylation._multifactor import (
    bh_adjust,
    design_matrix,
    dml_fit_multifactor,
    dml_test_multifactor,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import (
    DataRoot,
    FeatureBlock,
    FeatureMatrix,
    open_feature_matrix,
    write_feature_matrix,
)
from shared_data import SHARED_DATA

RRBS = SHARED_DATA / "methylation_rrbs"
REF = RRBS / "dss_2.46.0"
RTOL = 1e-9


def _dss_available() -> bool:
    if shutil.which("Rscript") is None:
        return False
    r = subprocess.run(
        ["Rscript", "-e", "suppressMessages(library(DSS))"], capture_output=True, check=False
    )
    return r.returncode == 0


needs_dss = pytest.mark.skipif(not _dss_available(), reason="Rscript with DSS not installed")


def _close(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    ours = np.asarray(ours, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{what}: NA sites")
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=0, equal_nan=True, err_msg=what)


@pytest.fixture(scope="module")
def rrbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FeatureMatrix]:
    """The 16 Bismark coverage files through the real ingest, in many small chunks."""
    if not RRBS.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    root = tmp_path_factory.mktemp("rrbs")
    ws = Workspace.open(
        Settings(
            data_root=str(root / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
            modalities={"methylation": {"sites_per_chunk": 700}},
        )
    )
    try:
        ws.catalog.register_study("rrbs", parse_sample_sheet(RRBS / "samples.tsv"))
        folder = root / "src"
        folder.mkdir()
        for f in RRBS.glob("*.bismark.cov.gz"):
            (folder / f.name).write_bytes(f.read_bytes())
        out = ingest(ws, land(ws, folder, "rrbs", modality="methylation"), study="rrbs")
        assert out.status == "published", out.message
        assert out.version is not None
        store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))
        assert store.chunks[0] == 700 and store.n_features > 5 * 700  # many chunks
        yield store
    finally:
        ws.close()


def _against(ours: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    joined = ref.merge(ours, on=["chr", "pos"], how="left", suffixes=("_dss", ""))
    assert len(joined) == len(ref) == len(ours)
    return joined


@pytest.mark.parametrize("coef", ["caseSLE", "cellrN"])
def test_coefficient_test_matches_dss_on_rrbs(rrbs: FeatureMatrix, coef: str) -> None:
    fit = dml_fit_multifactor(rrbs, "~ case + cell", sites_per_block=1400)
    assert fit.design.columns == ("(Intercept)", "caseSLE", "cellrN")
    ours = dml_test_multifactor(fit, coef=coef)
    ref = pd.read_csv(REF / f"dss_multifactor_{coef}.tsv.gz", sep="\t")
    j = _against(ours, ref)
    for col in ("stat", "pvals", "fdrs"):
        _close(j[col].to_numpy(), j[f"{col}_dss"].to_numpy(), f"{coef} {col}")
    # the reference's significant CpGs are ours (not a 1e-9 agreement of nothing)
    assert (j["fdrs_dss"] < 0.05).sum() > 0
    assert ((j["fdrs"] < 0.05) == (j["fdrs_dss"] < 0.05)).all()


def _run_dss(script: str, tmp: Path) -> None:
    (tmp / "run.R").write_text(script)
    r = subprocess.run(
        ["Rscript", str(tmp / "run.R")], capture_output=True, text=True, check=False, cwd=tmp
    )
    assert r.returncode == 0, r.stderr[-2000:]


@needs_dss
def test_smoothed_fit_term_tests_and_phi_match_dss(rrbs: FeatureMatrix, tmp_path: Path) -> None:
    """DSS run here: smoothing (its halo crosses our 700-site chunks), a one-term test
    and a two-term test, and the dispersions."""
    _run_dss(
        """suppressMessages(library(DSS)); data(RRBS)
f <- DMLfit.multiFactor(RRBS, design=design, formula=~case+cell, smoothing=TRUE,
                        smoothing.span=500)
write.table(DMLtest.multiFactor(f, coef="caseSLE"), "smooth_caseSLE.tsv", sep="\\t",
            quote=FALSE, row.names=FALSE)
write.table(DMLtest.multiFactor(f, term="cell"), "smooth_cell.tsv", sep="\\t",
            quote=FALSE, row.names=FALSE)
g <- DMLfit.multiFactor(RRBS, design=design, formula=~case+cell)
write.table(DMLtest.multiFactor(g, term=c("case", "cell")), "terms.tsv", sep="\\t",
            quote=FALSE, row.names=FALSE)
write.table(data.frame(chr=as.character(seqnames(g$gr)), pos=start(g$gr), phi=g$fit$phi),
            "phi.tsv", sep="\\t", quote=FALSE, row.names=FALSE)
""",
        tmp_path,
    )
    smooth = dml_fit_multifactor(rrbs, "~ case + cell", smoothing=True, smoothing_span=500)
    plain = dml_fit_multifactor(rrbs, "~ case + cell")
    cases = [
        (dml_test_multifactor(smooth, coef="caseSLE"), "smooth_caseSLE.tsv"),
        (dml_test_multifactor(smooth, term="cell"), "smooth_cell.tsv"),
        (dml_test_multifactor(plain, term=["case", "cell"]), "terms.tsv"),
    ]
    for ours, name in cases:
        j = _against(ours, pd.read_csv(tmp_path / name, sep="\t"))
        for col in ("stat", "pvals", "fdrs"):
            _close(j[col].to_numpy(), j[f"{col}_dss"].to_numpy(), f"{name} {col}")
    # smoothing changes the answer (so the agreement above is about the smoothing)
    unsmoothed = dml_test_multifactor(plain, coef="caseSLE")
    assert not np.allclose(unsmoothed["stat"], cases[0][0]["stat"])
    coefs = plain.coefficients()
    phi = pd.read_csv(tmp_path / "phi.tsv", sep="\t")
    j = phi.merge(
        pd.DataFrame({"chr": plain.sites["contig"], "pos": plain.sites["position"]}).assign(
            ours=coefs["phi"].to_numpy()
        ),
        on=["chr", "pos"],
    )
    _close(j["ours"].to_numpy(), j["phi"].to_numpy(), "phi")


def _store(
    tmp_path: Path, sites: pd.DataFrame, m: np.ndarray, t: np.ndarray, samples: pd.DataFrame
):  # type: ignore[no-untyped-def]
    root = DataRoot(str(tmp_path / "root"))
    path = root.path("v1")
    write_feature_matrix(
        root,
        path,
        [FeatureBlock(sites, {"methylated": m.astype(np.int32), "total": t.astype(np.int32)})],
        samples=samples,
        arrays={"methylated": "int32", "total": "int32"},
        features_per_chunk=97,
        samples_per_chunk=4,
    )
    return open_feature_matrix(root, path)


def _paired_cohort(
    n_subjects: int, n_sites: int, *, dropout: float, seed: int, subject_sd: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Baseline and progression per patient: a per-patient offset at every site on the
    arcsine scale (the subject effect) and a planted phase effect at 10% of the sites."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(-0.6, 0.6, n_sites)
    subject = rng.normal(0, subject_sd, n_subjects)
    planted = rng.random(n_sites) < 0.1
    effect = np.where(planted, rng.choice([-0.9, 0.9], n_sites), 0.0)
    rows, ms, ts = [], [], []
    for i in range(n_subjects):
        for phase in ("baseline", "progression"):
            rows.append(
                {"sample_id": f"P{i + 1}-{phase[:4]}", "subject": f"P{i + 1:02d}", "phase": phase}
            )
            eta = np.clip(base + subject[i] + (effect if phase == "progression" else 0), -1.5, 1.5)
            mu = (np.sin(eta) + 1) / 2
            depth = rng.poisson(rng.uniform(15, 40), n_sites)
            depth[rng.random(n_sites) < dropout] = 0
            phi = 0.02
            p = rng.beta(mu * (1 / phi - 1) + 1e-9, (1 - mu) * (1 / phi - 1) + 1e-9)
            ms.append(rng.binomial(depth, p))
            ts.append(depth)
    sites = pd.DataFrame(
        {
            "contig": np.repeat(["chr1", "chr2"], [n_sites // 2, n_sites - n_sites // 2]),
            "position": np.concatenate(
                [
                    np.cumsum(rng.integers(5, 120, n_sites // 2)),
                    np.cumsum(rng.integers(5, 120, n_sites - n_sites // 2)),
                ]
            ),
            "strand": "*",
        }
    )
    return pd.DataFrame(rows), sites, np.stack(ms, 1), np.stack(ts, 1), planted, subject


@needs_dss
def test_missing_coverage_rules_match_dss(tmp_path: Path) -> None:
    """With samples at zero depth DSS drops them, skips a site with fewer than p + 1
    left or a singular design on the rest (here: both samples of a patient missing),
    and keeps n = all samples in the dispersion: the NA sites and the values agree."""
    samples, sites, m, t, _, _ = _paired_cohort(4, 3000, dropout=0.25, seed=5)
    store = _store(tmp_path, sites, m, t, samples)
    frame = sites[["contig", "position"]].rename(columns={"contig": "chr", "position": "pos"})
    frame.join(pd.DataFrame(m, columns=[f"M{j}" for j in range(m.shape[1])])).join(
        pd.DataFrame(t, columns=[f"N{j}" for j in range(t.shape[1])])
    ).to_csv(tmp_path / "counts.tsv", sep="\t", index=False)
    samples.to_csv(tmp_path / "design.tsv", sep="\t", index=False)
    _run_dss(
        """suppressMessages(library(DSS)); suppressMessages(library(bsseq))
x <- read.delim("counts.tsv"); d <- read.delim("design.tsv")
k <- (ncol(x) - 2) %/% 2 - 1
bs <- BSseq(chr=x$chr, pos=x$pos, M=unname(as.matrix(x[, paste0("M", 0:k)])),
            Cov=unname(as.matrix(x[, paste0("N", 0:k)])), sampleNames=d$sample_id)
f <- DMLfit.multiFactor(bs, design=d, formula=~phase+subject)
write.table(DMLtest.multiFactor(f, coef="phaseprogression"), "phase.tsv", sep="\\t",
            quote=FALSE, row.names=FALSE)
""",
        tmp_path,
    )
    ref = pd.read_csv(tmp_path / "phase.tsv", sep="\t")
    ours = dml_test_multifactor(
        dml_fit_multifactor(store, "~ phase + subject"), coef="phaseprogression"
    )
    covered = (t > 0).sum(axis=1)
    na = ref["stat"].isna().to_numpy()
    assert na.sum() > 50 and (~na & (covered < 8)).sum() > 50  # both rules exercised
    lone = np.zeros(len(t), dtype=bool)  # a patient with neither sample covered
    for i in range(4):
        lone |= (t[:, 2 * i] == 0) & (t[:, 2 * i + 1] == 0)
    assert (na[(covered >= 6) & lone]).all() and ((covered >= 6) & lone).sum() > 10
    for col in ("stat", "pvals", "fdrs"):
        _close(ours[col].to_numpy(), ref[col].to_numpy(), col)


def test_planted_phase_effect_is_found_and_the_subject_effect_absorbed(tmp_path: Path) -> None:
    samples, sites, m, t, planted, subject = _paired_cohort(
        6, 4000, dropout=0.05, seed=3, subject_sd=0.4
    )
    store = _store(tmp_path, sites, m, t, samples)
    paired_fit = dml_fit_multifactor(store, "~ phase + subject")
    paired = dml_test_multifactor(paired_fit, coef="phaseprogression")
    unpaired = dml_test_multifactor(dml_fit_multifactor(store, "~ phase"), coef="phaseprogression")
    hit = paired["fdrs"].to_numpy() < 0.05
    recall = hit[planted].mean()
    false = hit[~planted].sum() / max(hit.sum(), 1)
    # FDP up to 0.1 at a nominal 0.05: DSS refers the Wald statistic to the normal with
    # only 12 - 7 residual degrees of freedom, which is somewhat liberal (0.07 here)
    assert recall > 0.8 and false < 0.1, (recall, false)
    # ignoring the patients leaves their offsets in the residual: weaker
    assert (unpaired["fdrs"].to_numpy() < 0.05)[planted].mean() < recall - 0.2
    # the subject coefficients carry the planted offsets (relative to patient 1)
    coefs = paired_fit.coefficients()
    got = coefs[[f"subjectP{i + 1:02d}" for i in range(1, 6)]].median(axis=0).to_numpy()
    np.testing.assert_allclose(got, subject[1:] - subject[0], atol=0.05)
    # the planted direction: progression higher where the effect is positive
    assert (np.sign(paired["stat"].to_numpy()[planted & hit]) != 0).all()


def _refuse(*args: object, **kwargs: object) -> None:
    raise RuntimeError("a dask computation ran while only a graph should be built")


def test_fit_stays_lazy_until_the_test(tmp_path: Path) -> None:
    import dask

    samples, sites, m, t, _, _ = _paired_cohort(3, 500, dropout=0.1, seed=1)
    store = _store(tmp_path, sites, m, t, samples)
    with dask.config.set(scheduler=_refuse):
        fit = dml_fit_multifactor(store, "~ phase + subject", smoothing=True)
        fit2 = dml_fit_multifactor(store, "~ phase + subject")
    a = dml_test_multifactor(fit2, coef="phaseprogression")
    b = dml_test_multifactor(fit2.compute(), coef="phaseprogression")
    pd.testing.assert_frame_equal(a, b)
    assert len(dml_test_multifactor(fit, coef=1)) == 500


def test_design_columns_are_rs() -> None:
    """Column names and order as R's model.matrix gives them (R 4, DSS session)."""
    d = pd.DataFrame(
        {
            "a": ["x", "y", "z", "x", "y", "z"],
            "b": ["u", "v", "u", "v", "u", "v"],
            "x": [1.5, 2, 3, 4, 5, 7],
        }
    )
    want = {
        "~a+b": ["(Intercept)", "ay", "az", "bv"],
        "~a*b": ["(Intercept)", "ay", "az", "bv", "ay:bv", "az:bv"],
        "~0+a+b": ["ax", "ay", "az", "bv"],
        "~b:a+a+b": ["(Intercept)", "ay", "az", "bv", "bv:ay", "bv:az"],
        "~x+a": ["(Intercept)", "x", "ay", "az"],
        "~a+x:a": ["(Intercept)", "ay", "az", "ax:x", "ay:x", "az:x"],
        "~ x + a + b - 1": ["x", "ax", "ay", "az", "bv"],
    }
    for formula, cols in want.items():
        dm = design_matrix(formula, d)
        assert list(dm.columns) == cols, formula
    dm = design_matrix("~ a * b", d)
    assert dm.terms == ("a", "b", "a:b") and dm.assign == (0, 1, 1, 2, 3, 3)
    np.testing.assert_array_equal(dm.matrix[:, 4], [0, 1, 0, 0, 0, 0])  # ay:bv
    np.testing.assert_array_equal(dm.matrix[:, 1], [0, 1, 0, 0, 1, 0])


@pytest.mark.parametrize(
    ("formula", "rule"),
    [
        ("~ case +", "design-formula"),
        ("y ~ case", "design-formula"),
        ("~ case - cell", "design-formula"),
        ("~ log(x)", "design-formula"),
        ("~ case + colour", "unknown-column"),
        ("~ case + twin", "rank-deficient-design"),
        ("~ case * cell * twin", "rank-deficient-design"),
    ],
)
def test_bad_designs_are_one_line_errors(formula: str, rule: str) -> None:
    d = pd.DataFrame({"case": list("AABBAB"), "cell": list("XYXYYX"), "twin": list("AABBAB")})
    with pytest.raises(MethodInputError) as e:
        design_matrix(formula, d)
    assert f"[{rule}]" in str(e.value) and "\n" not in str(e.value)


def test_too_few_samples_and_unknown_coefficients(tmp_path: Path) -> None:
    samples, sites, m, t, _, _ = _paired_cohort(2, 200, dropout=0.0, seed=2)
    store = _store(tmp_path, sites, m, t, samples)
    with pytest.raises(MethodInputError, match=r"\[design-degrees-of-freedom\]"):
        dml_fit_multifactor(store, "~ phase + subject")  # 4 samples, 3 coefficients
    fit = dml_fit_multifactor(store, "~ phase")
    with pytest.raises(MethodInputError, match=r"\[unknown-coefficient\].*phaseprogression"):
        dml_test_multifactor(fit, coef="phaseprog")
    with pytest.raises(MethodInputError, match=r"\[unknown-term\]"):
        dml_test_multifactor(fit, term="subject")
    with pytest.raises(MethodInputError, match=r"\[one-test\]"):
        dml_test_multifactor(fit, coef=1, term="phase")


def test_bh_is_rs_p_adjust() -> None:
    # R: p.adjust(c(0.01, NA, 0.04, 0.03), "BH") = 0.03 NA 0.04 0.04
    np.testing.assert_allclose(
        bh_adjust([0.01, np.nan, 0.04, 0.03]), [0.03, np.nan, 0.04, 0.04], equal_nan=True
    )
    rng = np.random.default_rng(0)
    p = rng.random(1000) ** 3
    from scipy.stats import false_discovery_control

    np.testing.assert_allclose(bh_adjust(p), false_discovery_control(p), rtol=1e-12)


def test_reference_level_and_sample_subset(tmp_path: Path) -> None:
    from resistomics.modalities.methylation._multifactor import multifactor_table

    samples, sites, m, t, planted, _ = _paired_cohort(4, 600, dropout=0.05, seed=8)
    store = _store(tmp_path, sites, m, t, samples)
    fit = dml_fit_multifactor(store, "~ phase + subject")
    flipped = dml_fit_multifactor(store, "~ phase + subject", reference={"phase": "progression"})
    assert flipped.design.columns[1] == "phasebaseline"
    a = multifactor_table(fit, "phaseprogression")
    b = multifactor_table(flipped, "phasebaseline")
    np.testing.assert_allclose(a["stat"], -b["stat"], rtol=1e-9)
    np.testing.assert_allclose(a["pval"], b["pval"], rtol=1e-9)
    assert (a["coef"][planted].abs() > 0.3).mean() > 0.8
    with pytest.raises(MethodInputError, match=r"\[reference-level\]"):
        dml_fit_multifactor(store, "~ phase", reference={"phase": "relapse"})
    # a subset of the samples is the fit of a store holding only those samples
    keep = [0, 1, 2, 3, 6, 7]
    sub = dml_test_multifactor(
        dml_fit_multifactor(store, "~ phase + subject", samples=keep), coef=1
    )
    alone = _store(tmp_path / "sub", sites, m[:, keep], t[:, keep], samples.iloc[keep])
    want = dml_test_multifactor(dml_fit_multifactor(alone, "~ phase + subject"), coef=1)
    pd.testing.assert_frame_equal(sub, want)


def test_design_dml_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``resistomics methylation dml DATASET --contrast ... --design ...`` publishes DSS's
    multi-factor numbers as a methylation.dml result; bad designs are one line."""
    from typer.testing import CliRunner

    from flows.cli import app
    from resistomics.storage import read_table

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
    monkeypatch.setenv("RESISTOMICS_MODALITIES__METHYLATION__DML_SITES_PER_BLOCK", "1000")
    runner = CliRunner()
    r = runner.invoke(app, ["study", "register", str(RRBS / "samples.tsv"), "--study", "rrbs"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", str(folder), "--study", "rrbs", "--modality", "methylation"])
    assert r.exit_code == 0, r.output
    base = ["methylation", "dml", "rrbs/rrbs"]
    runs = {
        "caseSLE": [*base, "--contrast", "case:SLE vs HC", "--design", "~ case + cell"],
        "cellrN": [*base, "--design", "~ case + cell", "--coef", "cellrN"],
    }
    names = {
        "caseSLE": "rrbs/rrbs.dml.design-case_cell.case_SLE_vs_HC",
        "cellrN": "rrbs/rrbs.dml.design-case_cell.cellrN",
    }
    for coef, args in runs.items():
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        ws = Workspace.open(Settings(data_root=str(tmp_path / "root")))
        try:
            result = ws.catalog.resolve(names[coef])
            assert result.dataset_type == "methylation.dml"
            assert result.parameters["method"] == "dss-multifactor"
            assert result.parameters["coef"] in (None, coef)
            table = read_table(ws.root, f"{ws.root.to_path(result.uri)}/dml.parquet")
        finally:
            ws.close()
        ref = pd.read_csv(REF / f"dss_multifactor_{coef}.tsv.gz", sep="\t")
        j = ref.merge(
            table.astype({"contig": str}),
            left_on=["chr", "pos"],
            right_on=["contig", "position"],
            suffixes=("_dss", ""),
        )
        assert len(j) == len(ref) == len(table)
        for ours, dss in (("stat", "stat_dss"), ("pval", "pvals"), ("fdr", "fdrs")):
            _close(j[ours].to_numpy(), j[dss].to_numpy(), f"{coef} {ours}")
        assert (
            np.isfinite(table["mu1"]).all()
            and ((table["diff"] > 0) == (table["coef"] > 0)).mean() > 0.9
        )
    r = runner.invoke(app, runs["caseSLE"])
    assert r.exit_code == 0 and "already up to date" in r.output, r.output
    bad = {
        "~ case +": "design-formula",
        "~ case + colour": "unknown-column",
        "~ case + sample_id": "rank-deficient-design",
    }
    for formula, rule in bad.items():
        r = runner.invoke(app, [*base, "--contrast", "case:SLE vs HC", "--design", formula])
        assert r.exit_code != 0 and f"[{rule}]" in r.output and "Traceback" not in r.output, (
            r.output
        )
    r = runner.invoke(app, [*base, "--contrast", "cell:rN vs aN", "--design", "~ case"])
    assert r.exit_code != 0 and "[contrast-not-in-design]" in r.output, r.output
    r = runner.invoke(app, [*base, "--design", "~ case + cell", "--coef", "caseXX"])
    assert r.exit_code != 0 and "[unknown-coefficient]" in r.output, r.output
