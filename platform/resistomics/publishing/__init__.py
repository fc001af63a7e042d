"""Publishing: what every modality's writer and analysis calls.

The workspace (settings, catalog, data root), staging a landed file's version, and
publishing results with lineage. Sits below the modalities and above storage, catalog
and validation (ARCHITECTURE.md, "Modalities are plugins").
"""

from resistomics.publishing._results import (
    ResultOutcome,
    TableParts,
    part_paths,
    publish_result,
    published_result,
    result_digest,
    result_table,
)
from resistomics.publishing._staging import Staging, layout_of
from resistomics.publishing._workspace import Workspace

__all__ = [
    "ResultOutcome",
    "Staging",
    "TableParts",
    "Workspace",
    "layout_of",
    "part_paths",
    "publish_result",
    "published_result",
    "result_digest",
    "result_table",
]
