"""Per-section statistics over many sections with Dask, one section in memory per task.

A cohort's sections are independent: the neighbour graph, the enrichment z-scores (labels
are permuted within a section, never across) and Moran's I are all per section. So the
cohort is a list of section names and a ``load(name) -> Section`` function; each Dask task
loads one section, computes, and returns a small result (k x k, k x k x L and genes x
columns arrays), dropping the section. Peak memory per worker is that of the largest
section, not of the cohort. :func:`map_sections` only builds the graph (nothing is
loaded); the caller computes it once (``dask.compute(*parts)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from dask import delayed
from dask.base import tokenize
from dask.delayed import Delayed

from resistomics.modalities.spatial._autocorr import morans_i
from resistomics.modalities.spatial._cooccurrence import CoOccurrence, co_occurrence
from resistomics.modalities.spatial._graph import GraphMethod, spatial_graph
from resistomics.modalities.spatial._nhood import NeighbourhoodEnrichment, nhood_enrichment

__all__ = ["Section", "SectionStatistics", "map_sections", "section_statistics"]


@dataclass(frozen=True)
class Section:
    """One section: cell coordinates, optional cell types, optional expression.

    Attributes
    ----------
    name
        The section (registered sample) name.
    coords
        ``(n_cells, 2)`` x, y.
    labels
        One cell type per cell, or None.
    values
        ``(n_cells, n_genes)`` expression or program scores, or None.
    genes
        Column names of ``values``.
    """

    name: str
    coords: np.ndarray
    labels: pd.Categorical | None = None
    values: np.ndarray | None = None
    genes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class SectionStatistics:
    """The statistics of one section (None where the section lacks labels or values)."""

    section: str
    n_cells: int
    n_edges: int
    nhood: NeighbourhoodEnrichment | None
    co_occurrence: CoOccurrence | None
    moran: pd.DataFrame | None


def section_statistics(
    section: Section,
    *,
    method: GraphMethod = "knn",
    k: int = 6,
    radius: float | None = None,
    n_perms: int = 1000,
    seed: int = 0,
    interval: int | Sequence[float] = 50,
    co_occurrence_too: bool = True,
    moran_perms: int | None = None,
) -> SectionStatistics:
    """Neighbour graph, neighbourhood enrichment, co-occurrence and Moran's I of a section.

    See :func:`spatial_graph`, :func:`nhood_enrichment`, :func:`co_occurrence` and
    :func:`morans_i` for the statistics and their references (Palla et al. 2022;
    Moran 1950; Cliff & Ord 1981).
    """
    graph = spatial_graph(section.coords, method=method, k=k, radius=radius, section=section.name)
    nhood = cooc = moran = None
    if section.labels is not None:
        nhood = nhood_enrichment(
            graph.connectivities, section.labels, n_perms=n_perms, seed=seed, section=section.name
        )
        if co_occurrence_too:
            cooc = co_occurrence(
                section.coords, section.labels, interval=interval, section=section.name
            )
    if section.values is not None:
        moran = morans_i(
            graph.connectivities,
            section.values,
            genes=section.genes or None,
            n_perms=moran_perms,
            seed=seed,
            section=section.name,
        )
    return SectionStatistics(
        section=section.name,
        n_cells=graph.n_cells,
        n_edges=graph.n_edges,
        nhood=nhood,
        co_occurrence=cooc,
        moran=moran,
    )


def _load_and_compute(
    load: Callable[[str], Section], name: str, options: dict[str, Any]
) -> SectionStatistics:
    return section_statistics(load(name), **options)


def map_sections(
    load: Callable[[str], Section],
    names: Sequence[str],
    **options: Any,
) -> list[Delayed]:
    """One lazy :func:`section_statistics` per section name; nothing is loaded yet.

    Parameters
    ----------
    load
        ``load(name)`` returns the :class:`Section` (reads it from the store); called
        inside the task, so a worker holds one section at a time.
    names
        Section names.
    **options
        Passed to :func:`section_statistics`.

    Returns
    -------
    list of dask.delayed.Delayed
        Compute them together: ``dask.compute(*map_sections(load, names))``.
    """
    # the key names the section and is unique to the loader and options: two analyses
    # sharing a cluster (nhood and autocorr of one section) must never share a task
    return [
        delayed(_load_and_compute, pure=True)(
            load,
            name,
            options,
            dask_key_name=f"spatial-stats-{name}-{tokenize(load, name, options)}",
        )
        for name in names
    ]
