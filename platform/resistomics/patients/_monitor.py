"""Early relapse detection on serial samples: a one-sided CUSUM per patient.

Generic: a signal is one number per sample (a circulating tumour fraction, a program's
resistant fraction, a marker's level); the patient's own baseline is the reference.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError

__all__ = [
    "RelapseMonitor",
    "cusum_path",
    "cusum_threshold",
    "monitor_relapse",
    "moving_range_scale",
]

# Montgomery, *Introduction to Statistical Quality Control* (7th ed., 2013), sec. 6.4:
# for a moving range of two normal observations, E[MR] = d2 * sigma with d2 = 1.128 and
# median(MR) = 0.954 * sigma (the robust variant of the individuals chart).
_MEDIAN_MOVING_RANGE_FACTOR = 0.9539

Direction = Literal["rise", "fall"]


def cusum_path(z: np.ndarray, *, k: float) -> np.ndarray:
    """Upper one-sided tabular CUSUM of standardised values.

    ``S_0 = 0``, ``S_t = max(0, S_{t-1} + z_t - k)`` (Page, *Biometrika* 41:100, 1954;
    Montgomery, *Introduction to Statistical Quality Control*, 7th ed., sec. 9.1.2).
    ``z`` may be 2-D (rows are independent series, columns are time).

    Parameters
    ----------
    z
        Standardised observations (``(x - reference mean) / scale``), time along the
        last axis.
    k
        Reference value (allowance) in scale units; ``k = shift / 2`` is optimal for
        detecting a step of ``shift`` scale units.

    Returns
    -------
    numpy.ndarray
        ``S_1 .. S_n``, same shape as ``z``.
    """
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    s = np.zeros(z.shape[:-1])
    for t in range(z.shape[-1]):
        s = np.maximum(0.0, s + z[..., t] - k)
        out[..., t] = s
    return out


def cusum_threshold(
    *,
    n_followup: int,
    n_baseline: int,
    own_scale: bool,
    k: float,
    alpha: float,
    n_simulations: int = 20_000,
    seed: int = 0,
) -> float:
    """Decision interval ``h`` giving a per-patient false-alarm probability ``alpha``
    over ``n_followup`` samples, by simulation under the null noise model.

    Under the null a patient's samples are i.i.d. normal around a stable level. The
    reference mean is the mean of ``n_baseline`` baseline samples (its error is shared
    by every follow-up z and is simulated); the scale is the baseline samples' standard
    deviation when ``own_scale`` (simulated too, so the heavier tails of a scale from two
    or three samples are accounted for) and otherwise a known cohort scale. ``h`` is the
    ``1 - alpha`` quantile of ``max_t S_t`` over the simulated follow-ups, so that
    ``P(max S_t > h) <= alpha`` up to Monte Carlo error (a false-alarm probability over a
    finite horizon, rather than an in-control ARL: Montgomery, *Introduction to
    Statistical Quality Control*, 7th ed., sec. 9.1.3; Siegmund, *Sequential Analysis*,
    1985, ch. 2, for the CUSUM's run-length distribution).

    Returns
    -------
    float
        The threshold ``h`` in scale units.

    Raises
    ------
    MethodInputError
        ``alpha`` outside (0, 1), no follow-up, or an own scale from fewer than 2
        baseline samples.
    """
    if not 0.0 < alpha < 1.0:
        raise MethodInputError(f"alpha must be in (0, 1), got {alpha}", rule="cusum-alpha")
    if n_followup < 1 or n_baseline < 1:
        raise MethodInputError(
            f"need at least one baseline and one follow-up sample "
            f"(got {n_baseline} and {n_followup})",
            rule="cusum-samples",
        )
    if own_scale and n_baseline < 2:
        raise MethodInputError(
            "a patient's own scale needs at least 2 baseline samples", rule="cusum-scale"
        )
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_simulations, n_baseline))
    follow = rng.standard_normal((n_simulations, n_followup))
    mean = base.mean(axis=1, keepdims=True)
    scale = base.std(axis=1, ddof=1, keepdims=True) if own_scale else 1.0
    z = (follow - mean) / scale
    peak = cusum_path(z, k=k).max(axis=1)
    return float(np.quantile(peak, 1.0 - alpha, method="higher"))


def moving_range_scale(values: pd.Series, subjects: pd.Series) -> tuple[float, int]:
    """Within-patient standard deviation pooled over patients from moving ranges.

    Robust estimate from the medians of the absolute differences of consecutive samples
    of the same patient: ``sigma = median(|x_t - x_{t-1}|) / 0.954`` (Montgomery,
    *Introduction to Statistical Quality Control*, 7th ed., sec. 6.4, the median moving
    range of the individuals chart). Differences within a patient remove the patients'
    own levels, and the median resists a few aberrant samples.

    Parameters
    ----------
    values
        Signal values, in time order within each patient.
    subjects
        The subject of each value (same index).

    Returns
    -------
    (float, int)
        The scale and the number of moving ranges it is based on (NaN, 0 when there are
        none).
    """
    frame = pd.DataFrame({"v": values.to_numpy(dtype=float), "s": subjects.to_numpy()})
    frame = frame.dropna()
    ranges = frame.groupby("s", sort=False)["v"].diff().abs().dropna()
    if ranges.empty:
        return float("nan"), 0
    return float(ranges.median() / _MEDIAN_MOVING_RANGE_FACTOR), len(ranges)


@dataclass(frozen=True)
class RelapseMonitor:
    """Per-patient CUSUM relapse flags.

    Attributes
    ----------
    signal
        The column that was monitored.
    direction
        ``"rise"`` (a relapse raises the signal) or ``"fall"``.
    alpha
        The per-patient false-alarm probability over each patient's follow-up.
    k
        The CUSUM reference value in scale units (half the shift to detect).
    per_patient
        One row per subject: ``monitorable`` (bool), ``reason`` (why not, else empty),
        ``n_baseline``, ``n_followup``, ``reference_mean``, ``scale``,
        ``scale_source`` (``"own-baseline"``, ``"given"``, ``"stable-patients"`` or
        ``"cohort-baselines"``), ``threshold`` (h, scale units), ``flag``,
        ``alarm_time`` (timepoint of the first sample whose statistic exceeds h; NaN if
        none), ``max_statistic``, ``relapse_time`` (clinical, when given) and
        ``lead_time`` (``relapse_time - alarm_time``: positive when the molecular alarm
        came first).
    paths
        One row per follow-up sample of a monitorable patient: ``subject_id``,
        ``timepoint``, ``value``, ``z``, ``statistic`` and ``alarm`` (statistic > h).
    cohort_scale
        The cohort-level within-patient scale for patients with one baseline sample
        (``scale`` when given, else from moving ranges; NaN when none is available).
    """

    signal: str
    direction: Direction
    alpha: float
    k: float
    per_patient: pd.DataFrame
    paths: pd.DataFrame
    cohort_scale: float


def monitor_relapse(
    samples: pd.DataFrame,
    *,
    signal: str,
    direction: Direction = "rise",
    alpha: float = 0.05,
    shift: float = 1.0,
    baseline_phase: str = "baseline",
    scale: float | None = None,
    min_own_baseline: int = 2,
    stable_subjects: Iterable[str] | None = None,
    relapse_column: str | None = "relapse_time",
    n_simulations: int = 20_000,
    seed: int = 0,
) -> RelapseMonitor:
    """Flag molecular relapse per patient with a one-sided CUSUM against the baseline.

    For each patient the follow-up samples (``phase != baseline_phase``, in timepoint
    order) are standardised against the patient's baseline samples,
    ``z_t = (x_t - mean(baseline)) / scale`` (negated for ``direction="fall"``), and
    accumulated in Page's upper CUSUM ``S_t = max(0, S_{t-1} + z_t - k)`` with
    ``k = shift / 2`` (Page, *Biometrika* 41:100, 1954; Montgomery, *Introduction to
    Statistical Quality Control*, 7th ed., sec. 9.1). The patient is flagged at the first
    sample with ``S_t > h``.

    The scale is the standard deviation of the patient's baseline samples when there are
    at least ``min_own_baseline`` (default 2); otherwise ``scale`` when given; otherwise a cohort-level within-patient
    scale from moving ranges (:func:`moving_range_scale`) of ``stable_subjects``' samples,
    or, without them, of the baseline samples of patients with several. The threshold
    ``h`` is calibrated per patient (its numbers of baseline and follow-up samples, and
    whether its scale is its own) so that a stable patient raises a false alarm with
    probability ``alpha`` over its follow-up (:func:`cusum_threshold`), not a fixed
    number.

    Parameters
    ----------
    samples
        One row per sample with ``subject_id``, ``timepoint`` (numeric, e.g. days),
        ``phase`` and the ``signal`` column; optionally ``relapse_column`` (the
        patient's clinical relapse time on the timepoint scale, NaN when none).
    signal
        The column to monitor.
    direction
        ``"rise"`` when relapse raises the signal, ``"fall"`` when it lowers it.
    alpha
        Per-patient false-alarm probability over the follow-up.
    shift
        The shift to detect, in scale units (sets ``k = shift / 2``).
    baseline_phase
        The phase of the reference samples.
    scale
        A known within-patient scale, used for patients with too few baseline samples
        for their own.
    min_own_baseline
        Baseline samples needed for a patient's own scale (at least 2). A standard
        deviation from 2 or 3 samples is so uncertain that the calibrated threshold
        grows several-fold (``h`` ~ 62 scale units for 2 baselines and 10 follow-ups,
        ~ 8 with a cohort scale: :func:`cusum_threshold`); raise it when a cohort scale
        is available.
    stable_subjects
        Patients known to be stable, whose samples estimate the cohort scale.
    relapse_column
        Column of the clinical relapse time; ``None`` or absent for none.
    n_simulations, seed
        Monte Carlo size and seed of the threshold calibration.

    Returns
    -------
    RelapseMonitor

    Raises
    ------
    MethodInputError
        A required column is missing, the signal or timepoints are not numeric, the
        direction is unknown, or a patient has two different relapse times. Patients
        that cannot be monitored (no baseline, no follow-up, missing timepoints, no
        scale) are rows with ``monitorable = False`` and a ``reason``.
    """
    required = ["subject_id", "timepoint", "phase", signal]
    missing = [c for c in required if c not in samples.columns]
    if missing:
        raise MethodInputError(
            f"samples lack column(s) {', '.join(missing)}", place="samples", rule="columns"
        )
    if direction not in ("rise", "fall"):
        raise MethodInputError(
            f"direction must be 'rise' or 'fall', got {direction!r}", rule="direction"
        )
    if not shift > 0:
        raise MethodInputError(f"shift must be positive, got {shift}", rule="cusum-shift")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise MethodInputError(f"scale must be positive, got {scale}", rule="cusum-scale")
    for column in ("timepoint", signal):
        if not pd.api.types.is_numeric_dtype(samples[column]):
            raise MethodInputError(
                f"column {column!r} must be numeric", place="samples", rule="numeric"
            )
    k = shift / 2.0
    sign = 1.0 if direction == "rise" else -1.0
    has_relapse = relapse_column is not None and relapse_column in samples.columns
    frame = samples.copy()
    frame["_baseline"] = frame["phase"].astype(str) == baseline_phase
    frame = frame.sort_values(["subject_id", "timepoint"], kind="stable")

    cohort_scale = float("nan")
    cohort_source = ""
    if scale is not None:
        cohort_scale, cohort_source = float(scale), "given"
    else:
        stable = set(stable_subjects) if stable_subjects is not None else set()
        if stable:
            pool = frame[frame["subject_id"].isin(stable) & frame["timepoint"].notna()]
            cohort_scale, _ = moving_range_scale(pool[signal], pool["subject_id"])
            cohort_source = "stable-patients"
        else:
            pool = frame[frame["_baseline"] & frame["timepoint"].notna()]
            cohort_scale, _ = moving_range_scale(pool[signal], pool["subject_id"])
            cohort_source = "cohort-baselines"
        if not (np.isfinite(cohort_scale) and cohort_scale > 0):
            cohort_scale = float("nan")

    thresholds: dict[tuple[int, int, bool], float] = {}
    rows: list[dict[str, object]] = []
    paths: list[pd.DataFrame] = []
    for subject, group in frame.groupby("subject_id", sort=True):
        relapse_time = float("nan")
        if has_relapse:
            times = pd.to_numeric(group[relapse_column], errors="coerce").dropna().unique()
            if len(times) > 1:
                raise MethodInputError(
                    f"subject {subject!r} has {len(times)} different relapse times",
                    place=f"samples column {relapse_column!r}",
                    rule="one-relapse-time",
                )
            if len(times):
                relapse_time = float(times[0])
        row: dict[str, object] = {
            "subject_id": subject,
            "monitorable": False,
            "reason": "",
            "n_baseline": 0,
            "n_followup": 0,
            "reference_mean": np.nan,
            "scale": np.nan,
            "scale_source": "",
            "threshold": np.nan,
            "flag": False,
            "alarm_time": np.nan,
            "max_statistic": np.nan,
            "relapse_time": relapse_time,
            "lead_time": np.nan,
        }
        rows.append(row)
        if group["timepoint"].isna().any():
            row["reason"] = "missing timepoint"
            continue
        measured = group[group[signal].notna()]
        base = measured[measured["_baseline"]]
        follow = measured[~measured["_baseline"]]
        row["n_baseline"], row["n_followup"] = len(base), len(follow)
        if base.empty:
            row["reason"] = "no baseline sample"
            continue
        if follow.empty:
            row["reason"] = "no follow-up sample"
            continue
        if follow["timepoint"].min() < base["timepoint"].max():
            row["reason"] = "follow-up sample before the last baseline sample"
            continue
        if follow["timepoint"].duplicated().any():
            row["reason"] = "two follow-up samples at one timepoint"
            continue
        values = base[signal].to_numpy(dtype=float)
        own = len(values) >= max(min_own_baseline, 2) and float(np.std(values, ddof=1)) > 0
        if own:
            sd, source = float(np.std(values, ddof=1)), "own-baseline"
        elif np.isfinite(cohort_scale):
            sd, source = cohort_scale, cohort_source
        else:
            row["reason"] = "one baseline sample and no cohort scale"
            continue
        key = (len(values), len(follow), own)
        if key not in thresholds:
            thresholds[key] = cusum_threshold(
                n_followup=len(follow),
                n_baseline=len(values),
                own_scale=own,
                k=k,
                alpha=alpha,
                n_simulations=n_simulations,
                seed=seed,
            )
        h = thresholds[key]
        mean = float(values.mean())
        x = follow[signal].to_numpy(dtype=float)
        z = sign * (x - mean) / sd
        s = cusum_path(z, k=k)
        alarm = s > h
        t = follow["timepoint"].to_numpy(dtype=float)
        row.update(
            monitorable=True,
            reference_mean=mean,
            scale=sd,
            scale_source=source,
            threshold=h,
            flag=bool(alarm.any()),
            max_statistic=float(s.max()),
        )
        if alarm.any():
            row["alarm_time"] = float(t[np.argmax(alarm)])
            row["lead_time"] = relapse_time - float(row["alarm_time"])  # type: ignore[arg-type]
        paths.append(
            pd.DataFrame(
                {
                    "subject_id": subject,
                    "timepoint": t,
                    "value": x,
                    "z": z,
                    "statistic": s,
                    "alarm": alarm,
                }
            )
        )
    path_columns = ["subject_id", "timepoint", "value", "z", "statistic", "alarm"]
    return RelapseMonitor(
        signal=signal,
        direction=direction,
        alpha=alpha,
        k=k,
        per_patient=pd.DataFrame(rows),
        paths=pd.concat(paths, ignore_index=True) if paths else pd.DataFrame(columns=path_columns),
        cohort_scale=cohort_scale,
    )
