"""Cell-type labels of a section as integer codes over ordered categories."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from resistomics.errors import InputError

__all__ = ["label_codes"]


def label_codes(
    labels: pd.Categorical | pd.Series | Sequence[str] | np.ndarray,
    *,
    n_cells: int,
    section: str = "section",
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(codes, categories)``: int64 codes ``0..k-1`` per cell and the category names.

    A categorical keeps its categories and their order (unused ones too, as squidpy's
    ``clust_map`` does); anything else becomes a categorical with sorted categories.

    Raises
    ------
    InputError
        ``labels-length`` (not one label per cell), ``missing-label`` (a NaN label) or
        ``two-labels`` (fewer than two categories).
    """
    if isinstance(labels, pd.Series):
        labels = labels.array
    cat = labels if isinstance(labels, pd.Categorical) else pd.Categorical(labels)
    if len(cat) != n_cells:
        raise InputError(
            section, "labels-length", f"{len(cat)} labels for {n_cells} cells; give one per cell"
        )
    codes = np.asarray(cat.codes, dtype=np.int64)
    if (codes < 0).any():
        bad = int(np.flatnonzero(codes < 0)[0])
        raise InputError(section, "missing-label", f"cell {bad} has no label (NaN)", row=str(bad))
    categories = tuple(str(c) for c in cat.categories)
    if len(categories) < 2:
        raise InputError(
            section, "two-labels", f"need at least 2 cell types; got {list(categories)}"
        )
    return codes, categories
