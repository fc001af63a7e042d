"""Region summaries: counts against a brute-force oracle, the Welch test against scipy,
BH against statsmodels, planted region differences found, BED parsing and refusals."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from resistomics.errors import ConfigError, InputError
from resistomics.modalities.methylation._regions import (
    PROMOTER_FLANK,
    benjamini_hochberg,
    builtin_region_set,
    read_bed,
    region_counts,
    region_sample_table,
    welch_region_test,
)
from resistomics.modalities.methylation._simulate import (
    SimulatedMethylation,
    simulate_methylation_cohort,
)
from resistomics.storage import DataRoot, FeatureBlock, open_feature_matrix, write_feature_matrix
from shared_data import SHARED_DATA

ANNOTATION = SHARED_DATA / "annotation_hg19"


def _store_from_sim(tmp_path: Path, sim: SimulatedMethylation, *, chunk: int = 37):  # type: ignore[no-untyped-def]
    """The cohort as a feature-matrix store (outer join of the samples' sites)."""
    ids = sim.samples["sample_id"].tolist()
    joined = None
    for s in ids:
        part = sim.calls[s].set_index(["contig", "position"])[["methylated", "total"]]
        part.columns = [f"m:{s}", f"t:{s}"]
        joined = part if joined is None else joined.join(part, how="outer")
    assert joined is not None
    joined = joined.fillna(0).astype("int64").reset_index()
    order = {c: i for i, c in enumerate(dict.fromkeys(sim.levels["contig"]))}
    joined = joined.assign(o=joined["contig"].map(order)).sort_values(["o", "position"])
    feats = joined[["contig", "position"]].assign(strand="*").reset_index(drop=True)
    root = DataRoot(str(tmp_path / "root"))
    path = root.path("store")
    write_feature_matrix(
        root,
        path,
        [
            FeatureBlock(
                feats,
                {
                    "methylated": joined[[f"m:{s}" for s in ids]].to_numpy(),
                    "total": joined[[f"t:{s}" for s in ids]].to_numpy(),
                },
            )
        ],
        samples=sim.samples,
        arrays={"methylated": "int32", "total": "int32"},
        sorted_by=("contig", "position"),
        features_per_chunk=chunk,
        samples_per_chunk=3,
    )
    return open_feature_matrix(root, path)


@pytest.fixture(scope="module")
def sim() -> SimulatedMethylation:
    return simulate_methylation_cohort(n_subjects=5, n_sites=3000, n_dmrs=6, seed=3, dropout=0.2)


def test_region_sums_match_a_brute_force_join_with_overlapping_regions_across_chunks(
    tmp_path: Path, sim: SimulatedMethylation
) -> None:
    store = _store_from_sim(tmp_path, sim, chunk=37)  # 37 sites a chunk row: regions span rows
    rng = np.random.default_rng(1)
    levels = sim.levels
    rows = []
    for k in range(60):
        c = levels["contig"].iloc[rng.integers(len(levels))]
        pos = levels.loc[levels["contig"] == c, "position"].to_numpy()
        a = int(rng.integers(pos.min() - 500, pos.max()))
        rows.append((f"r{k}", c, max(1, a), a + int(rng.integers(1, 3000))))
    rows += [("nested", "chr1", 12_000, 12_100), ("outer", "chr1", 11_000, 14_000)]
    rows += [("empty-contig", "chr7", 1, 10_000), ("as-10", "1", 12_000, 12_100)]  # no chr prefix
    regions = pd.DataFrame(rows, columns=["region_id", "contig", "start", "end"]).assign(name="")
    counts = region_counts(store, regions)
    feats = store.features
    m = np.asarray(store.array("methylated"), dtype=np.int64)
    t = np.asarray(store.array("total"), dtype=np.int64)
    alias = {"1": "chr1"}
    for i, r in enumerate(regions.itertuples()):
        c = alias.get(r.contig, r.contig)
        inside = ((feats["contig"] == c) & feats["position"].between(r.start, r.end)).to_numpy()
        np.testing.assert_array_equal(counts.methylated[i], m[inside].sum(axis=0), r.region_id)
        np.testing.assert_array_equal(counts.total[i], t[inside].sum(axis=0), r.region_id)
        np.testing.assert_array_equal(counts.n_cpgs[i], (t[inside] > 0).sum(axis=0))
        assert counts.n_sites[i] == inside.sum()
    assert counts.n_sites[regions["region_id"] == "nested"] > 0
    mean = counts.mean
    empty = regions["region_id"].to_numpy() == "empty-contig"
    assert np.isnan(mean[empty]).all()  # no coverage is NaN, never 0
    assert np.isnan(mean[counts.total == 0]).all() and (counts.total == 0).any()
    table = region_sample_table(counts, min_cpgs=1)
    assert len(table) == len(regions) * store.n_samples
    assert table["mean_methylation"].isna().sum() == int((counts.total == 0).sum())


def test_welch_matches_scipy_and_bh_matches_statsmodels() -> None:
    rng = np.random.default_rng(7)
    values = rng.beta(2, 3, size=(400, 11))
    values[rng.random(values.shape) < 0.15] = np.nan  # uncovered samples drop out
    values[5, :] = 0.3  # zero variance in both arms: untestable
    in_a = np.array([True] * 5 + [False] * 6)
    got = welch_region_test(values, in_a, ~in_a)
    for i in range(len(values)):
        a, b = values[i, in_a], values[i, ~in_a]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2 or i == 5:
            assert np.isnan(got["pval"][i])
            continue
        ref = stats.ttest_ind(a, b, equal_var=False)
        # tolerance: float64 round-off of the moment sums (scipy uses the same formulas)
        np.testing.assert_allclose(got["stat"][i], ref.statistic, rtol=1e-10)
        np.testing.assert_allclose(got["pval"][i], ref.pvalue, rtol=1e-9)
        np.testing.assert_allclose(got["df"][i], ref.df, rtol=1e-10)
    ok = np.isfinite(got["pval"])
    want = multipletests(got["pval"][ok], method="fdr_bh")[1]
    np.testing.assert_allclose(got["pval_adj"][ok], want, rtol=1e-12)
    assert np.isnan(got["pval_adj"][~ok]).all()
    np.testing.assert_allclose(
        benjamini_hochberg(np.array([0.01, np.nan, 0.04])), [0.02, np.nan, 0.04]
    )


def test_planted_region_differences_are_found_and_null_regions_are_not(
    tmp_path: Path, sim: SimulatedMethylation
) -> None:
    store = _store_from_sim(tmp_path, sim, chunk=256)
    planted = sim.dmrs.assign(region_id=[f"dmr{i}" for i in range(len(sim.dmrs))], name="")
    # null regions: windows of 20 consecutive CpGs away from every planted DMR
    lv = sim.levels
    nulls = []
    for c, g in lv.groupby("contig", sort=False):
        pos = g["position"].to_numpy()
        for s in range(0, len(pos) - 20, 20):
            a, b = int(pos[s]), int(pos[s + 19])
            d = sim.dmrs[sim.dmrs["contig"] == c]
            if ((d["start"] <= b + 500) & (d["end"] >= a - 500)).any():
                continue
            nulls.append((f"null-{c}-{s}", c, a, b))
    null = pd.DataFrame(nulls, columns=["region_id", "contig", "start", "end"]).assign(name="")
    regions = pd.concat([planted[["region_id", "contig", "start", "end", "name"]], null])
    counts = region_counts(store, regions.reset_index(drop=True))
    values = region_sample_table(counts, min_cpgs=3)["mean_methylation"].to_numpy()
    values = values.reshape(counts.methylated.shape)
    prog = (sim.samples["phase"] == "progression").to_numpy()
    res = welch_region_test(values, prog, ~prog)
    is_planted = np.arange(len(regions)) < len(planted)
    # every planted DMR (|delta| = 0.4 on 20 CpGs, 5 vs 5) at BH 5 %, with the right sign
    assert (res["pval_adj"][is_planted] < 0.05).all(), res["pval_adj"][is_planted]
    np.testing.assert_array_equal(np.sign(res["diff"][is_planted]), np.sign(sim.dmrs["delta"]))
    np.testing.assert_allclose(res["diff"][is_planted], sim.dmrs["delta"], atol=0.12)
    # null regions (disjoint windows): false discoveries at most the nominal 5 %
    assert len(null) > 100
    assert (res["pval_adj"][~is_planted] < 0.05).mean() <= 0.05


def test_bed_reading_widening_and_refusals(tmp_path: Path) -> None:
    bed = tmp_path / "r.bed.gz"
    bed.write_bytes(
        gzip.compress(b"track name=x\n#c\nchr1\t99\t200\tA\nchr1\t99\t200\tA2\nchr2\t0\t5\tB\n")
    )
    rs = read_bed(bed)
    assert rs.regions[["contig", "start", "end"]].values.tolist() == [
        ["chr1", 100, 200],  # 0-based half-open [99, 200) is 1-based [100, 200]
        ["chr2", 1, 5],
    ]
    assert rs.regions["region_id"].tolist() == ["A", "B"] and rs.digest.startswith("sha256:")
    wide = read_bed(bed, flank=50)
    assert wide.regions[["start", "end"]].values.tolist() == [[50, 250], [1, 55]]
    for text, rule, line in (
        ("chr1\t5\n", "bed-fields", 1),
        ("chr1\t5\t5\n", "bed-interval", 1),
        ("chr1\t1\t9\nchr1\t-1\t9\n", "bed-coordinates", 2),
        ("# nothing\n", "not-empty", None),
    ):
        bad = tmp_path / "bad.bed"
        bad.write_text(text)
        with pytest.raises(InputError) as err:
            read_bed(bad)
        assert err.value.rule == rule and err.value.location.line == line, str(err.value)
    with pytest.raises(InputError, match="file-exists"):
        read_bed(tmp_path / "missing.bed")
    with pytest.raises(ConfigError, match="ANNOTATION_DIR"):
        builtin_region_set("promoters", None)
    with pytest.raises(InputError, match="region-set"):
        builtin_region_set("enhancers", ANNOTATION)


def test_builtin_promoters_are_refseq_tss_plus_minus_2kb() -> None:
    promoters = builtin_region_set("promoters", ANNOTATION)
    tss = pd.read_csv(ANNOTATION / "RefSeqTSS.hg19.bed.gz", sep="\t", header=None)
    tss = tss.drop_duplicates([0, 1, 2])
    assert len(promoters) == len(tss)
    r = promoters.regions.set_index("region_id")
    # MGMT's TSS (chr10:131265454, 1-based) +- 2 kb
    assert "chr10:131263454-131267454" in r.index
    assert (r["end"] - r["start"] == 2 * PROMOTER_FLANK).mean() > 0.99
    islands = builtin_region_set("cpg-islands", ANNOTATION)
    genes = builtin_region_set("gene-bodies", ANNOTATION)
    assert len(islands) > 20_000 and len(genes) > 20_000
