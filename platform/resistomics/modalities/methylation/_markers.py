"""Per-sample calls of catalogued methylation markers and their change under treatment.

A sample's call for a marker: ``not-covered`` when it covers fewer than the marker's
``min_cpgs`` CpGs of the region, else ``methylated`` when the coverage-weighted mean
methylation over the region (sum methylated / sum total reads) is at or above the
marker's ``threshold``, else ``unmethylated``.

Changes, per subject: every non-baseline sample is compared with the subject's
baseline sample (the earliest by ``timepoint`` when there are several), as the clonal
analysis pairs samples: ``gained`` (unmethylated -> methylated), ``lost``
(methylated -> unmethylated), ``unchanged`` or ``not-covered`` (either call is). A gain
or loss is flagged with what it means for the therapy: for a marker whose methylation
means ``sensitivity`` (MGMT and temozolomide) a gain moves towards sensitivity and a
loss towards resistance; for a ``resistance`` marker the other way round.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from resistomics.knowledge import MarkerCatalogue
from resistomics.modalities.methylation._regions import RegionCounts

__all__ = ["CALLS", "marker_calls", "marker_changes"]

CALLS = ("methylated", "unmethylated", "not-covered")
CHANGES = ("gained", "lost", "unchanged", "not-covered")


def marker_calls(counts: RegionCounts, catalogue: MarkerCatalogue) -> pd.DataFrame:
    """One row per catalogue entry and sample (``counts`` over ``catalogue.regions()``).

    Columns: marker_id, gene, therapy, effect, reference, sample_id, methylated, total,
    n_cpgs, mean_methylation (NaN without reads), threshold, call.
    """
    entries = catalogue.table()
    row_of = {r: i for i, r in enumerate(counts.regions["region_id"].astype(str))}
    mean = counts.mean
    parts = []
    for e in entries.itertuples():
        i = row_of[e.region_id]
        n = counts.n_cpgs[i]
        m = mean[i]
        call = np.where(
            n < e.min_cpgs, "not-covered", np.where(m >= e.threshold, "methylated", "unmethylated")
        )
        parts.append(
            pd.DataFrame(
                {
                    "marker_id": e.marker_id,
                    "gene": e.gene,
                    "region_id": e.region_id,
                    "therapy": e.therapy,
                    "effect": e.effect,
                    "reference": e.reference,
                    "sample_id": counts.sample_ids,
                    "methylated": counts.methylated[i],
                    "total": counts.total[i],
                    "n_cpgs": n,
                    "mean_methylation": m,
                    "threshold": e.threshold,
                    "call": call.astype(object),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _change(before: str, after: str) -> str:
    if "not-covered" in (before, after):
        return "not-covered"
    if before == after:
        return "unchanged"
    return "gained" if after == "methylated" else "lost"


def marker_changes(
    calls: pd.DataFrame, design: pd.DataFrame, *, baseline_phase: str = "baseline"
) -> pd.DataFrame:
    """Per subject and marker: each later sample's call against the baseline call.

    ``design`` is indexed by sample ID with ``subject_id`` and ``phase`` (and
    optionally ``timepoint``); samples without a subject, and subjects without a
    baseline sample, have no rows. Columns: subject_id, marker_id, gene, therapy,
    effect, baseline_sample, sample_id, phase, baseline_call, call, baseline_mean,
    mean_methylation, mean_change, change, implication (``resistance``,
    ``sensitivity`` or None), flagged, flag.
    """
    columns = [
        "subject_id", "marker_id", "gene", "therapy", "effect", "baseline_sample",
        "sample_id", "phase", "baseline_call", "call", "baseline_mean", "mean_methylation",
        "mean_change", "change", "implication", "flagged", "flag",
    ]  # fmt: skip
    if not {"subject_id", "phase"} <= set(design.columns) or calls.empty:
        return pd.DataFrame(columns=columns)
    d = design.loc[design.index.intersection(calls["sample_id"].unique())].copy()
    d = d[d["subject_id"].notna()]
    d["phase"] = d["phase"].astype(str)
    order = d["timepoint"] if "timepoint" in d.columns else pd.Series(0, index=d.index)
    d = d.assign(_order=pd.to_numeric(order, errors="coerce")).sort_values(["_order"])
    rows = []
    by_sample = calls.set_index(["marker_id", "sample_id"])
    for subject, group in d.groupby("subject_id", sort=True):
        base = group[group["phase"] == baseline_phase]
        if base.empty:
            continue
        b = str(base.index[0])
        later = [s for s in group.index.astype(str) if s != b and s not in base.index]
        for marker_id in calls["marker_id"].unique():
            before = by_sample.loc[(marker_id, b)]
            for s in later:
                after = by_sample.loc[(marker_id, s)]
                change = _change(str(before["call"]), str(after["call"]))
                implication = None
                if change in ("gained", "lost"):
                    towards_methylated = change == "gained"
                    implication = (
                        after["effect"]
                        if towards_methylated
                        else ("resistance" if after["effect"] == "sensitivity" else "sensitivity")
                    )
                flag = (
                    f"{after['gene']} methylation {change} at {group.loc[s, 'phase']}: "
                    f"towards {implication} to {after['therapy']} ({after['reference']})"
                    if implication
                    else ""
                )
                rows.append(
                    {
                        "subject_id": str(subject),
                        "marker_id": marker_id,
                        "gene": after["gene"],
                        "therapy": after["therapy"],
                        "effect": after["effect"],
                        "baseline_sample": b,
                        "sample_id": s,
                        "phase": str(group.loc[s, "phase"]),
                        "baseline_call": before["call"],
                        "call": after["call"],
                        "baseline_mean": float(before["mean_methylation"]),
                        "mean_methylation": float(after["mean_methylation"]),
                        "mean_change": float(after["mean_methylation"])
                        - float(before["mean_methylation"]),
                        "change": change,
                        "implication": implication,
                        "flagged": implication is not None,
                        "flag": flag,
                    }
                )
    out = pd.DataFrame(rows, columns=columns)
    return out.astype({"flagged": bool, "implication": object})
