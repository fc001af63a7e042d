"""Storage: fsspec data root, the shared versioned layouts, Parquet tables, digests."""

from resistomics.storage._arrays import read_dense_array, write_dense_array
from resistomics.storage._feature_matrix import (
    FeatureBlock,
    FeatureMatrix,
    FeatureMatrixSummary,
    FeatureMatrixWriter,
    open_feature_matrix,
    write_feature_matrix,
)
from resistomics.storage._layouts import Layout, StoredContents, layout, layouts, parse_layout
from resistomics.storage._manifest import (
    MANIFEST,
    ManifestProblem,
    verify_manifest,
    write_manifest,
)
from resistomics.storage._partitioned_table import (
    append_partitioned,
    partition_directories,
    read_partition,
)
from resistomics.storage._root import (
    S3_RETRIES,
    DataRoot,
    digest_bytes,
    digest_path,
    with_retry_defaults,
)
from resistomics.storage._sparse_matrix import (
    SparseMatrixStore,
    SparseMatrixWriter,
    StoreSummary,
    export_h5ad,
    open_sparse_matrix,
)
from resistomics.storage._spatialdata import (
    SpatialDataWriter,
    SpatialStore,
    element_name,
    open_spatial,
)
from resistomics.storage._tables import read_table, text_mixed_columns, write_table

__all__ = [
    "MANIFEST",
    "S3_RETRIES",
    "DataRoot",
    "FeatureBlock",
    "FeatureMatrix",
    "FeatureMatrixSummary",
    "FeatureMatrixWriter",
    "Layout",
    "ManifestProblem",
    "SparseMatrixStore",
    "SparseMatrixWriter",
    "SpatialDataWriter",
    "SpatialStore",
    "StoreSummary",
    "StoredContents",
    "append_partitioned",
    "digest_bytes",
    "digest_path",
    "element_name",
    "export_h5ad",
    "layout",
    "layouts",
    "open_feature_matrix",
    "open_sparse_matrix",
    "open_spatial",
    "parse_layout",
    "partition_directories",
    "read_dense_array",
    "read_partition",
    "read_table",
    "text_mixed_columns",
    "verify_manifest",
    "with_retry_defaults",
    "write_dense_array",
    "write_feature_matrix",
    "write_manifest",
    "write_table",
]
