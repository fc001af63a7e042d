"""The tables the ``spatial.cells`` expectations check, from a reader's input or a store.

``cells``: one row per cell: ``obs_id`` (the cell ID), ``section``, ``x``, ``y``, ``finite`` (both
coordinates finite), ``in_bounds`` (inside the section's imaged area, or its cells'
extent when the platform states none, with a tolerance of 1e-6 of the extent),
``n_sections`` (how many sections the cell ID appears in), ``n_counts`` (counts over
measured genes). ``sections``: ``section``, ``n_cells``, ``panel`` (a digest of the
feature names: one panel per dataset), ``control_counts``, ``total_counts`` and
``negative_control_rate`` = control counts / (gene + control counts), the fraction of
decoded molecules that are negative-control probes or codewords (10x Genomics, Xenium
"negative control" QC metrics; a high rate means decoding noise), registered. ``genes``:
``feature``, ``feature_type``. ``transcript_cells``: one row per cell ID the
transcripts name (not unassigned ones): ``cell_id``, ``n_transcripts``, ``known`` (a
cell of the dataset). ``transcript_genes``: one row per gene the transcripts name:
``gene``, ``in_panel``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "CONTROL_TYPES",
    "panel_digest",
    "spatial_params",
    "summarize_frames",
]

#: Feature types counted as negative controls (decoding noise).
CONTROL_TYPES = ("negative_control_probe", "negative_control_codeword", "blank")


def panel_digest(features: Iterable[str]) -> str:
    """A short digest of a gene panel (feature names, sorted)."""
    return hashlib.sha256("\n".join(sorted(map(str, features))).encode()).hexdigest()[:16]


def summarize_frames(
    *,
    cells: pd.DataFrame,
    n_counts: np.ndarray,
    control_counts: np.ndarray,
    genes: pd.DataFrame,
    bounds: Mapping[str, tuple[float, float, float, float]],
    transcript_cells: pd.DataFrame,
    transcript_genes: Iterable[str],
) -> dict[str, pd.DataFrame]:
    """The summary tables (module doc) from cells (index cell ID; ``x``, ``y``,
    ``section``), per-cell gene and control counts, the feature table (index name,
    ``feature_type``), per-section bounds, the cell IDs transcripts name with their
    counts (``cell_id``, ``n_transcripts``) and the genes transcripts name."""
    ids = cells.index.astype(str).to_numpy()
    section = cells["section"].astype(str).to_numpy()
    x = cells["x"].to_numpy(dtype=np.float64)
    y = cells["y"].to_numpy(dtype=np.float64)
    finite = np.isfinite(x) & np.isfinite(y)
    in_bounds = np.ones(len(ids), dtype=bool)
    for name in pd.unique(section):
        rows = section == name
        box = bounds.get(name)
        ok = rows & finite
        if box is None:
            continue  # the cells' own extent: inside by construction
        x0, y0, x1, y1 = box
        tol = 1e-6 * max(x1 - x0, y1 - y0, 1.0)
        inside = (x >= x0 - tol) & (x <= x1 + tol) & (y >= y0 - tol) & (y <= y1 + tol)
        in_bounds[ok] = inside[ok]
    frame = pd.DataFrame({"cell_id": ids, "section": section})
    n_sections = frame.groupby("cell_id")["section"].transform("nunique").to_numpy()
    cells_table = pd.DataFrame(
        {
            "obs_id": ids,
            "section": section,
            "x": x,
            "y": y,
            "finite": finite,
            "in_bounds": in_bounds,
            "n_sections": n_sections.astype(np.int64),
            "n_counts": np.asarray(n_counts, dtype=np.float64),
        }
    )
    panel = panel_digest(genes.index)
    per = pd.DataFrame(
        {"section": section, "gene": np.asarray(n_counts), "control": np.asarray(control_counts)}
    ).groupby("section", sort=False)
    sections = pd.DataFrame(
        {
            "section": list(per.groups),
            "n_cells": per.size().to_numpy(),
            "panel": panel,
            "control_counts": per["control"].sum().to_numpy(dtype=np.float64),
            "total_counts": (per["gene"].sum() + per["control"].sum()).to_numpy(dtype=np.float64),
        }
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = sections["control_counts"] / sections["total_counts"]
    sections["negative_control_rate"] = rate.fillna(0.0)
    genes_table = pd.DataFrame(
        {
            "feature": genes.index.astype(str),
            "feature_type": genes["feature_type"].astype(str).to_numpy(),
        }
    )
    known = set(ids)
    tc = transcript_cells.copy()
    tc["cell_id"] = tc["cell_id"].astype(str)
    tc["known"] = tc["cell_id"].isin(known)
    tc = tc.rename(columns={"cell_id": "obs_id"})
    panel_genes = set(genes.index.astype(str))
    tg = pd.DataFrame({"gene": sorted(set(map(str, transcript_genes)))})
    tg["in_panel"] = tg["gene"].isin(panel_genes)
    return {
        "cells": cells_table,
        "sections": sections,
        "genes": genes_table,
        "transcript_cells": tc[["obs_id", "n_transcripts", "known"]].reset_index(drop=True),
        "transcript_genes": tg,
    }


def spatial_params(
    *,
    registered_samples: Iterable[str],
    min_counts_per_cell: float,
    max_counts_per_cell: float | None,
    max_negative_control_rate: float,
) -> dict[str, Any]:
    """The ``$name`` values of the suites (settings and the study's samples)."""
    return {
        "registered_samples": sorted(map(str, registered_samples)),
        "min_counts_per_cell": min_counts_per_cell,
        "max_counts_per_cell": max_counts_per_cell,
        "max_negative_control_rate": max_negative_control_rate,
    }
