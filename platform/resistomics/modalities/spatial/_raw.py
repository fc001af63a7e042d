"""What every spatial reader returns: one platform-neutral, in-memory section set.

The readers (Xenium, MERSCOPE, CosMx, Visium, SpatialData Zarr) differ in file names,
units and column names; the writer and the expectations should not. Each reader turns its
source into a :class:`SpatialInput` with these conventions, and nothing downstream looks
at the platform again except to report it:

- coordinates are in micrometres (Visium: spot centres converted with the scale factors'
  ``spot_diameter_fullres`` and the 55 um spot diameter, or left in full-resolution pixels
  with ``units="pixel"`` when no physical size can be derived);
- cell IDs are strings, unique within the input (never de-duplicated: the instrument
  readers refuse a duplicate naming its file and line, and the expectations check every
  stored version again, so a bad file is refused, not repaired);
- ``section`` names the registered sample each cell belongs to (one value for a
  single-section folder, taken from the ``--sample`` option or the folder name);
- genes are the columns of ``counts``; control probes stay in ``genes`` with their
  ``feature_type`` so the negative-control rate can be checked, and are dropped from the
  analysed table by the writer, not by the reader;
- transcripts, where the platform gives them, keep one row per molecule with the cell it
  was assigned to, or null when unassigned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    import scipy.sparse as sp

__all__ = ["FEATURE_TYPES", "SpatialInput", "SpatialReadContext"]

#: ``genes["feature_type"]`` values: measured genes and the control kinds platforms ship.
FEATURE_TYPES = (
    "gene",
    "negative_control_probe",
    "negative_control_codeword",
    "genomic_control",
    "unassigned_codeword",
    "blank",
)


@dataclass(frozen=True)
class SpatialInput:
    """One landed spatial source, read into memory in platform-neutral form.

    Attributes
    ----------
    platform
        ``xenium``, ``merscope``, ``cosmx``, ``visium`` or ``spatialdata``.
    source
        The landed path (for messages: every ``InputError`` names it).
    cells
        One row per cell (or spot), index ``cell_id`` (str), columns ``x``, ``y``
        (float64, micrometres unless :attr:`units` says otherwise), ``section`` (str),
        then any platform metadata (``area``, ``nucleus_area``, ``fov``, ``in_tissue``,
        ``transcript_counts``, cell-type labels a user supplied, ...).
    counts
        ``(n_cells, n_features)`` CSR matrix of integer counts, rows in ``cells`` order,
        columns in ``genes`` order.
    genes
        One row per feature, index the feature name (str), column ``feature_type`` (one of
        :data:`FEATURE_TYPES`) and optionally ``gene_id``.
    transcripts
        One row per decoded molecule or None: columns ``x``, ``y`` (float64, same units as
        the cells), optional ``z``, ``gene`` (str), ``cell_id`` (str, null when the
        molecule is not assigned to a cell), ``section`` (str), optional
        ``overlaps_nucleus`` (bool) and ``qv`` (float).
    cell_boundaries, nucleus_boundaries
        Polygon vertices or None: columns ``cell_id`` (str), ``x``, ``y`` (float64), one
        row per vertex in drawing order, polygons in ``cell_id`` order (Xenium's
        ``cell_boundaries.parquet`` layout).
    units
        ``micron`` or ``pixel``.
    bounds
        Per section, ``(x_min, y_min, x_max, y_max)`` of the imaged area when the platform
        states it (Visium: the full-resolution image; MERSCOPE: the mosaic), else empty:
        the expectations then use the cells' own extent.
    """

    platform: str
    source: str
    cells: pd.DataFrame
    counts: sp.csr_matrix
    genes: pd.DataFrame
    transcripts: pa.Table | None = None
    cell_boundaries: pd.DataFrame | None = None
    nucleus_boundaries: pd.DataFrame | None = None
    units: Literal["micron", "pixel"] = "micron"
    bounds: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)

    @property
    def n_cells(self) -> int:
        return int(self.cells.shape[0])

    @property
    def sections(self) -> list[str]:
        """The section names, in order of first appearance."""
        return list(dict.fromkeys(self.cells["section"].astype(str)))


@dataclass(frozen=True)
class SpatialReadContext:
    """What a spatial reader is told besides the path: ``read(path, ctx) -> SpatialInput``.

    Attributes
    ----------
    section
        The section (registered sample) every cell of a single-section source belongs to
        (the ``--sample`` ingest option; the writer defaults it to the folder name). A
        multi-section source (a SpatialData store with several tables or regions) ignores
        it and names its sections itself.
    labels_column
        A cell-metadata column holding user-supplied cell-type labels, kept in ``cells``
        under its own name (None: none).
    """

    section: str | None = None
    labels_column: str | None = None
