"""Versioned knowledge: gene sets, resistance programs, treatment-response mutations and
methylation markers."""

from resistomics.knowledge._genesets import (
    GeneSet,
    GeneSetCollection,
    builtin_programs,
    load_gene_sets,
    read_gmt,
)
from resistomics.knowledge._methylation_markers import (
    MarkerCatalogue,
    MethylationMarker,
    builtin_methylation_markers,
    read_marker_catalogue,
)
from resistomics.knowledge._mutations import (
    CatalogueHit,
    MutationCatalogue,
    ProteinChange,
    Region,
    ResistanceMutation,
    annotate,
    builtin_mutations,
    match,
    merge,
    parse_protein_change,
    read_mutation_catalogue,
)

__all__ = [
    "CatalogueHit",
    "GeneSet",
    "GeneSetCollection",
    "MarkerCatalogue",
    "MethylationMarker",
    "MutationCatalogue",
    "ProteinChange",
    "Region",
    "ResistanceMutation",
    "annotate",
    "builtin_methylation_markers",
    "builtin_mutations",
    "builtin_programs",
    "load_gene_sets",
    "match",
    "merge",
    "parse_protein_change",
    "read_gmt",
    "read_marker_catalogue",
    "read_mutation_catalogue",
]
