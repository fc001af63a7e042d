"""Modalities: readers of source formats into canonical layouts, and dataset types."""

from resistomics.modalities import expression as expression  # registers readers
from resistomics.modalities import variants as variants  # registers readers
from resistomics.modalities._registry import (
    DatasetType,
    dataset_type,
    dataset_types,
    known_modalities,
    reader_for,
    register_reader,
)

__all__ = [
    "DatasetType",
    "dataset_type",
    "dataset_types",
    "expression",
    "known_modalities",
    "reader_for",
    "register_reader",
]
