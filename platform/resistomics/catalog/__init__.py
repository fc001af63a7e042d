"""SQL catalog of studies, samples, contrasts, datasets, versions and lineage."""

from resistomics.catalog._catalog import Catalog, ContrastInfo, RegistrationSummary, VersionInfo
from resistomics.catalog._models import DatasetKind, Phase, Response, VersionStatus
from resistomics.catalog._samplesheet import RESERVED_COLUMNS, SampleRow, parse_sample_sheet

__all__ = [
    "RESERVED_COLUMNS",
    "Catalog",
    "ContrastInfo",
    "DatasetKind",
    "Phase",
    "RegistrationSummary",
    "Response",
    "SampleRow",
    "VersionInfo",
    "VersionStatus",
    "parse_sample_sheet",
]
