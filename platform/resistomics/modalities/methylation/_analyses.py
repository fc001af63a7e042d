"""Region summaries and catalogued marker calls on published ``methylation.counts``.

Each function resolves its input through the catalog, computes on the store (Dask, one
compute per pass: see :func:`~._regions.region_counts`) and publishes a result whose
lineage names the input version, the region set or catalogue (source, version or
digest) and the parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast, unknown_attribute, unknown_value
from resistomics.errors import InputError
from resistomics.knowledge import MarkerCatalogue, builtin_methylation_markers
from resistomics.modalities.methylation._dml_analysis import open_counts
from resistomics.modalities.methylation._markers import marker_calls, marker_changes
from resistomics.modalities.methylation._regions import (
    RegionSet,
    region_counts,
    region_sample_table,
    region_set,
    region_table,
    welch_region_test,
)
from resistomics.publishing import ResultOutcome, Workspace, publish_result, published_result

__all__ = ["methylation_markers", "methylation_regions"]

REGIONS_TYPE = "methylation.regions"
MARKERS_TYPE = "methylation.markers"


def _design(ws: Workspace, version: VersionInfo, sample_ids: list[str]) -> pd.DataFrame:
    """The catalog's current design of the store's samples, indexed by sample ID."""
    design = ws.catalog.samples(version.study).drop(columns=["sample_id"], errors="ignore")
    return design.reindex(sample_ids)


def _arms(design: pd.DataFrame, contrast: Contrast) -> tuple[np.ndarray, np.ndarray]:
    if contrast.column not in design.columns:
        raise InputError(
            "--contrast", "contrast-column", unknown_attribute(contrast.column, design)
        )
    values = design[contrast.column].astype(str).to_numpy()
    for arm in (contrast.group_a, contrast.group_b):
        if not (values == arm).any():
            raise InputError(
                "--contrast", "contrast-arm", unknown_value(contrast.column, arm, design)
            )
    keep = contrast.selected(design)
    in_a, in_b = keep & (values == contrast.group_a), keep & (values == contrast.group_b)
    for arm, mask in ((contrast.group_a, in_a), (contrast.group_b, in_b)):
        if mask.sum() < 2:
            raise InputError(
                "--contrast",
                "arm-size",
                f"arm {contrast.column}={arm} has {int(mask.sum())} samples after filters; "
                "need at least 2",
            )
    return in_a, in_b


def methylation_regions(
    ws: Workspace,
    ref: str,
    *,
    regions: str | RegionSet = "promoters",
    contrast: Contrast | None = None,
    min_cpgs: int = 3,
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Per-sample methylation over regions, and a Welch test per region between arms.

    ``regions``: ``promoters`` (TSS +- 2 kb), ``cpg-islands``, ``gene-bodies`` (hg19,
    from ``modalities.methylation.annotation_dir``), a BED file path, or a
    :class:`~._regions.RegionSet`. Tables: ``region_samples`` (region x sample: summed
    methylated and total reads, CpGs covered, coverage-weighted mean; NaN where the
    sample covers fewer than ``min_cpgs`` CpGs) and ``regions`` (one row per region,
    with the test of :func:`~._regions.welch_region_test` when a ``contrast`` is given,
    on the per-sample means that are not NaN).
    """
    version, store = open_counts(ws, ref, study)
    # MethylationSettings.annotation_dir (importing the modality here would close an
    # import cycle through its commands)
    raw = ws.settings.modalities.get("methylation", {}).get("annotation_dir")
    annotation = str(raw) if raw is not None else None
    rs = regions if isinstance(regions, RegionSet) else region_set(regions, annotation)
    sample_ids = store.samples["sample_id"].astype(str).tolist()
    design = _design(ws, version, sample_ids)
    arms = _arms(design, contrast) if contrast is not None else None
    parameters: dict[str, Any] = {
        "regions": rs.name,
        "region_source": rs.source,
        "region_digest": rs.digest,
        "min_cpgs": int(min_cpgs),
        "contrast": contrast.as_parameters() if contrast is not None else None,
        "test": "welch" if contrast is not None else None,
    }
    digest, existing = published_result(ws, version, REGIONS_TYPE, parameters)
    if existing is not None:
        return existing
    if contrast is not None:
        ws.catalog.save_contrast(
            version.study,
            column=contrast.column,
            group_a=contrast.group_a,
            group_b=contrast.group_b,
            where=dict(contrast.where),
        )
    counts = region_counts(store, rs)
    per_sample = region_sample_table(counts, min_cpgs=min_cpgs)
    test = None
    if arms is not None:
        values = per_sample["mean_methylation"].to_numpy().reshape(counts.methylated.shape)
        test = welch_region_test(values, *arms)
    table = region_table(counts, test)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in rs.name.lower())
    name = ".".join(
        [f"{version.dataset}.regions", slug, *([contrast.slug] if contrast is not None else [])]
    )
    return publish_result(
        ws,
        modality="methylation",
        parents=[version],
        study=version.study,
        dataset=name,
        dtype=REGIONS_TYPE,
        parameters=parameters,
        digest=digest,
        tables={"regions": table, "region_samples": per_sample},
        run_id=run_id,
    )


def methylation_markers(
    ws: Workspace,
    ref: str,
    *,
    catalogue: MarkerCatalogue | None = None,
    baseline_phase: str = "baseline",
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Calls of catalogued methylation markers per sample, their change per subject, QC.

    Tables: ``calls`` (:func:`~._markers.marker_calls`), ``changes``
    (:func:`~._markers.marker_changes`, baseline -> later samples of each subject),
    ``flagged`` (the changes that move a subject towards resistance or sensitivity)
    and ``qc`` (per sample: sites covered, fraction covered, median and mean depth).
    """
    from resistomics.modalities.methylation._summaries import summarize_methylation

    version, store = open_counts(ws, ref, study)
    cat = catalogue or builtin_methylation_markers()
    parameters: dict[str, Any] = {
        "catalogue": cat.source,
        "catalogue_version": cat.version,
        "genome": cat.genome,
        "baseline_phase": baseline_phase,
    }
    digest, existing = published_result(ws, version, MARKERS_TYPE, parameters)
    if existing is not None:
        return existing
    sample_ids = store.samples["sample_id"].astype(str).tolist()
    design = _design(ws, version, sample_ids)
    counts = region_counts(store, cat.regions())
    calls = marker_calls(counts, cat)
    changes = marker_changes(calls, design, baseline_phase=baseline_phase)
    samples = summarize_methylation(store)["samples"]
    qc = samples[["sample_id", "n_sites_covered", "fraction_covered", "median_depth", "mean_depth"]]
    qc = qc.merge(
        design[[c for c in ("subject_id", "phase", "timepoint") if c in design.columns]],
        left_on="sample_id",
        right_index=True,
        how="left",
    )
    return publish_result(
        ws,
        modality="methylation",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.markers",
        dtype=MARKERS_TYPE,
        parameters=parameters,
        digest=digest,
        tables={
            "calls": calls,
            "changes": changes,
            "flagged": changes[changes["flagged"]].reset_index(drop=True),
            "qc": qc.reset_index(drop=True),
        },
        run_id=run_id,
    )
