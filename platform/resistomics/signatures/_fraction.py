"""Expansion of a resistant cell state within subjects across treatment phases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from resistomics.errors import MethodInputError

__all__ = ["FractionShift", "resistant_fraction_shift"]


@dataclass(frozen=True)
class FractionShift:
    """Per-subject fractions of program-high cells and the cohort-level test of change.

    Attributes
    ----------
    threshold
        Score above which a cell counts as resistant-program-high.
    baseline_phase
        The phase each subject's fractions are compared with.
    per_subject
        One row per (subject_id, phase): ``n_cells``, ``n_above``, ``fraction``,
        ``baseline_fraction`` and ``change`` (``fraction - baseline_fraction``; NaN when
        the subject has no baseline cells), plus ``timepoint`` (earliest timepoint of
        the phase's cells) when ``obs`` has a ``timepoint`` column.
    cohort
        One row per non-baseline phase: ``n_subjects`` (subjects with both phases),
        ``median_change``, ``mean_change``, ``statistic`` and ``pvalue`` of the
        Wilcoxon signed-rank test of the per-subject changes against zero.
    """

    threshold: float
    baseline_phase: str
    per_subject: pd.DataFrame
    cohort: pd.DataFrame


def resistant_fraction_shift(
    scores: pd.Series,
    obs: pd.DataFrame,
    *,
    threshold: float | Literal["auto"],
    baseline_phase: str = "baseline",
    auto_quantile: float = 0.95,
    alternative: Literal["two-sided", "greater", "less"] = "two-sided",
) -> FractionShift:
    """Fraction of cells above a program-score threshold per subject and phase, and
    whether it shifts from baseline across the cohort.

    For each subject and phase the fraction of cells whose score exceeds ``threshold``
    is computed, and its change from the same subject's baseline fraction. Each subject
    contributes one paired difference, so the cohort-level test treats subjects (not
    cells) as the unit of replication (Squair et al., *Nat. Commun.* 12:5692, 2021): a
    Wilcoxon signed-rank test (Wilcoxon, *Biometrics Bull.* 1:80, 1945;
    :func:`scipy.stats.wilcoxon`, zero differences dropped, exact null distribution for
    small cohorts) of the per-subject changes against zero, one test per non-baseline
    phase.

    Choosing the threshold. A fixed, pre-registered cut-off on the score scale (e.g.
    from a reference atlas or a previous cohort) is best when one exists. ``"auto"``
    sets it from the data at the ``auto_quantile`` (default 95th) percentile of the
    scores of all baseline cells pooled across subjects: by construction about 5% of
    baseline cells are "high", so the fraction reads as expansion relative to the
    pre-treatment state. The threshold is estimated from the baseline cells that are
    also compared, which slightly favours finding an increase; with few baseline cells
    prefer a fixed threshold.

    Parameters
    ----------
    scores
        One program score per cell (e.g. a column of
        :attr:`~resistomics.signatures.GeneSetScores.scores`), indexed by cell ID.
    obs
        Cell metadata indexed by the same cell IDs, with ``subject_id`` and ``phase``
        (and optionally ``timepoint``, days from treatment start).
    threshold
        A score cut-off, or ``"auto"`` (see above).
    baseline_phase
        The phase the changes are measured from.
    auto_quantile
        Quantile of baseline scores used when ``threshold="auto"``.
    alternative
        Alternative hypothesis of the signed-rank test (``"greater"``: expansion).

    Returns
    -------
    FractionShift
        The threshold used, per-subject-and-phase fractions and cohort tests.

    Raises
    ------
    resistomics.errors.MethodInputError
        If ``obs`` lacks a column, cells of ``scores`` are missing from ``obs``, scores
        are not finite, or ``"auto"`` finds no baseline cell.
    """
    for column in ("subject_id", "phase"):
        if column not in obs.columns:
            raise MethodInputError(f"obs needs a {column!r} column; it has {list(obs.columns)}")
    missing = scores.index.difference(obs.index)
    if len(missing) > 0:
        raise MethodInputError(
            f"{len(missing)} cells of scores are not in obs, e.g. {list(missing[:5])}"
        )
    values = scores.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise MethodInputError("scores must be finite; drop or fix cells with NaN scores")
    cells = obs.loc[scores.index].copy()
    cells["score"] = values
    cells["phase"] = cells["phase"].astype(str)
    is_baseline = (cells["phase"] == baseline_phase).to_numpy()

    if isinstance(threshold, str):
        if threshold != "auto":
            raise MethodInputError(f"threshold must be a number or 'auto'; got {threshold!r}")
        if not is_baseline.any():
            raise MethodInputError(
                f"threshold='auto' needs baseline cells (phase == {baseline_phase!r}); none found"
            )
        cut = float(np.quantile(values[is_baseline], auto_quantile))
    else:
        cut = float(threshold)
    cells["above"] = cells["score"] > cut

    grouped = cells.groupby(["subject_id", "phase"], observed=True, sort=True)
    per_subject = pd.DataFrame(
        {"n_cells": grouped.size(), "n_above": grouped["above"].sum().astype(np.int64)}
    )
    per_subject["fraction"] = per_subject["n_above"] / per_subject["n_cells"]
    if "timepoint" in cells.columns:
        per_subject["timepoint"] = grouped["timepoint"].min()
    baseline = (
        per_subject.xs(baseline_phase, level="phase")["fraction"]
        if baseline_phase in per_subject.index.get_level_values("phase")
        else pd.Series(dtype=np.float64)
    )
    subjects = per_subject.index.get_level_values("subject_id")
    per_subject["baseline_fraction"] = baseline.reindex(subjects).to_numpy()
    per_subject["change"] = per_subject["fraction"] - per_subject["baseline_fraction"]

    rows = []
    phases = per_subject.index.get_level_values("phase")
    for phase in sorted(set(phases) - {baseline_phase}):
        change = per_subject.loc[phases == phase, "change"].dropna().to_numpy()
        rows.append(
            {"phase": phase, "n_subjects": change.size, **_signed_rank(change, alternative)}
        )
    cohort = pd.DataFrame(
        rows,
        columns=["phase", "n_subjects", "median_change", "mean_change", "statistic", "pvalue"],
    ).set_index("phase")
    return FractionShift(
        threshold=cut, baseline_phase=baseline_phase, per_subject=per_subject, cohort=cohort
    )


def _signed_rank(change: np.ndarray, alternative: str) -> dict[str, float]:
    if change.size == 0:
        return {
            "median_change": np.nan,
            "mean_change": np.nan,
            "statistic": np.nan,
            "pvalue": np.nan,
        }
    summary = {"median_change": float(np.median(change)), "mean_change": float(change.mean())}
    if not np.any(change != 0):
        # No subject moved: no evidence of a shift (scipy would warn and return NaN).
        return {**summary, "statistic": 0.0, "pvalue": 1.0}
    test = stats.wilcoxon(change, zero_method="wilcox", alternative=alternative)
    return {**summary, "statistic": float(test.statistic), "pvalue": float(test.pvalue)}
