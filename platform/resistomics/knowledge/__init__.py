"""Versioned knowledge: gene sets, resistance programs and treatment-response mutations."""

from resistomics.knowledge._genesets import (
    GeneSet,
    GeneSetCollection,
    builtin_programs,
    load_gene_sets,
    read_gmt,
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
    "MutationCatalogue",
    "ProteinChange",
    "Region",
    "ResistanceMutation",
    "annotate",
    "builtin_mutations",
    "builtin_programs",
    "load_gene_sets",
    "match",
    "merge",
    "parse_protein_change",
    "read_gmt",
    "read_mutation_catalogue",
]
