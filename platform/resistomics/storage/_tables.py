"""Parquet tables on the data root."""

from __future__ import annotations

import posixpath
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from resistomics.storage._root import DataRoot

__all__ = ["read_table", "text_mixed_columns", "write_table"]


def text_mixed_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose object columns holding several Python types (a sample sheet's ``0``
    next to ``3-4``, a cell table's numbers next to text) are text, so Parquet and Zarr
    can store them; missing stays missing."""
    out = frame.copy()
    for c in out.columns:
        if out[c].dtype == object:
            kinds = {type(v) for v in out[c] if v is not None and v == v}
            if len(kinds) > 1:
                out[c] = [None if v is None or v != v else str(v) for v in out[c]]
    return out


def write_table(
    root: DataRoot,
    path: str,
    frame: pd.DataFrame,
    *,
    metadata: dict[str, str] | None = None,
    partition_cols: list[str] | None = None,
) -> None:
    """Write a table as Parquet (one file, or a dataset partitioned by ``partition_cols``).

    ``metadata`` is stored in the Parquet schema (lineage, parameters) so a file copied
    out of the platform still says where it came from.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        merged = {
            **(table.schema.metadata or {}),
            **{k.encode(): v.encode() for k, v in metadata.items()},
        }
        table = table.replace_schema_metadata(merged)
    root.fs.makedirs(posixpath.dirname(path) if not partition_cols else path, exist_ok=True)
    if partition_cols:
        pq.write_to_dataset(table, path, partition_cols=partition_cols, filesystem=root.fs)
    else:
        with root.fs.open(path, "wb") as f:
            pq.write_table(table, f, compression="zstd")


def read_table(root: DataRoot, path: str, **kwargs: Any) -> pd.DataFrame:
    """Read a Parquet file or partitioned dataset into pandas."""
    if root.fs.isdir(path):
        return pq.read_table(path, filesystem=root.fs, **kwargs).to_pandas()
    with root.fs.open(path, "rb") as f:
        return pq.read_table(f, **kwargs).to_pandas()


def table_metadata(root: DataRoot, path: str) -> dict[str, str]:
    with root.fs.open(path, "rb") as f:
        meta = pq.read_schema(f).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items() if not k.startswith(b"pandas")}
