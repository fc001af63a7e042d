"""Per-sample program scores (combined z, Lee et al. 2008): hand computation, planted
program, Su 2020 tryptophan-kynurenine."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import su2020
from resistomics.errors import MethodInputError
from resistomics.knowledge import builtin_metabolic_programs
from resistomics.modalities.metabolomics._names import NameMap, match_names
from resistomics.modalities.metabolomics._scores import program_scores


def test_scores_by_hand_with_a_consumed_member_and_missing_values() -> None:
    x = pd.DataFrame(
        {"A": [1.0, 2.0, 3.0, 4.0], "B": [2.0, 2.0, 4.0, 4.0], "C": [5.0, np.nan, 1.0, 2.0]},
        index=["s1", "s2", "s3", "s4"],
    )
    res = program_scores(x, {"P": {"A": 1, "B": 1, "C": -1, "absent": 1}})
    z = (x - x.mean()) / x.std(ddof=1)
    expected = [
        (z.loc["s1", "A"] + z.loc["s1", "B"] - z.loc["s1", "C"]) / np.sqrt(3),
        (z.loc["s2", "A"] + z.loc["s2", "B"]) / np.sqrt(2),  # C missing in s2
    ]
    np.testing.assert_allclose(res["score"].to_numpy()[:2], expected, rtol=1e-12)
    assert list(res["n_measured"]) == [3, 2, 3, 3]
    assert (res["n_members"] == 3).all() and res.loc[0, "members"] == "A;B;C"
    single = program_scores(x, {"P": {"C": 1}}, min_measured=2)
    assert single["score"].isna().all()  # one member: below min_measured
    none = program_scores(x, {"Q": {"Z": 1}})
    assert none["score"].isna().all() and (none["n_members"] == 0).all()
    with pytest.raises(MethodInputError, match="twice"):
        program_scores(x.rename(columns={"B": "A"}), {"P": {"A": 1}})


def test_planted_program_scores_higher_in_the_changed_samples() -> None:
    rng = np.random.default_rng(4)
    x = pd.DataFrame(rng.normal(size=(40, 50)), columns=[f"M{i}" for i in range(50)])
    changed = np.arange(40) >= 20
    x.loc[changed, ["M0", "M1", "M2", "M3", "M4"]] += 1.0
    x.loc[changed, "M5"] -= 1.0  # consumed
    programs = {"planted": {f"M{i}": 1 for i in range(5)} | {"M5": -1}}
    programs["null"] = {f"M{i}": 1 for i in range(20, 26)}
    res = program_scores(x, programs).pivot(index="sample_id", columns="program", values="score")
    res.index = res.index.astype(int)
    res = res.sort_index()
    assert (
        stats.mannwhitneyu(res.loc[changed, "planted"], res.loc[~changed, "planted"]).pvalue < 1e-6
    )
    assert stats.mannwhitneyu(res.loc[changed, "null"], res.loc[~changed, "null"]).pvalue > 0.01


@pytest.mark.skipif(not su2020.SU2020.exists(), reason="shared Su 2020 data not present")
def test_su2020_tryptophan_kynurenine_score_follows_covid_and_severity() -> None:
    raw = su2020.raw()
    names = [c for c in raw.columns if c not in su2020.META]
    cat = builtin_metabolic_programs()
    catalogue = NameMap.from_mapping("builtin", cat.name_map(), kind="chebi")
    ids = match_names(names, catalogue).identifiers()
    logs = np.log(raw[list(ids)].astype(float)).rename(columns=ids)
    scores = program_scores(logs, {s.set_id: s.signs() for s in cat.sets})
    trp = scores[scores["program"] == "TRYPTOPHAN_KYNURENINE"].set_index("sample_id")
    assert trp["n_members"].iloc[0] >= 6  # tryptophan, kynurenine, kynurenate, quinolinate...
    group = raw["Group"].str.strip().set_axis(raw.index.astype(str))
    covid, healthy = (
        trp.loc[group == "COVID19", "score"],
        trp.loc[group == "Healthy Donor", "score"],
    )
    assert covid.median() > healthy.median()
    assert stats.mannwhitneyu(covid, healthy).pvalue < 1e-10
    # more so with severity (WHO ordinal scale) among the patients
    who = raw["WHO_status"].set_axis(raw.index.astype(str))
    patients = group[group == "COVID19"].index
    severity = pd.to_numeric(who[patients].astype(str).str.extract(r"(\d+)")[0], errors="coerce")
    ok = severity.notna()
    rho = stats.spearmanr(trp.loc[patients[ok], "score"], severity[ok])
    assert rho.statistic > 0.4 and rho.pvalue < 1e-8  # rho 0.62
