"""Storage: fsspec data root, Zarr v3 expression stores, Parquet tables, digests."""

from resistomics.storage._arrays import read_dense_array, write_dense_array
from resistomics.storage._expression import (
    ExpressionStore,
    ExpressionStoreWriter,
    StoreSummary,
    export_h5ad,
    open_expression_store,
)
from resistomics.storage._manifest import (
    MANIFEST,
    ManifestProblem,
    verify_manifest,
    write_manifest,
)
from resistomics.storage._root import DataRoot, digest_bytes, digest_path
from resistomics.storage._tables import read_table, write_table

__all__ = [
    "MANIFEST",
    "DataRoot",
    "ExpressionStore",
    "ExpressionStoreWriter",
    "ManifestProblem",
    "StoreSummary",
    "digest_bytes",
    "digest_path",
    "export_h5ad",
    "open_expression_store",
    "read_dense_array",
    "read_table",
    "verify_manifest",
    "write_dense_array",
    "write_manifest",
    "write_table",
]
