"""Versioned knowledge: gene sets, resistance programs, treatment-response mutations and
methylation markers; ChEBI-keyed metabolite sets and metabolic programs."""

from resistomics.knowledge._genesets import (
    GeneSet,
    GeneSetCollection,
    builtin_programs,
    load_gene_sets,
    read_gmt,
)
from resistomics.knowledge._metabolite_sets import (
    MetaboliteSet,
    MetaboliteSetCollection,
    ProgramMetabolite,
    builtin_metabolic_programs,
    chebi_id,
    load_metabolite_sets,
    read_metabolic_programs,
    read_metabolite_gmt,
    read_reactome_chebi,
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
    "MetaboliteSet",
    "MetaboliteSetCollection",
    "MethylationMarker",
    "MutationCatalogue",
    "ProgramMetabolite",
    "ProteinChange",
    "Region",
    "ResistanceMutation",
    "annotate",
    "builtin_metabolic_programs",
    "builtin_methylation_markers",
    "builtin_mutations",
    "builtin_programs",
    "chebi_id",
    "load_gene_sets",
    "load_metabolite_sets",
    "match",
    "merge",
    "parse_protein_change",
    "read_gmt",
    "read_marker_catalogue",
    "read_metabolic_programs",
    "read_metabolite_gmt",
    "read_mutation_catalogue",
    "read_reactome_chebi",
]
