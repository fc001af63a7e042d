"""Two-group DML test (DSS ``DMLtest``): parity with DSS 2.46, block independence, planted
signal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

from conftest import land
from resistomics.catalog import SampleRow, parse_sample_sheet
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import MethodInputError
from resistomics.modalities.methylation._dml import (
    DML_COLUMNS,
    StoreCounts,
    _log_bb_ratio,
    _phi_kernel,
    benjamini_hochberg,
    brent_minimize,
    dml_test,
    write_dml_parts,
)
from resistomics.modalities.methylation._simulate import (
    simulate_methylation_cohort,
    write_methylation_files,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import FeatureMatrix, open_feature_matrix
from shared_data import SHARED_DATA

RRBS = SHARED_DATA / "methylation_rrbs"
REFERENCE = RRBS / "dss_2.46.0"
# Agreement with DSS 2.46 achieved on the RRBS data (5000 CpGs): the largest relative
# difference over every column is 1.5e-8 (diff and stat, where diff is near 0: an
# absolute difference ~1e-12), phi ~3e-10 (the same Brent steps as R's optimize; the
# objective differs from R's lbeta/lchoose in the last bits), mu ~3e-11, p-values and
# FDR ~1e-9. The bar is 1e-6 relative (1e-12 absolute for values near 0).
RTOL = 1e-6
ATOL = 1e-12
ATOL_STAT = 1e-9  # stat = diff / se, se ~ 0.01 .. 0.3
COMPARED = ("mu1", "mu2", "diff", "diff_se", "stat", "phi1", "phi2", "pval", "fdr")


def _sync(*args: Any) -> Any:
    return dask.compute(*args, scheduler="sync")


@pytest.fixture(scope="module")
def rrbs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, FeatureMatrix]]:
    """The 16 RRBS Bismark coverage files through the real ingest, 1000 sites a chunk."""
    if not RRBS.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    root = tmp_path_factory.mktemp("rrbs")
    ws = Workspace.open(
        Settings(
            data_root=str(root / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False),
            modalities={"methylation": {"sites_per_chunk": 1000}},
        )
    )
    ws.catalog.register_study("rrbs", parse_sample_sheet(RRBS / "samples.tsv"))
    folder = root / "cov"
    folder.mkdir()
    for f in RRBS.glob("*.bismark.cov.gz"):
        (folder / f.name).write_bytes(f.read_bytes())
    out = ingest(ws, land(ws, folder, "rrbs", modality="methylation"), study="rrbs")
    assert out.status == "published", out.message
    store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))
    yield ws, store
    ws.close()


def _groups(store: FeatureMatrix, column: str, a: str, b: str) -> tuple[np.ndarray, np.ndarray]:
    values = store.samples[column].astype(str).to_numpy()
    return np.flatnonzero(values == a), np.flatnonzero(values == b)


def _run(store: FeatureMatrix, **kw: Any) -> pd.DataFrame:
    g1, g2 = _groups(store, "case", "SLE", "HC")
    f = store.features
    return dml_test(
        StoreCounts(store),
        f["contig"].to_numpy(),
        f["position"].to_numpy(),
        g1,
        g2,
        compute=_sync,
        **kw,
    )


@pytest.mark.parametrize(
    ("smoothing", "reference"),
    [(False, "dss_dmltest_SLE_vs_HC.tsv.gz"), (True, "dss_dmltest_smoothed_SLE_vs_HC.tsv.gz")],
)
def test_agrees_with_dss_on_real_rrbs(
    rrbs: tuple[Workspace, FeatureMatrix], smoothing: bool, reference: str
) -> None:
    _, store = rrbs
    ours = _run(store, smoothing=smoothing, span=500, sites_per_block=700)
    assert tuple(ours.columns) == DML_COLUMNS
    ref = pd.read_csv(REFERENCE / reference, sep="\t").rename(
        columns={"chr": "contig", "pos": "position", "diff.se": "diff_se"}
    )
    assert len(ours) == len(ref) == 5000
    both = ours.merge(ref, on=["contig", "position"], suffixes=("", "_dss"), validate="1:1")
    assert len(both) == len(ref)  # the same sites tested
    for col in COMPARED:
        atol = ATOL_STAT if col == "stat" else ATOL
        np.testing.assert_allclose(both[col], both[f"{col}_dss"], rtol=RTOL, atol=atol, err_msg=col)
    # the biology DSS finds (SLE vs HC differences in this RRBS set) is found too
    assert (both["fdr"] < 0.05).sum() == (both["fdr_dss"] < 0.05).sum()


def test_results_do_not_depend_on_the_blocks(rrbs: tuple[Workspace, FeatureMatrix]) -> None:
    """Blocks of 37 sites (far below the smoothing halo, so a halo spans many blocks)
    give what one block of all sites gives."""
    _, store = rrbs
    for smoothing in (False, True):
        whole = _run(store, smoothing=smoothing, sites_per_block=store.n_features)
        small = _run(store, smoothing=smoothing, sites_per_block=37)
        pd.testing.assert_frame_equal(whole[["contig", "position"]], small[["contig", "position"]])
        for col in COMPARED:
            # window sums are cumsum differences from each block's start: rounding ~1e-13
            # absolute, so diff near 0 (and stat = diff / se) carry it relatively
            atol = 1e-9 if col == "stat" else 1e-12
            np.testing.assert_allclose(small[col], whole[col], rtol=1e-9, atol=atol, err_msg=col)


@pytest.mark.parametrize("smoothing", [False, True])
def test_parts_written_by_the_tasks_equal_the_in_memory_table(
    rrbs: tuple[Workspace, FeatureMatrix], smoothing: bool, tmp_path: Path
) -> None:
    """``write_dml_parts`` (each block's rows a Parquet part written by its task, the
    dispersions and block tables through scratch files) publishes exactly the table
    that the in-memory ``dml_test`` gathers, read back from Parquet: every bit, the
    contig categories, the order; the scratch files are gone."""
    from resistomics.storage import DataRoot, read_table, write_table

    _, store = rrbs
    g1, g2 = _groups(store, "case", "SLE", "HC")
    f = store.features
    root = DataRoot(str(tmp_path))
    whole = _run(store, smoothing=smoothing, sites_per_block=700)
    write_table(root, str(tmp_path / "one.parquet"), whole)
    rows = write_dml_parts(
        StoreCounts(store),
        f["contig"].to_numpy(),
        f["position"].to_numpy(),
        g1,
        g2,
        root=root,
        directory=str(tmp_path / "dml.parquet"),
        metadata={"resistomics.test": "lineage"},
        smoothing=smoothing,
        sites_per_block=700,
        compute=_sync,
    )
    names = sorted(p.name for p in (tmp_path / "dml.parquet").iterdir())
    assert names == [f"part-{i:05d}.parquet" for i in range(8)]  # 5000 sites / 700
    assert rows == len(whole) == 5000
    parted = read_table(root, str(tmp_path / "dml.parquet"))
    pd.testing.assert_frame_equal(
        parted, read_table(root, str(tmp_path / "one.parquet")), check_exact=True
    )
    import pyarrow.parquet as pq

    meta = pq.read_schema(tmp_path / "dml.parquet" / names[3]).metadata
    assert meta[b"resistomics.test"] == b"lineage"


DSS_EQUAL_DISP = r"""
suppressMessages(library(DSS)); data(RRBS)
g1 <- sampleNames(RRBS)[design$case == "SLE"]; g2 <- sampleNames(RRBS)[design$case == "HC"]
d <- DMLtest(RRBS, group1=g1, group2=g2, equal.disp=TRUE, smoothing=as.logical(commandArgs(TRUE)[2]))
write.table(d, commandArgs(TRUE)[1], sep="\t", quote=FALSE, row.names=FALSE)
"""


@pytest.mark.parametrize("smoothing", [False, True])
def test_equal_dispersion_agrees_with_dss(
    rrbs: tuple[Workspace, FeatureMatrix], tmp_path: Path, smoothing: bool
) -> None:
    """``equal_disp`` (no reference file ships): DSS 2.46 run here through Rscript on its
    own copy of the RRBS data, the same tolerance as the shipped references."""
    import shutil
    import subprocess

    if shutil.which("Rscript") is None:
        pytest.skip("Rscript (r-bioc-dss) not installed")
    _, store = rrbs
    script = tmp_path / "dss.R"
    script.write_text(DSS_EQUAL_DISP)
    out = tmp_path / "dss.tsv"
    proc = subprocess.run(
        ["Rscript", str(script), str(out), str(smoothing).upper()],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0 and "there is no package called" in proc.stderr:
        pytest.skip("DSS not installed for R")
    assert proc.returncode == 0, proc.stderr[-2000:]
    ref = pd.read_csv(out, sep="\t").rename(
        columns={"chr": "contig", "pos": "position", "diff.se": "diff_se"}
    )
    ours = _run(store, equal_disp=True, smoothing=smoothing, sites_per_block=900)
    assert (ours["phi1"] == ours["phi2"]).all()
    both = ours.merge(ref, on=["contig", "position"], suffixes=("", "_dss"), validate="1:1")
    assert len(both) == len(ref) == len(ours)
    for col in COMPARED:
        atol = ATOL_STAT if col == "stat" else ATOL
        np.testing.assert_allclose(both[col], both[f"{col}_dss"], rtol=RTOL, atol=atol, err_msg=col)


def test_refuses_groups_dss_refuses(rrbs: tuple[Workspace, FeatureMatrix]) -> None:
    _, store = rrbs
    f = store.features
    args = (StoreCounts(store), f["contig"].to_numpy(), f["position"].to_numpy())
    with pytest.raises(MethodInputError, match="share a sample"):
        dml_test(*args, [0, 1], [1, 2])
    with pytest.raises(MethodInputError, match="one sample"):
        dml_test(*args, [0], [1, 2])


def test_brent_matches_a_dense_search() -> None:
    """The vectorised Brent minimiser finds each parabola's and each quartic's minimum."""
    rng = np.random.default_rng(3)
    centre = rng.uniform(-4.5, -0.5, 200)
    width = rng.uniform(0.2, 3.0, 200)

    def f(u: np.ndarray, idx: np.ndarray) -> np.ndarray:
        z = (u - centre[idx]) / width[idx]
        return z**2 + 0.3 * z**4

    got = brent_minimize(f, 200, -5.0, np.log(0.99), 1e-6)
    np.testing.assert_allclose(got, centre, atol=1e-5)


def test_compiled_beta_binomial_terms_match_lgamma() -> None:
    """The rising-factorial products (<= 64 reads) and the lgamma branch (above) equal
    ``lbeta(n - x + beta, x + alpha) - lbeta(beta, alpha)`` from scipy's ``betaln``
    to 1e-12 relative (1e-12 absolute near 0), across the switch."""
    rng = np.random.default_rng(5)
    n = np.concatenate([[0, 1, 63, 64, 65, 300], rng.integers(0, 120, 400)]).astype(float)
    x = np.floor(rng.uniform(0, 1, n.size) * (n + 1))
    tmp = 1 / np.exp(rng.uniform(-5, np.log(0.99), n.size)) - 1
    alpha = rng.uniform(1e-4, 1 - 1e-4, n.size) * tmp
    beta = tmp - alpha
    want = special.betaln(n - x + beta, x + alpha) - special.betaln(beta, alpha)
    got = np.array(
        [_log_bb_ratio(*a) for a in zip(alpha, beta, tmp, x, n, strict=True)], dtype=float
    )
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_compiled_minimiser_matches_the_vectorised_one() -> None:
    """The compiled per-site Brent on the DML objective lands where the vectorised
    :func:`brent_minimize` does on the same objective written with scipy's ``betaln``
    (both R's ``Brent_fmin``; they differ only by the objectives' rounding, which moves
    the last parabolic steps by ~1e-9), to 1e-7 in ``log phi``; and each result is a
    minimum to the tolerance (no grid point more than 0.002 away is lower)."""
    rng = np.random.default_rng(6)
    sites, reps = 300, 5
    n = rng.poisson(12, (sites, reps)).astype(float)
    n[::9, 1] = 0
    n[::13, 2] = 90
    x = rng.binomial(n.astype(int), rng.uniform(0.02, 0.98, (sites, 1))).astype(float)
    mu = np.repeat(((x.sum(1) + 0.3) / (n.sum(1) + 1))[:, None], reps, 1)
    m0, tau = -3.0, 0.8
    log_norm = np.log(np.sqrt(2 * np.pi)) + np.log(tau)
    const = (special.gammaln(n + 1) - special.gammaln(x + 1) - special.gammaln(n - x + 1)).sum(1)

    def objective(u: np.ndarray, idx: np.ndarray) -> np.ndarray:
        t = (1 / np.exp(u) - 1)[:, None]
        a, b = mu[idx] * t, (1 - mu[idx]) * t
        ll = (special.betaln(n[idx] - x[idx] + b, x[idx] + a) - special.betaln(b, a)).sum(1)
        z = (u - m0) / tau
        return -(const[idx] + ll - (log_norm + 0.5 * z * z))

    lower, upper = -5.0, float(np.log(0.99))
    want = brent_minimize(objective, sites, lower, upper, 0.001)
    got = _phi_kernel(x, n, mu, const, m0, tau, log_norm, lower, upper, 0.001)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
    grid = np.linspace(lower, upper, 2001)
    dense = np.stack([objective(np.full(sites, g), np.arange(sites)) for g in grid], axis=1)
    far = np.abs(grid[None, :] - got[:, None]) > 0.002
    assert (objective(got, np.arange(sites))[:, None] <= dense + np.where(far, 0, np.inf)).all()


def test_benjamini_hochberg_matches_its_definition() -> None:
    rng = np.random.default_rng(0)
    p = np.concatenate([rng.uniform(size=500), rng.uniform(0, 1e-4, 50), [0.5, 0.5, 0.5]])
    n = len(p)
    order = np.argsort(p)
    want = np.empty(n)
    for rank_i, i in enumerate(order, start=1):
        want[i] = min(1.0, min(p[order[k]] * n / (k + 1) for k in range(rank_i - 1, n)))
    np.testing.assert_allclose(benjamini_hochberg(p), want, rtol=1e-12)


# ----------------------------------------------------------------------- planted signal
@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sim = simulate_methylation_cohort(
        n_subjects=5, n_sites=6000, n_dmrs=6, dmr_cpgs=15, delta=0.4, mean_depth=25, seed=4
    )
    root = tmp_path_factory.mktemp("planted")
    ws = Workspace.open(
        Settings(
            data_root=str(root / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False),
            modalities={"methylation": {"sites_per_chunk": 512}},
        )
    )
    ws.catalog.register_study(
        "sim",
        [
            SampleRow(
                sample_id=r.sample_id, subject_id=r.subject_id, phase=r.phase, timepoint=r.timepoint
            )
            for r in sim.samples.itertuples()
        ],
    )
    folder = root / "cov"
    write_methylation_files(sim, folder, "bismark-cov", gzip_files=True)
    out = ingest(ws, land(ws, folder, "sim", modality="methylation"), study="sim")
    assert out.status == "published", out.message
    store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))
    yield sim, store
    ws.close()


@pytest.mark.parametrize("smoothing", [False, True])
def test_planted_dmls_are_found_and_nulls_are_uniform(planted: Any, smoothing: bool) -> None:
    sim, store = planted
    g1, g2 = _groups(store, "phase", "progression", "baseline")
    f = store.features
    res = dml_test(
        StoreCounts(store),
        f["contig"].to_numpy(),
        f["position"].to_numpy(),
        g1,
        g2,
        smoothing=smoothing,
        sites_per_block=1000,
        compute=_sync,
    )
    in_dmr = np.zeros(len(res), dtype=bool)
    sign = np.zeros(len(res))
    for d in sim.dmrs.itertuples():
        hit = (res["contig"] == d.contig) & res["position"].between(d.start, d.end)
        in_dmr |= hit.to_numpy()
        sign[hit.to_numpy()] = np.sign(d.delta)
    assert in_dmr.sum() >= 0.9 * sim.dmrs["n_cpgs"].sum()
    found = res["fdr"].to_numpy() < 0.05
    # planted sites: most called at 5 vs 5 samples, in the planted direction
    # (progression - baseline), and ranked above the nulls
    assert found[in_dmr].mean() > 0.6
    assert (np.sign(res["diff"].to_numpy()[in_dmr & found]) == sign[in_dmr & found]).all()
    assert np.abs(res["diff"].to_numpy()[in_dmr]).mean() == pytest.approx(0.4, abs=0.1)
    # null sites far from any DMR (smoothing borrows from +-250 bp neighbours)
    far = np.ones(len(res), dtype=bool)
    for d in sim.dmrs.itertuples():
        near = (res["contig"] == d.contig) & res["position"].between(d.start - 600, d.end + 600)
        far &= ~near.to_numpy()
    p0 = res["pval"].to_numpy()[far]
    z = np.abs(res["stat"].to_numpy())
    auc = stats.mannwhitneyu(z[in_dmr], z[far]).statistic / (in_dmr.sum() * far.sum())
    assert auc > 0.95
    if not smoothing:
        # unsmoothed Wald p-values of null sites are close to uniform
        assert stats.kstest(p0, "uniform").statistic < 0.08
        assert 0.02 < (p0 < 0.05).mean() < 0.09
    assert (res["fdr"].to_numpy()[far] < 0.05).mean() < 0.01


# ----------------------------------------------------------------------- the analysis
def test_dml_analysis_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``resistomics methylation dml`` on the RRBS cohort: a published methylation.dml
    result with lineage, DSS's numbers (smoothed), its artifacts and volcano; a second
    run is unchanged; a bad arm is one line."""
    from typer.testing import CliRunner

    from flows.cli import app
    from resistomics.modalities import modality
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
    monkeypatch.setenv("RESISTOMICS_MODALITIES__METHYLATION__DML_SITES_PER_BLOCK", "1500")
    runner = CliRunner()
    r = runner.invoke(app, ["study", "register", str(RRBS / "samples.tsv"), "--study", "rrbs"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", str(folder), "--study", "rrbs", "--modality", "methylation"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["methylation", "dml", "--help"])
    assert r.exit_code == 0 and "--smoothing" in r.output and "DMLtest" in r.output
    args = ["methylation", "dml", "rrbs/rrbs", "--contrast", "case:SLE vs HC", "--smoothing"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "rrbs.dml.smoothed-span500.case_SLE_vs_HC" in r.output, r.output
    ws = Workspace.open(Settings(data_root=str(tmp_path / "root")))
    try:
        result = ws.catalog.resolve("rrbs/rrbs.dml.smoothed-span500.case_SLE_vs_HC")
        assert result.dataset_type == "methylation.dml"
        assert [ws.catalog.get_version(i).ref for i in result.parent_ids] == ["rrbs/rrbs@v1"]
        assert result.parameters["contrast"]["a"] == "SLE" and result.parameters["smoothing"]
        parted = Path(ws.root.to_path(result.uri)) / "dml.parquet"
        assert len(list(parted.glob("part-*.parquet"))) == 4  # blocks of 1500 CpGs
        assert tuple(result.shape) == (5000, len(DML_COLUMNS))
        report = result.validation_report
        assert report["success"] and {e["rule"] for e in report["expectations"]} >= {
            "unique-sites",
            "pvalue-range",
            "dispersion-range",
        }
        table = read_table(ws.root, str(parted))
        ref = pd.read_csv(REFERENCE / "dss_dmltest_smoothed_SLE_vs_HC.tsv.gz", sep="\t")
        both = table.astype({"contig": str}).merge(
            ref, left_on=["contig", "position"], right_on=["chr", "pos"], suffixes=("", "_dss")
        )
        assert len(both) == len(table) == len(ref)
        for col in ("stat", "pval", "fdr", "phi1"):
            np.testing.assert_allclose(both[col], both[f"{col}_dss"], rtol=RTOL, atol=ATOL_STAT)
        analysis = modality("methylation").analysis("dml")
        assert analysis.artifacts is not None and analysis.plot is not None
        artifacts = analysis.artifacts(ws, result)
        top = artifacts[0].table
        assert top is not None and len(top) == 50
        assert top["pval"].is_monotonic_increasing
        assert top["pval"].iloc[0] == table["pval"].min()
        assert "at FDR < 0.05" in (artifacts[1].markdown or "")
    finally:
        ws.close()
    png = tmp_path / "volcano.png"
    r = runner.invoke(
        app, ["plot", "rrbs/rrbs.dml.smoothed-span500.case_SLE_vs_HC", "-o", str(png)]
    )
    assert r.exit_code == 0, r.output
    assert png.stat().st_size > 10_000
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and "already up to date" in r.output, r.output
    r = runner.invoke(app, ["methylation", "dml", "rrbs/rrbs", "--contrast", "case:SLE vs XX"])
    assert r.exit_code != 0 and "contrast-arm" in r.output and "Traceback" not in r.output
