"""Modalities as plugins: the :class:`Modality` interface and its registry.

A modality is one folder here (readers, writer into a shared layout, validation
summaries, analyses, command group) plus its dataset types in ``schemas/``; the
pipeline, flows and generic CLI only ask the registry (:func:`modality`,
:func:`modalities`). Third-party modalities register through the entry-point group
``resistomics.modalities``.
"""

from resistomics.dataset_types import DatasetType, dataset_type, dataset_types
from resistomics.modalities._plugin import (
    Analysis,
    Artifact,
    Modality,
    NoOptions,
    Reader,
    Summaries,
    Written,
    parse_options,
)
from resistomics.modalities._registry import (
    ENTRY_POINT_GROUP,
    analysis_for_result,
    guess_modality,
    modalities,
    modality,
    modality_names,
    plot_dataset,
    plot_options,
    plots_available,
    reader_for,
    refresh,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Analysis",
    "Artifact",
    "DatasetType",
    "Modality",
    "NoOptions",
    "Reader",
    "Summaries",
    "Written",
    "analysis_for_result",
    "dataset_type",
    "dataset_types",
    "guess_modality",
    "modalities",
    "modality",
    "modality_names",
    "parse_options",
    "plot_dataset",
    "plot_options",
    "plots_available",
    "reader_for",
    "refresh",
]
