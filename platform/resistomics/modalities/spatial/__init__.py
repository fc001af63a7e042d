"""Spatial omics (issue 11): readers, the SpatialData store, per-section statistics.

:class:`SpatialModality` (``_modality``) lands Xenium, MERSCOPE, CosMx and Visium output
folders and SpatialData Zarr stores as ``spatial.cells`` in the ``spatialdata@1`` layout.
Neighbour graphs (kNN, radius, Delaunay), neighbourhood enrichment, co-occurrence and
Moran's I of one section, each agreeing with squidpy 1.8 (tests against references made
by ``tests/modalities/spatial/make_squidpy_reference.py``), and :func:`section_statistics`
/ :func:`map_sections` to run them over many sections with Dask, one section in memory per
task; resistance niches (:func:`niche_composition` per section, :func:`resistance_niches`
per patient and cohort, :func:`map_niches` over Dask) with a generated planted cohort
(:func:`simulate_niche_cohort`), and per-gene nuclear fractions of transcripts
(:func:`nuclear_fractions`). Analysis ``nhood`` on published datasets (``_analyses``,
``resistomics spatial nhood``) publishes ``spatial.nhood``; ``autocorr``,
``cooccurrence`` and ``neighbors`` (``_stats_analyses``, ``resistomics spatial
autocorr|cooccurrence|neighbors``) publish ``spatial.autocorr`` (Moran's I),
``spatial.cooccurrence`` and ``spatial.neighbors`` (graph summary and edge list).
"""

from resistomics.modalities._plugin import lazy_exports

_LAZY = {
    "BASE_PROPORTIONS": "_simulate",
    "CELL_TYPES": "_simulate",
    "COSMX_UM_PER_PX": "_cosmx",
    "CoOccurrence": "_cooccurrence",
    "GraphMethod": "_graph",
    "NeighbourhoodEnrichment": "_nhood",
    "ResistanceNiches": "_niches",
    "Section": "_sections",
    "SectionStatistics": "_sections",
    "SimulatedCohort": "_simulate",
    "SpatialGraph": "_graph",
    "SpatialInput": "_raw",
    "SpatialReadContext": "_raw",
    "TENX_FEATURE_TYPES": "_landed",
    "VISIUM_SPOT_DIAMETER_UM": "_visium",
    "check_coordinates": "_graph",
    "co_occurrence": "_cooccurrence",
    "cohort_niche_tests": "_niches",
    "default_interval": "_cooccurrence",
    "delaunay_graph": "_graph",
    "detect_cosmx": "_cosmx",
    "detect_merscope": "_merscope",
    "detect_visium": "_visium",
    "detect_xenium": "_xenium",
    "knn_graph": "_graph",
    "label_codes": "_labels",
    "map_niches": "_niches",
    "map_sections": "_sections",
    "morans_i": "_autocorr",
    "neighbour_composition": "_niches",
    "neighbour_counts": "_nhood",
    "nhood_enrichment": "_nhood",
    "niche_changes": "_niches",
    "niche_composition": "_niches",
    "nuclear_fractions": "_subcellular",
    "nucleus_membership": "_subcellular",
    "points_in_polygons": "_subcellular",
    "radius_graph": "_graph",
    "read_cosmx": "_cosmx",
    "read_merscope": "_merscope",
    "read_visium": "_visium",
    "read_xenium": "_xenium",
    "resistance_niches": "_niches",
    "row_normalise": "_autocorr",
    "section_niches": "_niches",
    "section_statistics": "_sections",
    "simulate_niche_cohort": "_simulate",
    "spatial_graph": "_graph",
    "weight_moments": "_autocorr",
    "wilson_interval": "_subcellular",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_exports(__name__, _LAZY)
