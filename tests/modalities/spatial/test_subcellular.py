"""Nuclear fraction per gene: point-in-polygon by hand and against shapely, Wilson
intervals against statsmodels, and the MERFISH U2-OS sample's known biology."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from scipy import stats

from resistomics.errors import InputError
from resistomics.modalities.spatial import (
    nuclear_fractions,
    nucleus_membership,
    points_in_polygons,
    wilson_interval,
)

DATA = Path("/work/shared/data/spatial_merfish_u2os")
SQUARE = [(0, 0), (4, 0), (4, 4), (0, 4)]
HOLE = [(1, 1), (2, 1), (2, 2), (1, 2)]


def _vertices(rings: list[tuple[str, list[tuple[float, float]]]]) -> pd.DataFrame:
    rows = [(cell, x, y) for cell, ring in rings for x, y in ring]
    return pd.DataFrame(rows, columns=["cell_id", "x", "y"])


def test_points_in_a_square_with_a_hole_by_hand() -> None:
    vx = np.array([p[0] for p in SQUARE + HOLE], dtype=float)
    vy = np.array([p[1] for p in SQUARE + HOLE], dtype=float)
    pts = {
        (3.0, 3.0): True,  # inside
        (5.0, 1.0): False,  # outside
        (4.0, 2.0): True,  # on an edge
        (0.0, 0.0): True,  # on a vertex
        (1.5, 1.5): False,  # in the hole
        (1.0, 1.5): True,  # on the hole's edge (boundary of the closed polygon)
        (-1.0, 0.0): False,  # outside, in line with an edge
    }
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    got = points_in_polygons(x, y, np.zeros(len(x)), [0, 2], [0, 4, 8], vx, vy)
    assert got.tolist() == list(pts.values())
    none = points_in_polygons(x, y, np.full(len(x), -1), [0, 2], [0, 4, 8], vx, vy)
    assert not none.any()


def test_points_in_polygons_equal_shapely_covers() -> None:
    shapely = pytest.importorskip("shapely")
    rng = np.random.default_rng(0)
    angle = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radius = rng.uniform(3, 10, 40)
    ring = np.round(np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]))
    # integer points (many exactly on edges and vertices) and random ones
    grid = np.stack(np.meshgrid(np.arange(-11, 12), np.arange(-11, 12)), -1).reshape(-1, 2)
    pts = np.vstack([grid, rng.uniform(-11, 11, (3000, 2))]).astype(float)
    got = points_in_polygons(
        pts[:, 0], pts[:, 1], np.zeros(len(pts)), [0, 1], [0, 40], ring[:, 0], ring[:, 1]
    )
    ref = shapely.covers(shapely.Polygon(ring), shapely.points(pts))
    assert np.array_equal(got, ref)
    assert shapely.touches(shapely.Polygon(ring), shapely.points(pts)).sum() > 10


def test_vertex_tables_closed_rings_and_two_nuclei() -> None:
    # cell "a": two closed squares in one run (two nuclei); cell "b": an open square
    a1 = [*SQUARE, SQUARE[0]]
    a2 = [(x + 10, y) for x, y in a1]
    b = [(x, y + 10) for x, y in SQUARE]
    vertices = _vertices([("a", a1), ("a", a2), ("b", b)])
    tx = pd.DataFrame(
        {
            "x": [1.0, 11.0, 7.0, 1.0, 1.0, 1.0],
            "y": [1.0, 1.0, 1.0, 11.0, 1.0, 1.0],
            "cell_id": ["a", "a", "a", "b", "b", None],
        }
    )
    nuclear, has = nucleus_membership(tx, vertices)
    assert nuclear.tolist() == [True, True, False, True, False, False]
    assert has.tolist() == [True] * 5 + [False]
    with pytest.raises(InputError, match=r"\[polygon-vertices\].*'c'.*2 vertices"):
        nucleus_membership(tx, _vertices([("c", [(0, 0), (1, 1)])]))


def test_wilson_interval_equals_statsmodels() -> None:
    proportion_confint = pytest.importorskip("statsmodels.stats.proportion").proportion_confint
    k = np.array([0, 1, 7, 50, 100])
    n = np.array([10, 3, 20, 100, 100])
    lo, hi = wilson_interval(k, n, confidence=0.9)
    ref_lo, ref_hi = proportion_confint(k, n, alpha=0.1, method="wilson")
    np.testing.assert_allclose(lo, ref_lo, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(hi, ref_hi, rtol=1e-12, atol=1e-15)
    assert np.isnan(wilson_interval([0], [0])[0]).all()


def test_flag_mode_by_hand() -> None:
    tx = pd.DataFrame(
        {
            "gene": ["G1", "G1", "G1", "G2", "G2", "G1"],
            "cell_id": ["c1", "c1", "c2", "c1", "c2", None],  # the last is unassigned
            "overlaps_nucleus": [1, 0, 1, 0, 0, 1],
            "section": ["s1", "s2", "s1", "s1", "s1", "s1"],
        }
    )
    got = nuclear_fractions(tx).set_index("gene")
    assert got.loc["G1", ["n_transcripts", "n_nuclear"]].tolist() == [3, 2]
    assert got.loc["G1", "nuclear_fraction"] == pytest.approx(2 / 3)
    assert got.loc["G2", "nuclear_fraction"] == 0.0 and got.loc["G2", "ci_low"] == 0.0
    by = nuclear_fractions(tx, by="section").set_index(["section", "gene"])
    assert by.loc[("s1", "G1"), "n_nuclear"] == 2 and by.loc[("s2", "G1"), "n_nuclear"] == 0
    with pytest.raises(InputError, match=r"\[nucleus-flag\].*2"):
        nuclear_fractions(tx.assign(overlaps_nucleus=[1, 0, 2, 0, 0, 1]))
    with pytest.raises(InputError, match=r"\[transcript-columns\].*no nucleus boundaries"):
        nuclear_fractions(tx.drop(columns="overlaps_nucleus"))


@pytest.fixture(scope="module")
def merfish() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Transcripts and nucleus vertex table of the SpatialData Zarr (format 2), read
    directly: points Parquet, shapes as GeoArrow-style coords / offset arrays."""
    zarr = pytest.importorskip("zarr")
    root = DATA / "merfish_sample.zarr"
    if not root.exists():
        pytest.skip("shared MERFISH U2-OS data not present")
    pts = pq.read_table(
        root / "points/transcripts/points.parquet",
        columns=["x", "y", "feature_name", "cell_boundaries", "nucleus_boundaries"],
    ).to_pandas()
    g = zarr.open_group(str(root / "shapes/nucleus_boundaries"), mode="r", zarr_format=2)
    names = np.asarray([str(s) for s in g["Index"][:]], dtype=object)
    ring_offsets, polygon_offsets, coords = g["offset0"][:], g["offset1"][:], g["coords"][:]
    assert (np.diff(polygon_offsets) == 1).all()  # one ring per nucleus here
    ring_of_vertex = np.repeat(np.arange(len(ring_offsets) - 1), np.diff(ring_offsets))
    polygon_of_ring = np.repeat(np.arange(len(names)), np.diff(polygon_offsets))
    vertices = pd.DataFrame(
        {"cell_id": names[polygon_of_ring[ring_of_vertex]], "x": coords[:, 0], "y": coords[:, 1]}
    )
    cell = pts["cell_boundaries"].astype(str)
    tx = pd.DataFrame(
        {
            "gene": pts["feature_name"].astype(str),
            "cell_id": cell.where(cell != "", None),
            "x": pts["x"],
            "y": pts["y"],
        }
    )
    stored = (pts["nucleus_boundaries"].astype(str) != "").to_numpy()
    return tx, vertices, stored


def test_merfish_boundary_test_reproduces_the_stored_assignment(merfish) -> None:
    tx, vertices, stored = merfish
    nuclear, has = nucleus_membership(tx, vertices)
    assert len(tx) == 174_827 and np.array_equal(nuclear, stored)
    assert not (nuclear & ~has).any()
    # the flag mode on the stored assignment gives the same table
    a = nuclear_fractions(tx, nucleus_boundaries=vertices)
    b = nuclear_fractions(tx.assign(overlaps_nucleus=stored))
    pd.testing.assert_frame_equal(a, b)


def test_merfish_malat1_nuclear_tln1_cytoplasmic_and_xia2019(merfish) -> None:
    tx, vertices, _ = merfish
    got = nuclear_fractions(tx, nucleus_boundaries=vertices).set_index("gene")
    assert len(got) == 135
    # known biology (shared/data/README.md): MALAT1 ~70 %, TLN1 ~6 %; measured 0.704, 0.063
    assert got.loc["MALAT1", "nuclear_fraction"] == pytest.approx(0.70, abs=0.03)
    assert got.loc["TLN1", "nuclear_fraction"] == pytest.approx(0.06, abs=0.015)
    assert got.loc["TLN1", "ci_high"] < 0.1 < 0.6 < got.loc["MALAT1", "ci_low"]
    # over the 13 cells that have a nucleus polygon MALAT1 is 93 % nuclear
    own = nuclear_fractions(tx, nucleus_boundaries=vertices, cells_without_nucleus=False)
    assert own.set_index("gene").loc["MALAT1", "nuclear_fraction"] > 0.9
    # xia2019.csv: per gene a Nucleus and an ER weight (Xia et al. 2019). Statistics over
    # the panel genes it lists: Spearman rho of the nuclear fraction with the Nucleus
    # weight (measured 0.83, n=128; bar 0.7), and genes with a positive Nucleus weight
    # ("annotated nuclear", 72) against the rest (56): Mann-Whitney AUC (measured 0.90;
    # bar 0.8) with p < 1e-6.
    xia = pd.read_csv(DATA / "xia2019.csv").pivot_table(
        index="target", columns="source", values="weight"
    )
    common = got.index.intersection(xia.index)
    frac = got.loc[common, "nuclear_fraction"]
    nucleus = xia.loc[common, "Nucleus"]
    assert len(common) >= 120
    assert stats.spearmanr(frac, nucleus).statistic > 0.7
    nuclear, other = frac[nucleus > 0], frac[nucleus <= 0]
    mw = stats.mannwhitneyu(nuclear, other, alternative="greater")
    assert mw.statistic / (len(nuclear) * len(other)) > 0.8 and mw.pvalue < 1e-6
