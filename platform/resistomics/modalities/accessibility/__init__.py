"""Accessibility modality (ATAC-seq): fragments, peaks and their statistics."""
