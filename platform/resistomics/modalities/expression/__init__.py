"""Expression modality: bulk count tables, 10x Matrix Market directories, h5ad."""

from resistomics.modalities.expression._readers import read_bulk_table, read_h5ad, read_mtx_dir
from resistomics.modalities.expression._source import MatrixSource, ReadContext

__all__ = ["MatrixSource", "ReadContext", "read_bulk_table", "read_h5ad", "read_mtx_dir"]
