"""DMR calling (``call_dmrs``) held to DSS 2.46's ``callDMR`` and to planted regions.

Tolerances: the DMRs (contig, start, end, length, nCG) are identical to DSS's; the
numeric columns (mean methylation per arm, their difference, areaStat) agree to 1e-9
relative (measured: <= 2e-14 on the shared RRBS tables).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.errors import MethodInputError
from resistomics.modalities.methylation._dmr import DSS_COLUMNS, call_dmrs
from resistomics.modalities.methylation._simulate import simulate_methylation_cohort
from shared_data import SHARED_DATA

DSS = SHARED_DATA / "methylation_rrbs" / "dss_2.46.0"
REFERENCE = Path(__file__).parent / "dss_calldmr"  # made by its make_reference.R
RTOL = 1e-9
KEYS = ["contig", "start", "end", "length", "n_cpg"]

needs_dss = pytest.mark.skipif(not DSS.is_dir(), reason=f"shared DSS outputs not at {DSS}")


def _dss(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t").rename(columns=DSS_COLUMNS)


def _assert_same_dmrs(got: pd.DataFrame, ref: pd.DataFrame) -> None:
    assert list(got.columns) == list(ref.columns)
    assert len(got) == len(ref)
    assert got[KEYS].astype(str).values.tolist() == ref[KEYS].astype(str).values.tolist()
    for column in got.columns[len(KEYS) :]:
        np.testing.assert_allclose(got[column], ref[column], rtol=RTOL, atol=0, err_msg=column)


@pytest.fixture(scope="module")
def smoothed() -> pd.DataFrame:
    return pd.read_csv(DSS / "dss_dmltest_smoothed_SLE_vs_HC.tsv.gz", sep="\t")


@needs_dss
def test_dss_shared_reference_smoothed_p001(smoothed: pd.DataFrame) -> None:
    """The DMRs DSS itself called on its smoothed SLE-vs-HC DML test (43 regions)."""
    got = call_dmrs(smoothed, p_threshold=0.01)
    ref = _dss(DSS / "dss_callDMR_smoothed_p0.01.tsv.gz")
    assert len(ref) == 43
    _assert_same_dmrs(got, ref)


# (reference file, DML table, call_dmrs arguments): the calls of make_reference.R
CASES = [
    (
        "smoothed_delta0.1_p0.01",
        "dss_dmltest_smoothed_SLE_vs_HC",
        {"delta": 0.1, "p_threshold": 0.01},
    ),
    (
        "smoothed_p0.05_minlen100_mincg5_merge200_pct0.7",
        "dss_dmltest_smoothed_SLE_vs_HC",
        {"p_threshold": 0.05, "min_len": 100, "min_cpg": 5, "dis_merge": 200, "pct_sig": 0.7},
    ),
    (
        "smoothed_p0.05_minlen20_mincg2_merge10_pct0.3",
        "dss_dmltest_smoothed_SLE_vs_HC",
        {"p_threshold": 0.05, "min_len": 20, "min_cpg": 2, "dis_merge": 10, "pct_sig": 0.3},
    ),
    ("raw_p0.05", "dss_dmltest_SLE_vs_HC", {"p_threshold": 0.05}),
    (
        "multifactor_caseSLE_p0.05_mincg2",
        "dss_multifactor_caseSLE",
        {"p_threshold": 0.05, "min_cpg": 2},
    ),
    (
        "multifactor_cellrN_p0.01_mincg2",
        "dss_multifactor_cellrN",
        {"p_threshold": 0.01, "min_cpg": 2},
    ),
]


@needs_dss
@pytest.mark.parametrize(("reference", "table", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_dss_reference(reference: str, table: str, kwargs: dict[str, float]) -> None:
    got = call_dmrs(pd.read_csv(DSS / f"{table}.tsv.gz", sep="\t"), **kwargs)  # type: ignore[arg-type]
    ref = _dss(REFERENCE / f"{reference}.tsv.gz")
    assert len(ref) > 0
    _assert_same_dmrs(got, ref)
    if table.startswith("dss_multifactor"):
        assert "mean_methylation_1" not in got.columns


@needs_dss
def test_dss_reference_two_contigs_and_parquet(smoothed: pd.DataFrame, tmp_path: Path) -> None:
    """Two contigs (the second the unsmoothed table renamed chr2), from a DataFrame and
    streamed per contig from Parquet with our column names: the same DMRs as DSS."""
    raw = pd.read_csv(DSS / "dss_dmltest_SLE_vs_HC.tsv.gz", sep="\t").assign(chr="chr2")
    both = pd.concat([smoothed, raw], ignore_index=True)
    ref = _dss(REFERENCE / "two_contigs_p0.01.tsv.gz")
    assert set(ref["contig"]) == {"chr1", "chr2"}
    _assert_same_dmrs(call_dmrs(both, p_threshold=0.01), ref)
    path = tmp_path / "dml.parquet"
    both.rename(columns={"chr": "contig", "pos": "position", "diff.se": "diff_se"}).to_parquet(
        path, row_group_size=1000
    )
    _assert_same_dmrs(call_dmrs(path, p_threshold=0.01), ref)
    only = call_dmrs(path, p_threshold=0.01, contigs=["chr2"])
    _assert_same_dmrs(only, ref[ref["contig"] == "chr2"].reset_index(drop=True))


def _write_parts(table: pd.DataFrame, directory: Path, rows: int) -> Path:
    """``table`` as a parted result table: ``part-NNNNN.parquet`` of ``rows`` rows."""
    directory.mkdir()
    for i, start in enumerate(range(0, len(table), rows)):
        table.iloc[start : start + rows].to_parquet(directory / f"part-{i:05d}.parquet")
    return directory


@needs_dss
@pytest.mark.parametrize("rows", [13, 1000])
@pytest.mark.parametrize(("reference", "table", "kwargs"), CASES, ids=[c[0] for c in CASES])
def test_parts_streamed_in_order_give_the_same_dmrs(
    reference: str, table: str, kwargs: dict[str, float], rows: int, tmp_path: Path
) -> None:
    """Read part by part with the halo (``min_cpg + 1`` rows, cuts no region crosses),
    parts far smaller than a region or a block: the same DMRs as the whole table, so
    the same as DSS's."""
    whole = pd.read_csv(DSS / f"{table}.tsv.gz", sep="\t")
    path = _write_parts(whole, tmp_path / "dml.parquet", rows)
    got = call_dmrs(path, **kwargs)  # type: ignore[arg-type]
    _assert_same_dmrs(got, _dss(REFERENCE / f"{reference}.tsv.gz"))
    pd.testing.assert_frame_equal(got, call_dmrs(whole, **kwargs))  # type: ignore[arg-type]


def test_parts_streamed_random_tables_and_split_contig(tmp_path: Path) -> None:
    """Random hot-spot tables over three contigs cut into parts of 23 and 300 rows: the
    same DMRs as in memory; a contig split across parts by another is refused."""
    for seed in range(4):
        whole = _random_table(seed)
        for rows, kwargs in (
            (23, {"p_threshold": 0.01}),
            (300, {"p_threshold": 0.05, "min_cpg": 6}),
        ):
            path = _write_parts(whole, tmp_path / f"t{seed}-{rows}", rows)
            got = call_dmrs(path, **kwargs)  # type: ignore[arg-type]
            assert len(got) > 0
            pd.testing.assert_frame_equal(got, call_dmrs(whole, **kwargs))  # type: ignore[arg-type]
    whole = _random_table(0)
    contig = whole.columns[0]
    first = whole[contig].iloc[0]
    broken = pd.concat([whole, whole[whole[contig] == first]], ignore_index=True)
    with pytest.raises(MethodInputError, match="not one run"):
        call_dmrs(_write_parts(broken, tmp_path / "broken", 50))


def _random_table(seed: int) -> pd.DataFrame:
    """A DML table with hot spots: runs of small p-values among uniform ones, gaps that
    sometimes exceed 5000 bp, three contigs."""
    rng = np.random.default_rng(seed)
    parts = []
    for contig in ("chr1", "chr2", "chr10"):
        n = 3000
        gaps = np.where(rng.random(n) < 0.01, rng.integers(4000, 9000, n), rng.integers(2, 60, n))
        pos = 1000 + np.cumsum(gaps)
        hot = np.zeros(n, dtype=bool)
        for s in rng.choice(n - 30, 40, replace=False):
            hot[s : s + rng.integers(1, 30)] = True
        pval = np.where(hot & (rng.random(n) < 0.8), rng.uniform(0, 1e-3, n), rng.random(n))
        mu1, mu2 = rng.random(n), rng.random(n)
        stat = rng.normal(0, 3, n)
        stat[rng.random(n) < 0.01] = np.nan
        parts.append(
            pd.DataFrame(
                {
                    "chr": contig,
                    "pos": pos,
                    "mu1": mu1,
                    "mu2": mu2,
                    "diff": mu1 - mu2,
                    "diff.se": rng.uniform(0.02, 0.2, n),
                    "stat": stat,
                    "pval": pval,
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


RANDOM_CALLS = [
    {"p_threshold": 1e-3},
    {"p_threshold": 1e-3, "min_len": 10, "min_cpg": 1, "dis_merge": 300, "pct_sig": 0.2},
    {"p_threshold": 0.01, "min_len": 200, "min_cpg": 6, "dis_merge": 30, "pct_sig": 0.8},
    {"delta": 0.2, "p_threshold": 0.05},
]
_R_ARGS = {"p_threshold": "p.threshold", "min_len": "minlen", "min_cpg": "minCG"}
_R_ARGS |= {"dis_merge": "dis.merge", "pct_sig": "pct.sig", "delta": "delta"}


@pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript (DSS) not installed")
def test_dss_on_random_tables(tmp_path: Path) -> None:
    """Random tables and parameters, DSS's callDMR run on each through Rscript."""
    script = [
        "suppressMessages(library(DSS))",
        "wr <- function(x, f) { if (is.null(x)) x <- data.frame(chr=character(0));"
        " x[] <- lapply(x, function(v) if (is.double(v)) sprintf('%.17g', v) else v);"
        " write.table(x, f, sep='\\t', quote=FALSE, row.names=FALSE) }",
    ]
    tables = {}
    for seed in range(3):
        tables[seed] = _random_table(seed)
        tables[seed].to_csv(tmp_path / f"t{seed}.tsv", sep="\t", index=False, na_rep="NA")
        script.append(f"d <- read.delim('{tmp_path}/t{seed}.tsv'); class(d)[2] <- 'DMLtest'")
        for k, kwargs in enumerate(RANDOM_CALLS):
            args = ", ".join(f"{_R_ARGS[a]}={v}" for a, v in kwargs.items())
            script.append(f"wr(suppressWarnings(callDMR(d, {args})), '{tmp_path}/r{seed}_{k}.tsv')")
    (tmp_path / "run.R").write_text("\n".join(script) + "\n")
    subprocess.run(["Rscript", str(tmp_path / "run.R")], check=True, capture_output=True)
    found = 0
    for seed, table in tables.items():
        for k, kwargs in enumerate(RANDOM_CALLS):
            ref = _dss(tmp_path / f"r{seed}_{k}.tsv")
            got = call_dmrs(table, **kwargs)  # type: ignore[arg-type]
            if ref.empty:
                assert got.empty
                continue
            found += len(ref)
            _assert_same_dmrs(got, ref)
    assert found > 50


def _dml_from_counts(
    sim_calls: dict[str, pd.DataFrame], samples: pd.DataFrame, phi: float
) -> pd.DataFrame:
    """A Wald test per CpG of pooled progression vs baseline counts with the simulation's
    beta-binomial dispersion (the DSS model with phi known), independent of ``_dml``."""
    frames = []
    for row in samples.itertuples():
        frames.append(sim_calls[row.sample_id].assign(arm=row.phase))
    calls = pd.concat(frames)
    calls["inflated"] = calls["total"] * (1 + (calls["total"] - 1) * phi)
    g = calls.groupby(["contig", "position", "arm"], sort=False)[
        ["methylated", "total", "inflated"]
    ].sum()
    wide = g.unstack("arm").dropna()
    wide = wide[(wide[("total", "baseline")] > 0) & (wide[("total", "progression")] > 0)]
    out = {}
    var = 0.0
    for arm, key in (("progression", "mu1"), ("baseline", "mu2")):
        n = wide[("total", arm)].to_numpy(float)
        mu = np.clip(wide[("methylated", arm)].to_numpy(float) / n, 0.01, 0.99)
        out[key] = mu
        var = var + mu * (1 - mu) * wide[("inflated", arm)].to_numpy(float) / n**2
    from scipy.stats import norm

    stat = (out["mu1"] - out["mu2"]) / np.sqrt(var)
    table = wide.index.to_frame(index=False)
    table = table.assign(**out, stat=stat, pval=2 * norm.sf(np.abs(stat)))
    order = {c: i for i, c in enumerate(dict.fromkeys(table["contig"]))}
    return table.sort_values(
        ["contig", "position"], key=lambda s: s.map(order) if s.name == "contig" else s
    ).reset_index(drop=True)


@pytest.mark.parametrize("seed", [3, 5])
def test_planted_dmrs_recovered(seed: int) -> None:
    """Planted DMRs of a generated cohort (8 patients, baseline/progression, delta 0.4,
    CpGs 2-199 bp apart) at p < 1e-3.

    With ``dis_merge`` and ``min_len`` 500 (so runs bridge a non-significant CpG or two):
    each planted region is one DMR whose first and last CpG are within 2 CpGs of the
    planted ones, with the sign and size (within 0.15) of the change. With DSS's defaults
    (``dis_merge`` capped at ``min_len`` = 50 bp) a non-significant CpG inside a region
    can split it: the DMRs still lie inside planted regions and cover >= 80% of their
    CpGs. No DMR anywhere else in either case.
    """
    phi = 0.05
    sim = simulate_methylation_cohort(
        n_subjects=8, n_sites=6000, n_dmrs=6, dmr_cpgs=20, mean_depth=30, phi=phi, seed=seed
    )
    assert len(sim.dmrs) == 6
    table = _dml_from_counts(sim.calls, sim.samples, phi)
    index = {c: g["position"].to_numpy() for c, g in table.groupby("contig")}

    def overlapping(dmrs: pd.DataFrame, planted: object) -> np.ndarray:
        return (
            (dmrs["contig"] == planted.contig)  # type: ignore[attr-defined]
            & (dmrs["start"] <= planted.end)  # type: ignore[attr-defined]
            & (dmrs["end"] >= planted.start)  # type: ignore[attr-defined]
        ).to_numpy()

    bridged = call_dmrs(table, p_threshold=1e-3, min_len=500, dis_merge=500)
    assert len(bridged) == len(sim.dmrs)
    for planted in sim.dmrs.itertuples():
        hit = overlapping(bridged, planted)
        assert hit.sum() == 1, planted
        called = bridged[hit].iloc[0]
        pos = index[planted.contig]
        for a, b in ((called.start, planted.start), (called.end, planted.end)):
            assert abs(np.searchsorted(pos, a) - np.searchsorted(pos, b)) <= 2
        assert np.sign(called.diff_methylation) == np.sign(planted.delta)
        assert abs(called.diff_methylation - planted.delta) < 0.15

    defaults = call_dmrs(table, p_threshold=1e-3)
    used = np.zeros(len(defaults), dtype=bool)
    for planted in sim.dmrs.itertuples():
        hit = overlapping(defaults, planted)
        used |= hit
        inside = defaults[hit]
        assert (inside["start"] >= planted.start).all() and (inside["end"] <= planted.end).all()
        assert inside["n_cpg"].sum() >= 0.8 * planted.n_cpgs
    assert used.all(), defaults[~used]


def test_unsorted_and_split_contigs_are_one_line_errors() -> None:
    table = _random_table(0)
    swapped = table.copy()
    swapped.loc[[10, 11], "pos"] = swapped.loc[[11, 10], "pos"].to_numpy()
    with pytest.raises(MethodInputError, match="not sorted within contig chr1"):
        call_dmrs(swapped, p_threshold=1e-3)
    split = pd.concat([table.iloc[:100], table.iloc[3000:3100], table.iloc[100:200]])
    with pytest.raises(MethodInputError, match="contig chr1 are not one run"):
        call_dmrs(split, p_threshold=1e-3)
    multifactor = table[["chr", "pos", "stat", "pval"]].rename(columns={"pval": "pvals"})
    with pytest.raises(MethodInputError, match="delta is not supported"):
        call_dmrs(multifactor, delta=0.1)
    with pytest.raises(MethodInputError, match="no stat column"):
        call_dmrs(table.drop(columns="stat"))
    assert call_dmrs(table, p_threshold=1e-12).empty


@pytest.fixture(scope="module")
def planted_store(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The generated cohort as a feature-matrix store (outer join of the samples' sites)."""
    from resistomics.storage import (
        DataRoot,
        FeatureBlock,
        open_feature_matrix,
        write_feature_matrix,
    )

    sim = simulate_methylation_cohort(n_subjects=4, n_sites=5000, n_dmrs=5, dmr_cpgs=20, seed=4)
    ids = sim.samples["sample_id"].tolist()
    keys = sim.levels[["contig", "position"]]
    m, t = [], []
    for s in ids:
        c = keys.merge(sim.calls[s], on=["contig", "position"], how="left").fillna(0)
        m.append(c["methylated"].to_numpy(np.int32))
        t.append(c["total"].to_numpy(np.int32))
    root = DataRoot(str(tmp_path_factory.mktemp("dmr") / "root"))
    path = root.path("store")
    write_feature_matrix(
        root,
        path,
        [
            FeatureBlock(
                keys.assign(strand="*"), {"methylated": np.stack(m, 1), "total": np.stack(t, 1)}
            )
        ],
        samples=sim.samples,
        arrays={"methylated": "int32", "total": "int32"},
        sorted_by=("contig", "position"),
        features_per_chunk=512,
        samples_per_chunk=3,
    )
    return sim, open_feature_matrix(root, path)


def test_end_to_end_planted_dmrs_with_smoothed_dml_test(planted_store) -> None:  # type: ignore[no-untyped-def]
    """Generated cohort (4 patients, baseline/progression, 5 planted DMRs of 20 CpGs,
    delta 0.4) -> our DSS DMLtest with smoothing (span 500 bp) -> call_dmrs with DSS's
    defaults: each planted DMR found once, both ends within the smoothing span (500 bp)
    of the planted ones, the sign of the change right; no DMR anywhere else."""
    from resistomics.modalities.methylation._dml import dml_test

    sim, store = planted_store
    phase = store.samples["phase"].astype(str).to_numpy()
    features = store.features

    def read_rows(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        v = store.read_rows(["methylated", "total"], a, b)
        return v["methylated"], v["total"]

    dml = dml_test(
        read_rows,
        features["contig"].to_numpy(),
        features["position"].to_numpy(),
        np.flatnonzero(phase == "progression"),
        np.flatnonzero(phase == "baseline"),
        smoothing=True,
        span=500,
    )
    dmrs = call_dmrs(dml)
    assert len(dmrs) == len(sim.dmrs) == 5
    for planted in sim.dmrs.itertuples():
        hit = dmrs[
            (dmrs["contig"] == planted.contig)
            & (dmrs["start"] <= planted.end)
            & (dmrs["end"] >= planted.start)
        ]
        assert len(hit) == 1, planted
        called = hit.iloc[0]
        assert abs(called.start - planted.start) <= 500 and abs(called.end - planted.end) <= 500
        assert np.sign(called.diff_methylation) == np.sign(planted.delta)


def test_dmr_tracks_hold_the_stores_reads_and_plot(planted_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Tracks of the planted DMRs read the store's reads of every CpG within the flanks
    (checked against the generated per-sample calls); the arms' pooled methylation
    inside a region differs by the planted delta (within 0.15); the plot renders."""
    from matplotlib.image import imread

    from resistomics.modalities.methylation._dmr_tracks import dmr_tracks
    from resistomics.plots import plot_dmr_tracks

    sim, store = planted_store
    dmrs = sim.dmrs.rename(columns={"n_cpgs": "n_cpg"}).assign(area_stat=1.0)
    arms = dict(zip(sim.samples["sample_id"], sim.samples["phase"], strict=True))
    tracks = dmr_tracks(store, dmrs, arms, flank=400, top=3)
    assert len(tracks) == 3
    for track, planted in zip(tracks, dmrs.itertuples(), strict=False):
        assert track.arms == ("baseline",) * 4 + ("progression",) * 4
        assert (
            track.positions[0] >= planted.start - 400 and track.positions[-1] <= planted.end + 400
        )
        levels = sim.levels[sim.levels["contig"] == planted.contig]["position"].to_numpy()
        window = levels[(levels >= planted.start - 400) & (levels <= planted.end + 400)]
        np.testing.assert_array_equal(track.positions, window)
        for k, sample in enumerate(track.sample_ids):
            calls = sim.calls[sample]
            calls = calls[calls["contig"] == planted.contig].set_index("position")
            expected = calls["total"].reindex(track.positions, fill_value=0).to_numpy()
            np.testing.assert_array_equal(track.total[:, k], expected)
        inside = (track.positions >= planted.start) & (track.positions <= planted.end)
        change = np.nanmean(track.arm_mean("progression")[inside]) - np.nanmean(
            track.arm_mean("baseline")[inside]
        )
        assert abs(change - planted.delta) < 0.15
    out = plot_dmr_tracks(tracks, tmp_path / "tracks.png", title="planted")
    image = imread(out)
    assert image.shape[1] > 900 and image[..., :3].std() > 0.05
    assert imread(plot_dmr_tracks([], tmp_path / "none.png")).shape[0] > 100
