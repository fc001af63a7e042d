"""Layout ``partitioned-table@1``: one Parquet dataset per table, partitioned by a column.

A version directory holds one folder per table, hive-partitioned::

    <version>/<table>/<column>=<value>/<part>.parquet

Variant calls are ``calls/subject_id=<subject>/`` (each subject's calls are one unit of
work for per-subject analyses); fragments or transcripts of later modalities use the
same layout with their own table and column.
"""

from __future__ import annotations

import json
import posixpath

import pandas as pd
import pyarrow.dataset as pads

from resistomics.storage._root import DataRoot
from resistomics.storage._tables import write_table

__all__ = ["append_partitioned", "partition_directories", "read_partition"]


def append_partitioned(
    root: DataRoot, version_dir: str, table: str, frame: pd.DataFrame, *, by: str
) -> None:
    """Append ``frame`` to table ``table`` of a version, split by column ``by``."""
    if len(frame):
        write_table(root, posixpath.join(version_dir, table), frame, partition_cols=[by])


def partition_directories(root: DataRoot, version_dir: str, table: str, *, by: str) -> list[str]:
    """The partition folders of a table, sorted (empty when the table has no rows)."""
    base = posixpath.join(version_dir, table)
    if not root.fs.exists(base):
        return []
    return sorted(p for p in root.fs.ls(base, detail=False) if f"{by}=" in p)


def read_partition(url: str, options_json: str, directory: str, *, by: str) -> pd.DataFrame:
    """One partition as pandas, with its partition column first.

    Takes the data root as URL and JSON options (not a :class:`DataRoot`) so a Dask task
    that calls it pickles two strings.
    """
    root = DataRoot(url, json.loads(options_json))
    frame = pads.dataset(directory, format="parquet", filesystem=root.fs).to_table().to_pandas()
    frame.insert(0, by, directory.rstrip("/").rsplit(f"{by}=", 1)[1])
    return frame
