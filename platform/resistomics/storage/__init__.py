"""Storage: fsspec data root, Zarr v3 expression stores, Parquet tables, digests."""

from resistomics.storage._arrays import read_dense_array, write_dense_array
from resistomics.storage._expression import (
    ExpressionStore,
    ExpressionStoreWriter,
    StoreSummary,
    open_expression_store,
)
from resistomics.storage._root import DataRoot, digest_bytes, digest_path
from resistomics.storage._tables import read_table, write_table

__all__ = [
    "DataRoot",
    "ExpressionStore",
    "ExpressionStoreWriter",
    "StoreSummary",
    "digest_bytes",
    "digest_path",
    "open_expression_store",
    "read_dense_array",
    "read_table",
    "write_dense_array",
    "write_table",
]
