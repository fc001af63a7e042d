"""resistant_fraction_shift on cohorts with a planted expansion of program-high cells."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from resistomics.errors import MethodInputError
from resistomics.signatures import resistant_fraction_shift


def _cohort(
    n_subjects: int = 10, cells: int = 200, expanded_share: float = 0.3, seed: int = 0
) -> tuple[pd.Series, pd.DataFrame]:
    """Baseline and on-treatment cells score ~N(0, 1); at progression a share of each
    subject's cells is shifted up by 3 (the planted resistant expansion)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(n_subjects):
        for phase, day, shift_share in (
            ("baseline", 0, 0.0),
            ("on-treatment", 14, 0.0),
            ("progression", 120, expanded_share),
        ):
            score = rng.normal(size=cells)
            score[rng.random(cells) < shift_share] += 3.0
            frames.append(
                pd.DataFrame(
                    {"subject_id": f"P{s:02d}", "phase": phase, "timepoint": day, "score": score}
                )
            )
    cells_frame = pd.concat(frames, ignore_index=True)
    cells_frame.index = [f"cell{i}" for i in range(len(cells_frame))]
    return cells_frame.pop("score"), cells_frame


def test_planted_expansion_is_found():
    scores, obs = _cohort()
    shift = resistant_fraction_shift(scores, obs, threshold="auto")
    baseline = scores[obs["phase"] == "baseline"]
    assert shift.threshold == pytest.approx(np.quantile(baseline, 0.95))
    progression = shift.cohort.loc["progression"]
    assert progression["n_subjects"] == 10
    assert progression["median_change"] > 0.15
    assert progression["pvalue"] < 0.01  # exact signed-rank p for 10/10 positive: 0.002
    assert shift.cohort.loc["on-treatment", "pvalue"] > 0.01


def test_per_subject_table_is_exact():
    scores, obs = _cohort(n_subjects=4, cells=50, seed=1)
    shift = resistant_fraction_shift(scores, obs, threshold=1.0)
    table = shift.per_subject
    assert table.index.names == ["subject_id", "phase"]
    for (subject, phase), row in table.iterrows():
        mask = (obs["subject_id"] == subject) & (obs["phase"] == phase)
        base = (obs["subject_id"] == subject) & (obs["phase"] == "baseline")
        fraction = (scores[mask] > 1.0).mean()
        assert row["n_cells"] == mask.sum()
        assert row["n_above"] == (scores[mask] > 1.0).sum()
        assert row["fraction"] == pytest.approx(fraction)
        assert row["change"] == pytest.approx(fraction - (scores[base] > 1.0).mean())
        assert row["timepoint"] == obs.loc[mask, "timepoint"].min()
    changes = table.xs("progression", level="phase")["change"].to_numpy()
    expected = stats.wilcoxon(changes)
    assert shift.cohort.loc["progression", "pvalue"] == pytest.approx(expected.pvalue)
    assert shift.cohort.loc["progression", "statistic"] == pytest.approx(expected.statistic)


def test_subject_without_baseline_is_left_out_of_the_test():
    scores, obs = _cohort(n_subjects=6, cells=40, seed=2)
    drop = (obs["subject_id"] == "P00") & (obs["phase"] == "baseline")
    scores, obs = scores[~drop], obs[~drop]
    shift = resistant_fraction_shift(scores, obs, threshold=0.5, alternative="greater")
    assert np.isnan(shift.per_subject.loc[("P00", "progression"), "change"])
    assert shift.cohort.loc["progression", "n_subjects"] == 5


def test_no_change_gives_no_evidence():
    scores, obs = _cohort(n_subjects=5, cells=30, seed=3)
    shift = resistant_fraction_shift(scores, obs, threshold=100.0)  # nobody above
    assert (shift.cohort["pvalue"] == 1.0).all()
    assert (shift.per_subject["n_above"] == 0).all()


def test_rejects_bad_input():
    scores, obs = _cohort(n_subjects=3, cells=10)
    with pytest.raises(MethodInputError, match="subject_id"):
        resistant_fraction_shift(scores, obs.drop(columns="subject_id"), threshold=0.0)
    with pytest.raises(MethodInputError, match="not in obs"):
        resistant_fraction_shift(scores, obs.iloc[5:], threshold=0.0)
    with pytest.raises(MethodInputError, match="baseline cells"):
        resistant_fraction_shift(scores, obs, threshold="auto", baseline_phase="screening")
    bad = scores.copy()
    bad.iloc[0] = np.nan
    with pytest.raises(MethodInputError, match="finite"):
        resistant_fraction_shift(bad, obs, threshold=0.0)
