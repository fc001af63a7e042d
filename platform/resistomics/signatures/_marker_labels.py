"""Cell-type labels from marker-gene scoring: the best-scoring type per cell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import dask.array as da
import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError
from resistomics.signatures._scoring import GeneSetScores, _var_index, score_genes

__all__ = ["UNASSIGNED", "MarkerLabels", "marker_labels"]

#: The label of a cell no marker set scores above ``min_score``.
UNASSIGNED = "unassigned"


@dataclass(frozen=True)
class MarkerLabels:
    """Lazy marker-based labels of every cell.

    Attributes
    ----------
    categories
        The types scored, in the column order of ``scores.scores``, then
        :data:`UNASSIGNED`: ``codes`` index into it.
    skipped
        Types not scored because fewer than ``min_genes`` of their markers are in the
        panel, with the markers that are (no cell gets these labels).
    min_score, min_genes
        The thresholds used.
    scores
        The per-type :func:`~resistomics.signatures.score_genes` scores (lazy).
    codes
        Lazy ``(n_cells,)`` int64: the index of each cell's label in ``categories``.
    best
        Lazy ``(n_cells,)`` float64: each cell's highest type score (also for
        unassigned cells; NaN when every score is NaN).
    """

    categories: tuple[str, ...]
    skipped: Mapping[str, tuple[str, ...]]
    min_score: float
    min_genes: int
    scores: GeneSetScores
    codes: da.Array
    best: da.Array

    def labels(self, codes: np.ndarray) -> pd.Categorical:
        """The computed ``codes`` as a categorical over :attr:`categories`."""
        return pd.Categorical.from_codes(np.asarray(codes), categories=list(self.categories))


def marker_labels(
    X: da.Array,
    var_names: Sequence[str] | np.ndarray | pd.Index,
    markers: Mapping[str, Sequence[str]],
    *,
    gene_means: np.ndarray,
    min_score: float = 0.0,
    min_genes: int = 3,
    ctrl_size: int = 50,
    n_bins: int = 25,
    random_state: int | None = 0,
) -> MarkerLabels:
    """Label each cell with the cell type whose marker set scores highest in it.

    Every marker set with at least ``min_genes`` genes in ``var_names`` is scored per
    cell by :func:`~resistomics.signatures.score_genes` (Tirosh et al., *Science*
    352:189, 2016: the mean of the set's genes minus the mean of expression-matched
    control genes; scanpy's ``sc.tl.score_genes``). A cell takes the type of its highest
    score (argmax over types, the first on a tie), the marker-scoring annotation that
    scanpy's tutorials build on ``score_genes`` and that Tirosh et al. used to call cell
    types from marker sets; it is :data:`UNASSIGNED` when that score is ``<= min_score``
    (no type's markers rise above their expression-matched background; with the default
    0 a cell that expresses none of any type's markers is unassigned) or NaN. Sets with
    fewer than ``min_genes`` panel genes are not scored (listed in
    :attr:`MarkerLabels.skipped`): a type that few genes represent would win on noise.

    ``n_bins`` is capped at half the panel (at least 2) so that a small panel keeps
    several genes per expression bin. A known limit of control-gene scoring: genes of
    another program that a type co-expresses (e.g. hypoxia genes in hypoxic tumour
    cells) can fall in its markers' bins and lower its score; the larger the panel, the
    smaller the effect (tested on a 309-gene panel).

    Parameters
    ----------
    X
        Cell-major ``(n_cells, n_genes)`` dask array of log-normalised expression (as
        :func:`~resistomics.signatures.log_normalize` gives).
    var_names
        Gene names, one per column of ``X``; unique.
    markers
        Cell type -> marker genes (e.g. ``builtin_cell_type_markers().as_mapping()``).
    gene_means
        Concrete per-gene means of ``X`` (:func:`~resistomics.signatures.gene_means`),
        for the control-gene bins.
    min_score
        A cell whose best score is not above this is :data:`UNASSIGNED`.
    min_genes
        Fewest marker genes in ``var_names`` for a type to be scored.
    ctrl_size, n_bins, random_state
        As :func:`~resistomics.signatures.score_genes`.

    Returns
    -------
    MarkerLabels
        Lazy codes and best scores; the categories and skipped types.

    Raises
    ------
    resistomics.errors.MethodInputError
        No marker set has ``min_genes`` genes in ``var_names``; a type is named
        :data:`UNASSIGNED`; ``min_genes < 1``; or as :func:`score_genes`.
    """
    if min_genes < 1:
        raise MethodInputError(f"min_genes must be >= 1; got {min_genes}")
    if UNASSIGNED in markers:
        raise MethodInputError(f"{UNASSIGNED!r} is the label of unassigned cells, not a type")
    names = _var_index(var_names, X)
    present = set(names)
    scored: dict[str, list[str]] = {}
    skipped: dict[str, tuple[str, ...]] = {}
    for cell_type, genes in markers.items():
        found = list(dict.fromkeys(g for g in genes if g in present))
        if len(found) >= min_genes:
            scored[str(cell_type)] = found
        else:
            skipped[str(cell_type)] = tuple(found)
    if not scored:
        raise MethodInputError(
            f"no marker set has {min_genes} of its genes among the {len(names)} genes; "
            f"types (panel genes found): "
            + ", ".join(f"{t} ({len(g)})" for t, g in list(skipped.items())[:12])
        )
    scores = score_genes(
        X,
        names,
        scored,
        gene_means=gene_means,
        ctrl_size=ctrl_size,
        n_bins=max(2, min(n_bins, len(names) // 2)),
        random_state=random_state,
    )
    n_types = len(scored)
    codes = da.map_blocks(
        _assign,
        scores.scores,
        n_types=n_types,
        min_score=float(min_score),
        drop_axis=1,
        dtype=np.int64,
        meta=np.empty((0,), dtype=np.int64),
    )
    best = da.map_blocks(
        _best, scores.scores, drop_axis=1, dtype=np.float64, meta=np.empty((0,), dtype=np.float64)
    )
    return MarkerLabels(
        categories=(*scored, UNASSIGNED),
        skipped=skipped,
        min_score=float(min_score),
        min_genes=min_genes,
        scores=scores,
        codes=codes,
        best=best,
    )


def _best(block: np.ndarray) -> np.ndarray:
    values = np.asarray(block, dtype=np.float64)
    out = np.full(values.shape[0], np.nan)
    finite = ~np.isnan(values).all(axis=1)
    out[finite] = np.nanmax(values[finite], axis=1)
    return out


def _assign(block: np.ndarray, *, n_types: int, min_score: float) -> np.ndarray:
    values = np.asarray(block, dtype=np.float64)
    filled = np.where(np.isnan(values), -np.inf, values)
    codes = np.argmax(filled, axis=1).astype(np.int64)
    top = filled[np.arange(len(codes)), codes]
    codes[~(top > min_score)] = n_types  # the UNASSIGNED category
    return codes
