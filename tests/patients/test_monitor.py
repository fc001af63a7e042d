"""monitor_relapse on generated serial trajectories with known (or no) relapse times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from resistomics.errors import MethodInputError
from resistomics.patients import cusum_path, cusum_threshold, monitor_relapse, moving_range_scale

SIGMA = 0.2
STEP = 30.0  # days between follow-up samples
LEAD = 120.0  # clinical relapse this long after the molecular change


def _cohort(
    n: int,
    *,
    n_baseline: int,
    n_followup: int = 12,
    change: int | None = None,
    effect: float = 0.0,
    seed: int = 0,
    prefix: str = "p",
) -> pd.DataFrame:
    """Each patient has its own level ~U(1, 5) and i.i.d. N(0, SIGMA) noise; from follow-up
    sample ``change`` on, the level is shifted by ``effect * SIGMA`` (the planted relapse,
    at day ``STEP * (change + 1)``), and the clinical relapse is recorded LEAD days later."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        level = rng.uniform(1, 5)
        relapse = STEP * (change + 1) + LEAD if change is not None else np.nan
        for j in range(n_baseline):
            rows.append(
                {
                    "subject_id": f"{prefix}{i}",
                    "timepoint": -7.0 * (n_baseline - 1 - j),
                    "phase": "baseline",
                    "signal": level + SIGMA * rng.standard_normal(),
                    "relapse_time": relapse,
                }
            )
        for j in range(n_followup):
            shifted = change is not None and j >= change
            rows.append(
                {
                    "subject_id": f"{prefix}{i}",
                    "timepoint": STEP * (j + 1),
                    "phase": "on-treatment",
                    "signal": level + effect * SIGMA * shifted + SIGMA * rng.standard_normal(),
                    "relapse_time": relapse,
                }
            )
    return pd.DataFrame(rows)


def _binomial_ok(flags: pd.Series, alpha: float) -> None:
    """The false-alarm count lies in the central 99% binomial interval of alpha."""
    n = len(flags)
    lo, hi = stats.binom.ppf([0.005, 0.995], n, alpha)
    assert lo <= int(flags.sum()) <= hi, (int(flags.sum()), n, lo, hi)


def test_cusum_path_matches_the_recursion() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0.3, 1.0, size=25)
    expected, s = [], 0.0
    for value in z:
        s = max(0.0, s + value - 0.5)
        expected.append(s)
    np.testing.assert_allclose(cusum_path(z, k=0.5), expected)
    # rows are independent series
    np.testing.assert_allclose(cusum_path(np.vstack([z, -z]), k=0.5)[0], expected)


def test_threshold_is_the_simulated_null_quantile_and_grows_with_follow_up() -> None:
    h6 = cusum_threshold(n_followup=6, n_baseline=4, own_scale=False, k=0.5, alpha=0.05)
    h12 = cusum_threshold(n_followup=12, n_baseline=4, own_scale=False, k=0.5, alpha=0.05)
    h12_own = cusum_threshold(n_followup=12, n_baseline=4, own_scale=True, k=0.5, alpha=0.05)
    h12_strict = cusum_threshold(n_followup=12, n_baseline=4, own_scale=False, k=0.5, alpha=0.01)
    assert 0 < h6 < h12 < h12_own
    assert h12_strict > h12
    # an independent simulation (other seed) alarms at the stated rate with this h
    rng = np.random.default_rng(123)
    base = rng.standard_normal((20_000, 4)).mean(axis=1, keepdims=True)
    z = rng.standard_normal((20_000, 12)) - base
    rate = (cusum_path(z, k=0.5).max(axis=1) > h12).mean()
    assert abs(rate - 0.05) < 0.006


def test_moving_range_scale_recovers_the_within_patient_sd() -> None:
    cohort = _cohort(60, n_baseline=2, seed=4)
    cohort.loc[cohort.index[::50], "signal"] += 5.0  # a few aberrant samples
    scale, n = moving_range_scale(cohort["signal"], cohort["subject_id"])
    assert n == 60 * 13
    assert scale == pytest.approx(SIGMA, rel=0.1)


@pytest.mark.parametrize(
    ("n_baseline", "options"),
    [
        (3, {}),  # own baseline scale
        (1, {"scale": SIGMA}),  # a given cohort scale
        (1, {"stable": True}),  # the cohort scale from stable patients
    ],
)
def test_false_alarms_on_stable_patients_are_at_alpha(
    n_baseline: int, options: dict[str, object]
) -> None:
    alpha = 0.05
    null = _cohort(400, n_baseline=n_baseline, n_followup=10, seed=1)
    kwargs: dict[str, object] = {}
    if "scale" in options:
        kwargs["scale"] = options["scale"]
    if options.get("stable"):
        stable = _cohort(40, n_baseline=3, n_followup=10, seed=9, prefix="s")
        null = pd.concat([null, stable], ignore_index=True)
        kwargs["stable_subjects"] = [f"s{i}" for i in range(40)]
    result = monitor_relapse(null, signal="signal", alpha=alpha, **kwargs)  # type: ignore[arg-type]
    pp = result.per_patient
    pp = pp[pp["subject_id"].str.startswith("p")]
    assert pp["monitorable"].all()
    assert pp["lead_time"].isna().all()  # no clinical relapse given
    _binomial_ok(pp["flag"], alpha)
    if options.get("stable"):
        assert result.cohort_scale == pytest.approx(SIGMA, rel=0.15)
        assert set(pp["scale_source"]) == {"stable-patients"}


@pytest.mark.parametrize(
    ("n_baseline", "effect", "options"),
    [
        (4, 4.0, {}),  # own scale from 4 baseline samples, a 4-SD step
        (3, 3.0, {"min_own_baseline": 99, "stable": True}),  # cohort scale, a 3-SD step
    ],
)
def test_planted_relapse_is_detected_after_the_change_with_its_lead_time(
    n_baseline: int, effect: float, options: dict[str, object]
) -> None:
    change = 5
    change_day = STEP * (change + 1)
    cohort = _cohort(200, n_baseline=n_baseline, change=change, effect=effect, seed=3)
    kwargs: dict[str, object] = {}
    if "min_own_baseline" in options:
        kwargs["min_own_baseline"] = options["min_own_baseline"]
    if options.get("stable"):
        stable = _cohort(40, n_baseline=3, seed=9, prefix="s")
        cohort = pd.concat([cohort, stable], ignore_index=True)
        kwargs["stable_subjects"] = [f"s{i}" for i in range(40)]
    result = monitor_relapse(cohort, signal="signal", alpha=0.05, shift=2.0, **kwargs)  # type: ignore[arg-type]
    pp = result.per_patient
    pp = pp[pp["subject_id"].str.startswith("p")]
    assert pp["flag"].mean() >= 0.9
    flagged = pp[pp["flag"]]
    # alarms come after the planted change (a false alarm before it is at most ~alpha)
    assert (flagged["alarm_time"] >= change_day).mean() >= 0.95
    # lead time is clinical relapse minus alarm, and recovers the planted lead less the
    # detection delay (a few samples)
    np.testing.assert_allclose(
        flagged["lead_time"], flagged["relapse_time"] - flagged["alarm_time"]
    )
    assert LEAD - 3 * STEP <= flagged["lead_time"].median() <= LEAD
    # the statistic path is the CUSUM of the patient's standardised follow-up
    one = flagged.iloc[0]
    path = result.paths[result.paths["subject_id"] == one["subject_id"]]
    np.testing.assert_allclose(path["statistic"], cusum_path(path["z"].to_numpy(), k=1.0))
    assert path["timepoint"][path["alarm"]].min() == one["alarm_time"]


def test_direction_fall_detects_a_drop_and_ignores_a_rise() -> None:
    drop = _cohort(100, n_baseline=4, change=3, effect=-4.0, seed=5)
    fall = monitor_relapse(drop, signal="signal", direction="fall", shift=2.0).per_patient
    rise = monitor_relapse(drop, signal="signal", direction="rise", shift=2.0).per_patient
    assert fall["flag"].mean() >= 0.9
    assert rise["flag"].mean() <= 0.1


def test_patients_that_cannot_be_monitored_are_rows_with_a_reason() -> None:
    cohort = _cohort(3, n_baseline=2, n_followup=4, seed=6)
    no_baseline = cohort[cohort["subject_id"] == "p0"].query("phase != 'baseline'")
    one_sample = cohort[cohort["subject_id"] == "p1"].head(1)
    missing_time = cohort[cohort["subject_id"] == "p2"].copy()
    missing_time.loc[missing_time.index[-1], "timepoint"] = np.nan
    frame = pd.concat([no_baseline, one_sample, missing_time], ignore_index=True)
    result = monitor_relapse(frame, signal="signal")
    pp = result.per_patient.set_index("subject_id")
    assert not pp["monitorable"].any()
    assert not pp["flag"].any()
    assert result.paths.empty
    assert pp.loc["p0", "reason"] == "no baseline sample"
    assert pp.loc["p1", "reason"] == "no follow-up sample"
    assert pp.loc["p2", "reason"] == "missing timepoint"
    # one baseline sample and no other patient to estimate a cohort scale from
    single = _cohort(1, n_baseline=1, n_followup=4, seed=7, prefix="q")
    pp = monitor_relapse(single, signal="signal").per_patient.set_index("subject_id")
    assert pp.loc["q0", "reason"] == "one baseline sample and no cohort scale"
    # ... but monitorable with a given scale
    assert monitor_relapse(single, signal="signal", scale=SIGMA).per_patient["monitorable"].all()


def test_bad_input_raises_one_line_errors() -> None:
    cohort = _cohort(2, n_baseline=2, n_followup=3)
    with pytest.raises(MethodInputError, match=r"\[columns\].*signal"):
        monitor_relapse(cohort.drop(columns="signal"), signal="signal")
    with pytest.raises(MethodInputError, match=r"\[direction\]"):
        monitor_relapse(cohort, signal="signal", direction="up")  # type: ignore[arg-type]
    with pytest.raises(MethodInputError, match=r"\[cusum-alpha\]"):
        monitor_relapse(cohort, signal="signal", alpha=1.5)
    text = cohort.assign(signal=cohort["signal"].astype(str))
    with pytest.raises(MethodInputError, match=r"\[numeric\]"):
        monitor_relapse(text, signal="signal")
    two = cohort.copy()
    two.loc[two.index[0], "relapse_time"] = 10.0
    two.loc[two.index[1], "relapse_time"] = 20.0
    with pytest.raises(MethodInputError, match=r"\[one-relapse-time\]"):
        monitor_relapse(two, signal="signal")
