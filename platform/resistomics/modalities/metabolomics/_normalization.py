"""The normalisation pipeline of ``resistomics metabolomics normalize``: the steps of
:mod:`._processing` in MetaboAnalyst's order, on one features x samples matrix.

Order (Pang et al. 2021, *NAR* 49:W388; Dunn et al. 2011, *Nat Protoc* 6:1060): filter
features by missingness (study samples), impute, QC-RLSC drift correction on injection
order (when the samples have an injection order and enough pooled QCs), normalise per
sample, transform, scale per feature. QC samples go through every step (their RSD is the
check of the processing); statistics later use the study samples only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from resistomics.errors import MethodInputError
from resistomics.modalities.metabolomics._processing import (
    auto_scale,
    correct_drift_qc_rlsc,
    filter_missingness,
    glog_transform,
    impute_half_minimum,
    impute_knn,
    log_transform,
    median_normalize,
    pareto_scale,
    pqn_normalize,
    range_scale,
    sum_normalize,
)

__all__ = [
    "DEFAULT_PIPELINE",
    "NormalizationSteps",
    "Normalized",
    "drift_applies",
    "normalize_matrix",
    "qc_rsd",
]

Impute = Literal["half-min", "knn", "none"]
Method = Literal["sum", "median", "pqn", "none"]
Drift = Literal["auto", "qc-rlsc", "none"]
Transform = Literal["log", "glog", "none"]
Scale = Literal["auto", "pareto", "range", "none"]

#: QC-RLSC needs at least this many pooled QCs per batch (a LOESS through fewer is a line).
MIN_QC = 4


@dataclass(frozen=True)
class NormalizationSteps:
    """The steps asked for; ``None`` means the default for the input's value kind:
    half-minimum imputation and PQN on raw abundances, none of either on log-scaled
    values (ratios and halves of logarithms mean nothing; limma handles the NaN)."""

    max_missing: float = 0.5
    missing_by: str | None = None
    impute: Impute | None = None
    knn_k: int = 10
    method: Method | None = None
    drift: Drift = "auto"
    transform: Transform = "log"
    scale: Scale = "none"

    def resolved(self, *, log_scaled: bool) -> NormalizationSteps:
        """The steps with the defaults filled in for the value kind.

        Raises
        ------
        MethodInputError
            A ratio-based step (sum, PQN, median, half-minimum, QC-RLSC) asked for on
            log-scaled values.
        """
        impute = self.impute or ("none" if log_scaled else "half-min")
        method = self.method or ("none" if log_scaled else "pqn")
        if log_scaled:
            for flag, value, bad in (
                ("--impute", impute, ("half-min",)),
                ("--method", method, ("sum", "median", "pqn")),
                ("--drift", self.drift, ("qc-rlsc",)),
            ):
                if value in bad:
                    raise MethodInputError(
                        f"{flag} {value} divides raw abundances; the dataset is log-scaled "
                        f"(use {flag} none{' or knn' if flag == '--impute' else ''})",
                        place=flag,
                        rule="log-scaled-input",
                    )
        return NormalizationSteps(
            max_missing=self.max_missing,
            missing_by=self.missing_by,
            impute=impute,
            knn_k=self.knn_k,
            method=method,
            drift="none" if log_scaled else self.drift,
            transform="none" if log_scaled else self.transform,
            scale=self.scale,
        )

    def as_parameters(self) -> dict[str, Any]:
        return {
            "max_missing": float(self.max_missing),
            "missing_by": self.missing_by,
            "impute": self.impute,
            "knn_k": int(self.knn_k) if self.impute == "knn" else None,
            "method": self.method,
            "drift": self.drift,
            "transform": self.transform,
            "scale": self.scale,
        }


#: What ``da`` does to a raw ``metabolomics.abundance`` dataset before testing, and what
#: the ``analyse`` deployment's ``normalize`` runs (so ``da`` reuses that result): features
#: missing in more than half the study samples dropped, half-minimum imputation, PQN
#: (QC reference when there are pooled QCs), QC-RLSC when there is an injection order,
#: log2, no scaling (univariate tests need none).
DEFAULT_PIPELINE = NormalizationSteps()


@dataclass(frozen=True)
class Normalized:
    """The processed matrix and what the QC table reports about it.

    ``values``: kept features x samples after the transform (what tests read);
    ``scaled``: after scaling too (what PCA reads; ``None`` without scaling).
    """

    keep: np.ndarray
    values: np.ndarray
    scaled: np.ndarray | None
    sample_missing: np.ndarray
    rsd_before: np.ndarray
    rsd_after: np.ndarray
    drift_corrected: bool
    dilution: np.ndarray
    value_kind: str


def qc_rsd(x: np.ndarray, qc: np.ndarray) -> np.ndarray:
    """Relative standard deviation (%) of each feature over the pooled QCs: ``100 sd /
    mean`` (sample SD, NaN omitted), the usual QC acceptance figure (Dunn et al. 2011:
    RSD < 20-30 %). NaN with fewer than two QC values."""
    vals = x[:, qc]
    n = np.sum(~np.isnan(vals), axis=1)
    out = np.full(x.shape[0], np.nan)
    ok = n >= 2
    if ok.any():
        with np.errstate(invalid="ignore", divide="ignore"):
            out[ok] = (
                100.0 * np.nanstd(vals[ok], axis=1, ddof=1) / np.abs(np.nanmean(vals[ok], axis=1))
            )
    return out


def drift_applies(
    steps: NormalizationSteps,
    *,
    qc: np.ndarray,
    injection_order: np.ndarray | None,
    batch: np.ndarray | None,
) -> bool:
    """Whether ``steps`` run QC-RLSC on these samples: ``qc-rlsc``, or ``auto`` when every
    sample has an injection order and each batch at least :data:`MIN_QC` pooled QCs.

    Raises
    ------
    MethodInputError
        ``qc-rlsc`` asked for without an injection order or enough QCs.
    """
    qc = np.asarray(qc, dtype=bool)
    order_known = injection_order is not None and bool(
        np.isfinite(np.asarray(injection_order, dtype=float)).all()
    )
    batches = np.zeros(qc.size) if batch is None else np.asarray(batch).astype(str)
    enough_qc = bool(qc.any()) and all(
        int((qc & (batches == b)).sum()) >= MIN_QC for b in np.unique(batches)
    )
    drift = steps.drift == "qc-rlsc" or (steps.drift == "auto" and order_known and enough_qc)
    if drift and (not order_known or not enough_qc):
        raise MethodInputError(
            f"QC-RLSC needs an injection order for every sample and at least {MIN_QC} "
            "pooled QCs per batch",
            place="--drift",
            rule="drift-correction",
        )
    return drift


def normalize_matrix(
    x: np.ndarray,
    steps: NormalizationSteps,
    *,
    qc: np.ndarray,
    injection_order: np.ndarray | None = None,
    batch: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> Normalized:
    """Run ``steps`` (resolved: see :meth:`NormalizationSteps.resolved`) on ``x``.

    Parameters
    ----------
    x
        Features x samples (study samples and pooled QCs; no blanks), NaN missing.
    qc
        Which samples are pooled QCs: they are not counted by the missingness filter,
        they are PQN's reference and QC-RLSC's anchors. Errors name a feature by its row
        in ``x``.
    injection_order, batch
        Per sample; QC-RLSC runs (``drift="auto"``) when the order is known for every
        sample and each batch has at least :data:`MIN_QC` QCs.
    groups
        Per sample labels of ``steps.missing_by`` (study samples): the missingness bound
        then holds in at least one group (modified 80 % rule).

    Raises
    ------
    MethodInputError
        No feature passes the filter; ``drift="qc-rlsc"`` without an injection order or
        enough QCs; a step's own refusal (log of a value <= 0, a feature without QC values).
    """
    a = np.asarray(x, dtype=np.float64)
    qc = np.asarray(qc, dtype=bool)
    study = ~qc
    keep = filter_missingness(
        a[:, study],
        max_fraction=steps.max_missing,
        groups=None if groups is None else np.asarray(groups)[study].astype(str).tolist(),
    )
    keep &= ~np.isnan(a).all(axis=1)
    if not keep.any():
        raise MethodInputError(
            f"no feature is observed in at least {1 - steps.max_missing:.0%} of the study "
            "samples (raise --max-missing)",
            place="--max-missing",
            rule="missingness-filter",
        )
    v = a[keep]
    sample_missing = np.isnan(v).mean(axis=0)
    if steps.impute == "half-min":
        v = impute_half_minimum(v)
    elif steps.impute == "knn":
        v = impute_knn(v, k=steps.knn_k, ids=np.flatnonzero(keep))
    rsd_before = qc_rsd(v, qc)
    drift = drift_applies(steps, qc=qc, injection_order=injection_order, batch=batch)
    if drift:
        assert injection_order is not None
        v = correct_drift_qc_rlsc(
            v,
            injection_order=np.asarray(injection_order, dtype=float),
            qc=qc,
            batch=None if batch is None else np.asarray(batch).astype(str),
            min_qc=MIN_QC,
            ids=np.flatnonzero(keep),
        )
    rsd_after = qc_rsd(v, qc) if drift else np.full(v.shape[0], np.nan)
    before = v
    if steps.method == "sum":
        v = sum_normalize(v)
    elif steps.method == "median":
        v = median_normalize(v)
    elif steps.method == "pqn":
        v = pqn_normalize(v, qc=qc if qc.any() else None)
    with np.errstate(invalid="ignore", divide="ignore"):
        dilution = (
            np.nanmedian(before / v, axis=0) if steps.method != "none" else np.ones(v.shape[1])
        )
    if steps.transform == "log":
        v = log_transform(v, base=2)
    elif steps.transform == "glog":
        v = glog_transform(v, base=2)
    scaled = {"auto": auto_scale, "pareto": pareto_scale, "range": range_scale}.get(steps.scale)
    return Normalized(
        keep=keep,
        values=v,
        scaled=scaled(v) if scaled is not None else None,
        sample_missing=sample_missing,
        rsd_before=rsd_before,
        rsd_after=rsd_after,
        drift_corrected=drift,
        dilution=dilution,
        value_kind="abundance" if steps.transform == "none" else "log2-abundance",
    )
