"""Per-section spatial statistics against squidpy 1.8 references and planted signal.

The references are squidpy 1.8.3's outputs on one generated section, computed live by the
test environment's squidpy (``make_squidpy_reference.reference``) and as stored in
``data/squidpy_reference.npz``; every parity test runs against both. The section has fibroblasts planted around resistant tumour cells and 20 genes
from pure noise (gene_00) to a smooth spatial field (gene_19).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import pytest

from resistomics.errors import InputError
from resistomics.modalities.spatial import (
    Section,
    co_occurrence,
    default_interval,
    delaunay_graph,
    knn_graph,
    map_sections,
    morans_i,
    neighbour_counts,
    nhood_enrichment,
    radius_graph,
    section_statistics,
)
from resistomics.modalities.spatial._cooccurrence import _grid_histogram, _pair_histogram
from resistomics.modalities.spatial._nhood import _permuted_counts

REFERENCE = Path(__file__).parent / "data" / "squidpy_reference.npz"


@pytest.fixture(scope="session", params=["stored", "live"])
def ref(request: pytest.FixtureRequest) -> dict[str, Any]:
    """squidpy's outputs on the planted section: stored (``data/squidpy_reference.npz``)
    and computed now by the squidpy of the test environment (``reference()``)."""
    if request.param == "live":
        import importlib.util

        maker = Path(__file__).parent / "make_squidpy_reference.py"
        spec = importlib.util.spec_from_file_location("make_squidpy_reference", maker)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        r = module.reference()
    else:
        with np.load(REFERENCE) as f:
            r = {k: f[k] for k in f.files}
    assert "squidpy=1.8.3" in list(r["versions"]), r["versions"]
    r["labels"] = pd.Categorical.from_codes(r["codes"], categories=list(r["types"]))
    r["values"] = r["values_milli"] / 1000.0  # the exact input squidpy was given
    nhood_seed, nhood_perms, moran_seed, moran_perms, radius = r["params"]
    r.update(
        nhood_seed=int(nhood_seed),
        nhood_perms=int(nhood_perms),
        moran_seed=int(moran_seed),
        moran_perms=int(moran_perms),
        radius=float(radius),
    )
    r["knn"] = knn_graph(r["coords"], k=6)
    return r


def _batched_counts(perms: np.ndarray, rows: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """Edge counts per labelling by numpy ``bincount`` over edge codes (an oracle for the
    compiled counting)."""
    b = perms.shape[0]
    flat = perms[:, rows] * k + perms[:, cols] + (np.arange(b) * (k * k))[:, None]
    return np.bincount(flat.ravel(), minlength=b * k * k).reshape(b, k, k)


def _digest(data: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(data, dtype="<f8").tobytes()).hexdigest()


def test_graphs_equal_squidpy_bit_for_bit(ref: dict[str, Any]) -> None:
    graphs = {
        "knn": ref["knn"],
        "radius": radius_graph(ref["coords"], radius=ref["radius"]),
        "delaunay": delaunay_graph(ref["coords"]),
    }
    for name, g in graphs.items():
        conn, dist = g.connectivities, g.distances
        assert conn.dtype == np.float32 and str(ref[f"{name}_conn_dtype"]) == "float32", name
        np.testing.assert_array_equal(conn.indptr, ref[f"{name}_indptr"], err_msg=name)
        np.testing.assert_array_equal(conn.indices, ref[f"{name}_indices"], err_msg=name)
        assert set(np.unique(conn.data)) == set(ref[f"{name}_conn_data_unique"]) == {1.0}
        np.testing.assert_array_equal(dist.indptr, ref[f"{name}_dist_indptr"], err_msg=name)
        np.testing.assert_array_equal(dist.indices, ref[f"{name}_dist_indices"], err_msg=name)
        assert _digest(dist.data) == str(ref[f"{name}_dist_sha256"]), name
    np.testing.assert_array_equal(graphs["knn"].distances.data, ref["knn_dist_data"])
    knn = graphs["knn"].connectivities
    assert (np.diff(knn.indptr) == 6).all() and knn.diagonal().sum() == 0
    assert (knn != knn.T).nnz > 0  # directed, as squidpy: not symmetrised
    for name in ("radius", "delaunay"):
        c = graphs[name].connectivities
        assert (c != c.T).nnz == 0, name


def test_knn_ties_go_to_the_lower_cell_index() -> None:
    # a grid (many equal distances) with duplicated positions: the graph is the brute-force
    # k nearest by (distance, index), whatever order the tree returns ties in
    gx, gy = np.meshgrid(np.arange(12.0), np.arange(12.0))
    xy = np.vstack([np.c_[gx.ravel(), gy.ravel()], [[3.0, 3.0]] * 9, [[7.0, 2.0]]])
    n, k = len(xy), 6
    d = np.sqrt(((xy[:, None, :] - xy[None, :, :]) ** 2).sum(axis=2))
    np.fill_diagonal(d, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(n), (n, n)), d))[:, :k]
    want = np.zeros((n, n))
    want[np.repeat(np.arange(n), k), order.ravel()] = 1.0
    g = knn_graph(xy, k=k)
    np.testing.assert_array_equal(g.connectivities.toarray(), want)
    shuffled = np.random.default_rng(0).permutation(n)  # same cells, other order
    again = knn_graph(xy[shuffled], k=k).connectivities.toarray()
    inverse = np.argsort(shuffled)
    # ties are broken by index, so compare neighbour distances (multisets), not cells
    lengths = np.sort(np.where(want > 0, d, np.inf), axis=1)[:, :k]
    d_shuffled = d[np.ix_(shuffled, shuffled)]
    got = np.sort(np.where(again > 0, d_shuffled, np.inf), axis=1)[:, :k]
    np.testing.assert_array_equal(got[inverse], lengths)


def test_nhood_counts_and_zscores_equal_squidpy(ref: dict[str, Any]) -> None:
    # squidpy's permutation stream (one RandomState(seed), shuffled in place) is
    # reproduced, so the z-scores agree to rounding, not only to Monte-Carlo error
    res = nhood_enrichment(
        ref["knn"].connectivities, ref["labels"], n_perms=ref["nhood_perms"], seed=ref["nhood_seed"]
    )
    assert res.categories == tuple(ref["types"])
    np.testing.assert_array_equal(res.counts, ref["nhood_counts"])
    np.testing.assert_allclose(res.zscore, ref["nhood_zscore"], rtol=0, atol=1e-12)
    assert res.counts.sum() == ref["knn"].n_edges
    # the two counting paths: sparse product and the batched bincount
    codes = np.asarray(ref["labels"].codes, dtype=np.int64)[None, :]
    rows = np.repeat(np.arange(len(codes[0])), 6)
    batched = _batched_counts(codes, rows, ref["knn"].connectivities.indices.astype(np.int64), 5)
    np.testing.assert_array_equal(batched[0], res.counts)
    counts, _ = neighbour_counts(ref["knn"].connectivities, ref["labels"])
    np.testing.assert_array_equal(counts, res.counts)
    perms = np.stack([np.random.default_rng(s).permutation(codes[0]) for s in range(4)])
    compiled = np.zeros((4, 5, 5))
    conn = ref["knn"].connectivities
    _permuted_counts(perms, conn.indptr.astype(np.int64), conn.indices.astype(np.int64), compiled)
    np.testing.assert_array_equal(compiled, _batched_counts(perms, rows, conn.indices, 5))


def test_nhood_zscores_of_another_stream_agree_within_monte_carlo_error(
    ref: dict[str, Any],
) -> None:
    # A different seed: the null mean and sd are estimated from 1,000 permutations each,
    # so z moves by about 1/sqrt(1000) = 0.03 (mean) plus |z| / sqrt(2000) = 0.022 |z|
    # (sd); allow about 5 of those.
    other = nhood_enrichment(ref["knn"].connectivities, ref["labels"], n_perms=1000, seed=123)
    z = ref["nhood_zscore"]
    assert not np.array_equal(other.zscore, z)
    assert (np.abs(other.zscore - z) <= 0.16 + 0.11 * np.abs(z)).all()
    np.testing.assert_array_equal(other.counts, ref["nhood_counts"])


def test_co_occurrence_equals_squidpy(ref: dict[str, Any]) -> None:
    res = co_occurrence(ref["coords"], ref["labels"])
    np.testing.assert_array_equal(res.interval, ref["cooc_interval"])
    assert res.ratio.shape == ref["cooc_ratio"].shape == (5, 5, 49)
    np.testing.assert_allclose(res.ratio, ref["cooc_ratio"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.ratio, ref["cooc_ratio"], rtol=1e-12, atol=1e-12)
    # an explicit interval is used as given (sorted)
    given = co_occurrence(ref["coords"], ref["labels"], interval=ref["cooc_interval"][::-1])
    np.testing.assert_array_equal(given.ratio, res.ratio)


@pytest.mark.parametrize(
    "interval",
    [
        None,  # squidpy's default: spans half the section, so every pair is visited
        [0.0, 5.0, 10.0, 25.0],  # local: the grid skips pairs beyond 25
        [0.0, 3.0, 4.0, 5.0],  # integer coordinates put many pairs exactly on a threshold
        [0.0, 0.5, 1.0],  # smaller than the cells' spacing: a sparse grid
    ],
)
def test_grid_pair_counts_equal_all_pairs(interval: list[float] | None) -> None:
    # The cell-list kernel visits only pairs within the largest threshold; its counts
    # must be those of the all-pairs kernel in every bin that is kept, bit for bit.
    rng = np.random.default_rng(5)
    n = 1500
    xy = np.concatenate(
        [rng.integers(0, 60, size=(n // 2, 2)).astype(float), rng.uniform(0, 200, (n // 2, 2))]
    )
    codes = rng.integers(0, 4, size=n).astype(np.int64)
    edges = default_interval(xy) if interval is None else np.asarray(interval, dtype=np.float32)
    thresholds2 = edges[1:] ** 2
    x, y = xy[:, 0].astype(np.float32), xy[:, 1].astype(np.float32)
    full = np.zeros((4, 4, len(thresholds2) + 1), dtype=np.int64)
    _pair_histogram(x, y, codes, thresholds2, full)
    grid = np.zeros_like(full)
    _grid_histogram(x, y, codes, thresholds2, grid)
    sym = lambda h: h + h.transpose(1, 0, 2)  # noqa: E731 - ordered pairs, as co_occurrence
    np.testing.assert_array_equal(sym(grid)[:, :, :-1], sym(full)[:, :, :-1])
    assert sym(full)[:, :, :-1].sum() > 0
    if interval is not None and interval[-1] < 100:
        assert grid[:, :, -1].sum() == 0 < full[:, :, -1].sum()  # pairs beyond: not visited


def _moran_ref(ref: dict[str, Any], key: str) -> pd.DataFrame:
    return pd.DataFrame(ref[key], columns=ref[f"{key}_columns"], index=ref["genes"])


def test_morans_i_equals_squidpy(ref: dict[str, Any]) -> None:
    sq = _moran_ref(ref, "moran")
    ours = morans_i(
        ref["knn"].connectivities,
        ref["values"],
        genes=list(ref["genes"]),
        n_perms=ref["moran_perms"],
        seed=ref["moran_seed"],
    )
    np.testing.assert_allclose(ours["I"], sq["I"], rtol=0, atol=1e-8)
    assert (ours["expected"] == -1 / 1999).all()
    # squidpy sums the weight moments S0, S1, S2 in float32 (numpy 2 keeps float32
    # scalars float32), so its variance is float32-accurate: ~6e-8 relative per sum.
    # Ours sums in float64; with squidpy's float32 variance and its float32 square root
    # our p-values are squidpy's to 1e-10.
    np.testing.assert_allclose(ours["var_norm"], sq["var_norm"], rtol=1e-6)
    np.testing.assert_allclose(ours["pval_norm"], sq["pval_norm"], rtol=0, atol=1e-7)
    from resistomics.modalities.spatial._autocorr import _one_tailed

    se_sq = np.sqrt(sq["var_norm"].to_numpy().astype(np.float32)).astype(np.float64)
    p_with_sq_var = _one_tailed(((ours["I"] - ours["expected"]) / se_sq).to_numpy())
    np.testing.assert_allclose(p_with_sq_var, sq["pval_norm"], rtol=0, atol=1e-10)
    # the permutation test reproduces squidpy's default_rng(seed) stream of row permutations
    for col in ("pval_sim", "pval_z_sim", "var_sim", "pval_sim_fdr_bh"):
        np.testing.assert_allclose(ours[col], sq[col], rtol=1e-9, atol=1e-12, err_msg=col)
    two = morans_i(ref["knn"].connectivities, ref["values"], two_tailed=True)
    sq_two = _moran_ref(ref, "moran_two")
    np.testing.assert_allclose(two["pval_norm"].to_numpy(), sq_two["pval_norm"], atol=2e-7)
    # unnormalised binary weights (transformation=False): W = 6 n, other moments
    raw = morans_i(ref["knn"].connectivities, ref["values"], transform=False)
    sq_raw = _moran_ref(ref, "moran_raw")
    np.testing.assert_allclose(raw["I"].to_numpy(), sq_raw["I"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(raw["var_norm"].to_numpy(), sq_raw["var_norm"], rtol=1e-6)
    np.testing.assert_allclose(raw["pval_norm"].to_numpy(), sq_raw["pval_norm"], atol=1e-7)


def test_analytic_variance_is_the_variance_of_i_under_normality(ref: dict[str, Any]) -> None:
    # Oracle independent of squidpy: for iid normal values the sampling variance of I is
    # Cliff & Ord's normality variance; 2,000 draws estimate it within ~3% (1 sd).
    rng = np.random.default_rng(5)
    sims = morans_i(ref["knn"].connectivities, rng.normal(size=(2000, 2000)))
    assert abs(sims["I"].mean() - (-1 / 1999)) < 4 * np.sqrt(sims["var_norm"].iloc[0] / 2000)
    assert sims["I"].var() == pytest.approx(sims["var_norm"].iloc[0], rel=0.13)
    # squidpy's one-tailed p is the tail on the side z falls: uniform on [0, 1/2] under H0
    assert 0.07 < (sims["pval_norm"] < 0.05).mean() < 0.13
    assert sims["pval_norm"].max() <= 0.5


def test_planted_fibroblasts_around_resistant_cells_and_a_shuffled_null(
    ref: dict[str, Any],
) -> None:
    adj = ref["knn"].connectivities
    types = list(ref["types"])
    fib, res = types.index("fibroblast"), types.index("tumour_resistant")
    planted = nhood_enrichment(adj, ref["labels"], n_perms=300, seed=1)
    assert planted.zscore[fib, res] > 10 and planted.zscore[res, fib] > 10
    shuffled = np.random.default_rng(2).permutation(np.asarray(ref["labels"]))
    null = nhood_enrichment(adj, pd.Categorical(shuffled, categories=types), n_perms=300, seed=1)
    assert np.abs(null.zscore).max() < 4
    near = co_occurrence(ref["coords"], ref["labels"], interval=[0.0, 20.0, 40.0, 400.0])
    # p(fibroblast | near a resistant cell) / p(fibroblast among near pairs): the dense
    # niches make most near pairs, so the ratio is modest but falls with distance, while
    # macrophages (spread evenly) are depleted near resistant cells
    mac = types.index("macrophage")
    assert near.ratio[fib, res, 0] > 1.3 > near.ratio[fib, res, 2]
    assert near.ratio[mac, res, 0] < 0.6
    flat = co_occurrence(ref["coords"], pd.Categorical(shuffled), interval=[0.0, 20.0, 40.0])
    assert np.abs(flat.ratio - 1).max() < 0.25
    moran = morans_i(adj, ref["values"], genes=list(ref["genes"]))
    assert moran.loc["gene_19", "I"] > 0.8 and moran.loc["gene_19", "pval_norm"] < 1e-12
    assert moran.loc["gene_00", "pval_norm"] > 0.01
    assert np.corrcoef(np.arange(20), moran["I"])[0, 1] > 0.95  # I follows the planted strength


def test_sections_map_lazily_and_match_per_section_results(ref: dict[str, Any]) -> None:
    loaded: list[str] = []

    def load(name: str) -> Section:
        loaded.append(name)
        i = int(name[-1])
        keep = np.arange(i, 2000, 3)  # three disjoint sections of the reference field
        return Section(
            name=name,
            coords=ref["coords"][keep],
            labels=ref["labels"][keep],
            values=ref["values"][keep, :3],
            genes=tuple(ref["genes"][:3]),
        )

    names = ["s0", "s1", "s2"]
    options = {"n_perms": 50, "interval": 10, "moran_perms": 20}
    parts = map_sections(load, names, **options)
    assert loaded == []  # building the graph loads nothing
    results = dask.compute(*parts, scheduler="threads", num_workers=2)
    assert sorted(loaded) == names
    for name, got in zip(names, results, strict=True):
        # what a task hands back is small: no array the length of the section
        arrays = [
            getattr(part, f)
            for part in (got.nhood, got.co_occurrence)
            for f in ("counts", "zscore", "ratio", "interval")
            if hasattr(part, f)
        ]
        assert arrays and max(a.size for a in arrays) <= 5 * 5 * 10 < got.n_cells
        assert got.moran is not None and got.moran.shape[0] == 3
        want = section_statistics(load(name), **options)  # type: ignore[arg-type]
        assert got.section == name and got.n_edges == 6 * got.n_cells
        assert got.nhood is not None and want.nhood is not None
        np.testing.assert_array_equal(got.nhood.zscore, want.nhood.zscore)
        assert got.co_occurrence is not None and want.co_occurrence is not None
        np.testing.assert_array_equal(got.co_occurrence.ratio, want.co_occurrence.ratio)
        assert got.moran is not None and want.moran is not None
        pd.testing.assert_frame_equal(got.moran, want.moran)


@pytest.mark.parametrize(
    ("call", "rule"),
    [
        (
            lambda r: knn_graph(np.array([[0.0, 0.0], [np.nan, 1.0], [2.0, 2.0]])),
            "finite-coordinates",
        ),
        (lambda r: knn_graph(r["coords"][:, :1]), "coordinates-shape"),
        (lambda r: knn_graph(r["coords"][:5], k=5), "knn-k"),
        (lambda r: radius_graph(r["coords"], radius=-1.0), "radius"),
        (lambda r: delaunay_graph(np.c_[np.arange(5.0), np.arange(5.0)]), "delaunay"),
        (lambda r: nhood_enrichment(r["knn"].connectivities, r["labels"][:10]), "labels-length"),
        (lambda r: nhood_enrichment(r["knn"].connectivities, ["a"] * 2000), "two-labels"),
        (
            lambda r: nhood_enrichment(r["knn"].connectivities, [None] + ["a", "b"] * 999 + ["a"]),
            "missing-label",
        ),
        (lambda r: morans_i(r["knn"].connectivities, r["values"][:10]), "values-shape"),
        (lambda r: co_occurrence(r["coords"], r["labels"], interval=[5.0]), "interval"),
    ],
)
def test_bad_input_is_one_line_naming_the_rule(ref: dict[str, Any], call: Any, rule: str) -> None:
    with pytest.raises(InputError) as err:
        call(ref)
    assert err.value.rule == rule
    assert "\n" not in str(err.value) and f"[{rule}]" in str(err.value)
