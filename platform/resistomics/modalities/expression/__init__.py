"""Expression modality: bulk count tables, 10x Matrix Market directories, h5ad.

The analyses (:func:`score_signatures`, :func:`differential_expression`) are imported on
first use: they pull in the statistics stack, which the registry and the CLI's argument
checks must not wait for.
"""

from typing import Any

from resistomics.modalities.expression._modality import ExpressionModality, ExpressionOptions
from resistomics.modalities.expression._readers import read_bulk_table, read_h5ad, read_mtx_dir
from resistomics.modalities.expression._source import MatrixSource, ReadContext

__all__ = [
    "ExpressionModality",
    "ExpressionOptions",
    "MatrixSource",
    "ReadContext",
    "differential_expression",
    "read_bulk_table",
    "read_h5ad",
    "read_mtx_dir",
    "score_signatures",
]


def __getattr__(name: str) -> Any:
    if name in ("score_signatures", "differential_expression"):
        from resistomics.modalities.expression import _analyses

        return getattr(_analyses, name)
    raise AttributeError(name)
