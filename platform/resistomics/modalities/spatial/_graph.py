"""Spatial neighbour graphs of one section, built as squidpy 1.8 builds them.

Three constructions over a section's cell coordinates, each returning a directed
connectivity matrix (float32 ones, as squidpy stores them) and the matching Euclidean
distances, both scipy CSR in canonical form (sorted indices, no explicit zeros):

- k nearest neighbours (:func:`knn_graph`), squidpy ``KNNBuilder`` /
  ``spatial_neighbors(coord_type="generic", n_neighs=6)``: cell ``i`` points to its ``k``
  nearest other cells. The graph is **not** symmetrised (squidpy does not either), so
  row ``i`` has exactly ``k`` entries and column sums vary.
- radius (:func:`radius_graph`), squidpy ``RadiusBuilder``: every other cell within
  Euclidean distance ``<= radius``; symmetric.
- Delaunay (:func:`delaunay_graph`), squidpy ``DelaunayBuilder``: the edges of the Delaunay
  triangulation (``scipy.spatial.Delaunay``, Qhull); symmetric.

Self loops are never included (squidpy's ``set_diag=False`` default). As in squidpy, a pair
of cells at identical coordinates is connected but has no stored distance (a zero distance
is an implicit zero of the sparse matrix).

References
----------
Palla G. et al. (2022) Squidpy: a scalable framework for spatial omics analysis.
Nat Methods 19:171-178. Source: ``squidpy/gr/neighbors.py`` (1.8.3).
Delaunay B. (1934) Sur la sphère vide. Bull. Acad. Sci. URSS 6:793-800.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from scipy.spatial import Delaunay, KDTree, QhullError

from resistomics.errors import InputError

__all__ = [
    "GraphMethod",
    "SpatialGraph",
    "check_coordinates",
    "delaunay_graph",
    "knn_graph",
    "radius_graph",
    "spatial_graph",
]

GraphMethod = Literal["knn", "radius", "delaunay"]


@dataclass(frozen=True)
class SpatialGraph:
    """A section's neighbour graph.

    Attributes
    ----------
    connectivities
        ``(n_cells, n_cells)`` CSR, float32, 1.0 where cell ``i`` has neighbour ``j``.
    distances
        ``(n_cells, n_cells)`` CSR, float64 Euclidean lengths of the same edges.
    method
        ``"knn"``, ``"radius"`` or ``"delaunay"``.
    """

    connectivities: sp.csr_matrix
    distances: sp.csr_matrix
    method: GraphMethod

    @property
    def n_cells(self) -> int:
        return int(self.connectivities.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.connectivities.nnz)


def check_coordinates(coords: npt.ArrayLike, *, section: str = "section") -> np.ndarray:
    """Coordinates as a float64 ``(n_cells, 2)`` array; :class:`InputError` if they are not.

    Rules: ``coordinates-shape`` (two columns, at least two cells) and
    ``finite-coordinates`` (no NaN or infinity; the first offending cell is named).
    """
    xy = np.asarray(coords, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] < 2:
        raise InputError(
            section,
            "coordinates-shape",
            f"coordinates must be an (n_cells >= 2, 2) array of x, y; got shape {xy.shape}",
        )
    finite = np.isfinite(xy).all(axis=1)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        raise InputError(
            section,
            "finite-coordinates",
            f"cell {bad} has a non-finite coordinate {xy[bad].tolist()}; "
            f"{int((~finite).sum())} cells in all",
            row=str(bad),
        )
    return xy


def _from_edges(
    rows: np.ndarray, cols: np.ndarray, lengths: np.ndarray, n: int, method: GraphMethod
) -> SpatialGraph:
    # COO -> CSR sums duplicates and sorts indices (canonical form); zero lengths (cells at
    # the same place) become implicit zeros of the distance matrix, as squidpy's
    # eliminate_zeros() leaves them.
    conn = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, n))
    dist = sp.csr_matrix((lengths.astype(np.float64), (rows, cols)), shape=(n, n))
    conn.eliminate_zeros()
    dist.eliminate_zeros()
    return SpatialGraph(connectivities=conn, distances=dist, method=method)


def _nearest(tree: KDTree, xy: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest other cells of every cell, ties broken by the lower cell index.

    A tree query returns tied neighbours in an order that depends on the tree; to make the
    graph a function of the coordinates alone, each row asks for enough neighbours to hold
    every cell tied with its k-th (doubling the query where a tie runs past its end) and
    sorts them by (distance, index).
    """
    n = xy.shape[0]
    cols = np.empty((n, k), dtype=np.int64)
    lengths = np.empty((n, k), dtype=np.float64)
    todo = np.arange(n)
    q = min(n, k + 5)
    while todo.size:
        dist, idx = tree.query(xy[todo], k=q)
        order = np.lexsort((idx, dist))
        dist = np.take_along_axis(dist, order, axis=1)
        idx = np.take_along_axis(idx, order, axis=1)
        other = idx != todo[:, None]
        # the k-th other cell: the self (distance 0) is among the first k + 1 when the
        # query is complete, so the k-th other sits at column k - 1 or k
        self_first = ~other[:, :k].all(axis=1)
        kth = np.where(self_first, dist[:, k], dist[:, k - 1])
        complete = (q == n) | (dist[:, -1] > kth)
        done = todo[complete]
        kept = other[complete]
        sel = np.cumsum(kept, axis=1) <= k
        pick = kept & sel
        cols[done] = idx[complete][pick].reshape(-1, k)
        lengths[done] = dist[complete][pick].reshape(-1, k)
        todo = todo[~complete]
        q = min(n, 2 * q)
    return cols.ravel(), lengths.ravel()


def knn_graph(coords: npt.ArrayLike, *, k: int = 6, section: str = "section") -> SpatialGraph:
    """k-nearest-neighbour graph: each cell points to its ``k`` nearest other cells.

    Matches squidpy ``spatial_neighbors_knn(n_neighs=k)`` (which queries scikit-learn's
    ``NearestNeighbors.kneighbors()`` without a query set): the cell itself is excluded,
    and the graph is directed (not symmetrised). Cells tied at exactly the k-th distance
    (grids, duplicated positions) are taken by lower cell index, so the graph depends on the
    coordinates alone; squidpy takes whichever its scikit-learn tree returns first, so on
    ties the two may pick different (equally near) cells. Without ties they are equal.

    Parameters
    ----------
    coords
        ``(n_cells, 2)`` x, y.
    k
        Neighbours per cell, ``1 <= k < n_cells`` (squidpy's default 6).
    section
        Name used in error messages.

    Raises
    ------
    InputError
        Bad coordinates (see :func:`check_coordinates`) or ``k`` out of range (``knn-k``).
    """
    xy = check_coordinates(coords, section=section)
    n = xy.shape[0]
    if not 1 <= k < n:
        raise InputError(section, "knn-k", f"k must be in 1..{n - 1} (n_cells - 1); got {k}")
    cols, lengths = _nearest(KDTree(xy), xy, k)
    rows = np.repeat(np.arange(n), k)
    return _from_edges(rows, cols, lengths, n, "knn")


def radius_graph(coords: npt.ArrayLike, *, radius: float, section: str = "section") -> SpatialGraph:
    """Radius graph: every pair of distinct cells at Euclidean distance ``<= radius``.

    Matches squidpy ``spatial_neighbors_radius(radius=r)`` for a scalar ``r``.

    Raises
    ------
    InputError
        Bad coordinates or a radius that is not a positive finite number (``radius``).
    """
    xy = check_coordinates(coords, section=section)
    if not (np.isfinite(radius) and radius > 0):
        raise InputError(section, "radius", f"radius must be a positive number; got {radius!r}")
    pairs = KDTree(xy).query_pairs(r=float(radius), output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    lengths = np.linalg.norm(xy[i] - xy[j], axis=1)
    rows = np.concatenate([i, j])
    cols = np.concatenate([j, i])
    return _from_edges(rows, cols, np.concatenate([lengths, lengths]), xy.shape[0], "radius")


def delaunay_graph(coords: npt.ArrayLike, *, section: str = "section") -> SpatialGraph:
    """Delaunay graph: cells joined by an edge of the Delaunay triangulation.

    Matches squidpy ``spatial_neighbors_delaunay()`` (``scipy.spatial.Delaunay``'s
    ``vertex_neighbor_vertices``, Euclidean edge lengths). Cells at a duplicated position
    are left out of the triangulation by Qhull and get no edges.

    Raises
    ------
    InputError
        Bad coordinates, or cells that cannot be triangulated (all on one line:
        ``delaunay``).
    """
    xy = check_coordinates(coords, section=section)
    n = xy.shape[0]
    try:
        indptr, indices = Delaunay(xy).vertex_neighbor_vertices
    except QhullError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "Qhull failed"
        raise InputError(
            section, "delaunay", f"cells cannot be triangulated (collinear or too few): {first}"
        ) from None
    rows = np.repeat(np.arange(n), np.diff(indptr))
    lengths = np.linalg.norm(xy[rows] - xy[indices], axis=1)
    return _from_edges(rows, indices.astype(np.int64), lengths, n, "delaunay")


def spatial_graph(
    coords: npt.ArrayLike,
    *,
    method: GraphMethod = "knn",
    k: int = 6,
    radius: float | None = None,
    section: str = "section",
) -> SpatialGraph:
    """The neighbour graph of one section by ``method`` (see :func:`knn_graph`,
    :func:`radius_graph`, :func:`delaunay_graph`)."""
    if method == "knn":
        return knn_graph(coords, k=k, section=section)
    if method == "radius":
        if radius is None:
            raise InputError(section, "radius", "method 'radius' needs a radius")
        return radius_graph(coords, radius=radius, section=section)
    if method == "delaunay":
        return delaunay_graph(coords, section=section)
    raise InputError(
        section, "graph-method", f"unknown graph method {method!r}; use knn, radius or delaunay"
    )
