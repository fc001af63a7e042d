"""SQL catalog of studies, samples, contrasts, datasets, versions and lineage."""

from resistomics.catalog._catalog import (
    Catalog,
    ContrastInfo,
    DesignChangeInfo,
    RegistrationSummary,
    VersionInfo,
)
from resistomics.catalog._models import DatasetKind, Phase, Response, VersionStatus
from resistomics.catalog._pseudonyms import PSEUDONYM_PREFIX, SubjectPseudonyms
from resistomics.catalog._samplesheet import RESERVED_COLUMNS, SampleRow, parse_sample_sheet
from resistomics.catalog._schema import SchemaChange, head_revision

__all__ = [
    "PSEUDONYM_PREFIX",
    "RESERVED_COLUMNS",
    "Catalog",
    "ContrastInfo",
    "DatasetKind",
    "DesignChangeInfo",
    "Phase",
    "RegistrationSummary",
    "Response",
    "SampleRow",
    "SchemaChange",
    "SubjectPseudonyms",
    "VersionInfo",
    "VersionStatus",
    "head_revision",
    "parse_sample_sheet",
]
