"""Expression modality: bulk count tables, 10x Matrix Market directories, h5ad.

The readers and the analyses (:func:`score_signatures`, :func:`differential_expression`)
are imported on first use: they pull in pandas, scipy, anndata and the statistics stack,
which the registry and the CLI's argument checks must not wait for.
"""

from resistomics.modalities._plugin import lazy_exports
from resistomics.modalities.expression._modality import (
    ExpressionModality,
    ExpressionOptions,
    ExpressionSettings,
)

_LAZY = {
    "read_bulk_table": "_readers",
    "read_h5ad": "_readers",
    "read_mtx_dir": "_readers",
    "MatrixSource": "_source",
    "ReadContext": "_source",
    "score_signatures": "_analyses",
    "differential_expression": "_analyses",
}

__all__ = [
    "ExpressionModality",
    "ExpressionOptions",
    "ExpressionSettings",
    "MatrixSource",
    "ReadContext",
    "differential_expression",
    "read_bulk_table",
    "read_h5ad",
    "read_mtx_dir",
    "score_signatures",
]


__getattr__ = lazy_exports(__name__, _LAZY)
