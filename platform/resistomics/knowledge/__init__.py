"""Versioned knowledge: gene sets and the built-in resistance-program catalogue."""

from resistomics.knowledge._genesets import (
    GeneSet,
    GeneSetCollection,
    builtin_programs,
    load_gene_sets,
    read_gmt,
)

__all__ = ["GeneSet", "GeneSetCollection", "builtin_programs", "load_gene_sets", "read_gmt"]
