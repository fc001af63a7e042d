"""Metabolite-set enrichment: oracles (hand computation, scipy, limma's geneSetTest),
planted and null sets, and Su 2020 (COVID-19 vs healthy donors)."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import su2020
from resistomics.errors import MethodInputError
from resistomics.knowledge import builtin_metabolic_programs, load_metabolite_sets
from resistomics.modalities.metabolomics._enrichment import (
    fry,
    over_representation,
    rank_set_test,
)
from resistomics.modalities.metabolomics._limma import limma_moderated_t

# limma 3.54.1 references made by limma_sets/limma_sets.R (CI has no R)
SETS = Path(__file__).parent / "limma_sets"


def test_hypergeometric_p_by_hand_and_by_fisher() -> None:
    universe = [f"M{i}" for i in range(40)]
    selected = universe[:10]  # n = 10 of N = 40
    sets = {"S": universe[:4] + universe[10:16] + ["X1", "X2"]}  # K = 10, k = 4
    row = over_representation(selected, universe, sets, min_size=1).iloc[0]
    n_uni, big_k, n, k = 40, 10, 10, 4
    by_hand = sum(
        math.comb(big_k, i) * math.comb(n_uni - big_k, n - i) for i in range(k, min(big_k, n) + 1)
    ) / math.comb(n_uni, n)
    fisher = stats.fisher_exact([[k, big_k - k], [n - k, n_uni - big_k - n + k]], "greater")
    assert row["p"] == pytest.approx(by_hand, rel=1e-12)
    assert row["p"] == pytest.approx(fisher.pvalue, rel=1e-9)
    assert (row["set_size"], row["n_measured"], row["n_selected"]) == (12, 10, 4)
    assert row["expected"] == pytest.approx(2.5) and row["fold"] == pytest.approx(1.6)
    assert row["hits"] == "M0;M1;M2;M3"


def test_sets_outside_the_size_bounds_keep_a_row_without_p() -> None:
    universe = [f"M{i}" for i in range(20)]
    sets = {"small": ["M0", "M1", "Y"], "ok": universe[:5], "none": ["Z"]}
    res = over_representation(universe[:3], universe, sets, min_size=3)
    assert list(res["set_id"]) == ["ok", "small"]  # "none" has no measured member
    small = res.set_index("set_id").loc["small"]
    assert not small["tested"] and np.isnan(small["p"]) and np.isnan(small["q"])
    with pytest.raises(MethodInputError, match="not in the universe"):
        over_representation(["Q"], universe, sets)


def test_rank_test_agrees_with_scipy_mann_whitney_with_ties() -> None:
    rng = np.random.default_rng(0)
    t = pd.Series(np.round(rng.normal(size=300), 1), index=[f"M{i}" for i in range(300)])
    t.iloc[:15] += 1.0
    members = list(t.index[:15]) + list(t.index[100:105])
    res = rank_set_test(t, {"S": members}, alternative="up").iloc[0]
    inside = t.index.isin(members)
    mw = stats.mannwhitneyu(
        t[inside], t[~inside], alternative="greater", method="asymptotic", use_continuity=True
    )
    assert res["p"] == pytest.approx(mw.pvalue, rel=1e-10)
    mixed = rank_set_test(t, {"S": members}, alternative="mixed").iloc[0]
    mw_abs = stats.mannwhitneyu(
        t[inside].abs(), t[~inside].abs(), alternative="greater", method="asymptotic"
    )
    assert mixed["p"] == pytest.approx(mw_abs.pvalue, rel=1e-10)


def test_rank_test_matches_limma_gene_set_test() -> None:
    """limma 3.54.1 ``geneSetTest`` on the committed statistics (``limma_sets/``: the data,
    ``limma_sets.R`` and its output), every alternative, within 1e-9."""
    t = np.loadtxt(SETS / "gene_set_test_stats.txt")
    ids = [f"M{i}" for i in range(len(t))]
    sets = {"up": list(range(0, 8)), "down": list(range(8, 14)), "mixed": list(range(0, 14, 2))}
    members = {k: [ids[i] for i in v] for k, v in sets.items()}
    ref = pd.read_csv(SETS / "gene_set_test_reference.tsv", sep="\t")
    assert len(ref) == 12
    for alternative, name, p in ref.itertuples(index=False):
        ours = rank_set_test(pd.Series(t, index=ids), members, alternative=alternative, min_size=1)  # type: ignore[arg-type]
        assert ours.set_index("set_id").loc[name, "p"] == pytest.approx(float(p), rel=1e-9)


def _planted(seed: int) -> tuple[pd.Series, dict[str, list[str]], pd.Series]:
    """200 metabolites, 12 + 12 samples; set P0 of 10 metabolites shifted in group 2."""
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(24, 200))
    group = np.repeat([0.0, 1.0], 12)
    y[group == 1, :10] += 1.2
    fit = limma_moderated_t(y, np.column_stack([np.ones(24), group]), coef=1)
    ids = [f"CHEBI:{i + 1}" for i in range(200)]
    sets = {"P0": ids[:10]}
    for j in range(1, 30):  # null sets from the unchanged metabolites
        sets[f"N{j}"] = list(rng.choice(ids[10:], size=10, replace=False))
    return pd.Series(fit.t, index=ids), sets, pd.Series(fit.p_adj, index=ids)


def test_planted_set_comes_out_on_top_and_null_sets_do_not() -> None:
    t, sets, q = _planted(7)
    ora = over_representation(q.index[q < 0.05], q.index, sets)
    rank = rank_set_test(t, sets, alternative="up")
    for res in (ora, rank):
        assert res.iloc[0]["set_id"] == "P0" and res.iloc[0]["q"] < 1e-3
        assert (res.loc[res["set_id"] != "P0", "q"] > 0.05).all()


def test_null_sets_are_calibrated() -> None:
    # no change anywhere: p of 400 random sets is uniform, so about 5 % fall below 0.05
    rng = np.random.default_rng(11)
    t = pd.Series(rng.normal(size=500), index=[f"M{i}" for i in range(500)])
    sets = {f"S{j}": list(rng.choice(t.index, size=15, replace=False)) for j in range(400)}
    for alternative in ("up", "mixed", "either"):
        p = rank_set_test(t, sets, alternative=alternative)["p"]  # type: ignore[arg-type]
        assert 0.02 <= (p < 0.05).mean() <= 0.09
        assert stats.kstest(p, "uniform").pvalue > 0.01


def test_rank_test_bad_input() -> None:
    with pytest.raises(MethodInputError, match="alternative"):
        rank_set_test({"a": 1.0, "b": 2.0}, {}, alternative="sideways")  # type: ignore[arg-type]
    with pytest.raises(MethodInputError, match="min_size"):
        rank_set_test({"a": 1.0, "b": 2.0}, {}, min_size=5, max_size=2)


@pytest.fixture(scope="module")
def su2020_da() -> pd.DataFrame:
    """limma COVID19 vs Healthy Donor on the log raw table, metabolites named by ChEBI
    (study-derived map first, then the catalogue's names)."""
    from resistomics.modalities.metabolomics._names import NameMap, match_names

    raw = su2020.raw()
    names = [c for c in raw.columns if c not in su2020.META]
    study = NameMap(
        "su2020", ("chebi",), tuple((n, {"chebi": c}) for n, c, _ in su2020.name_to_chebi())
    )
    catalogue = NameMap.from_mapping(
        "builtin", builtin_metabolic_programs().name_map(), kind="chebi"
    )
    ids = match_names(names, study, catalogue).identifiers()
    group_of = raw["Group"].str.strip()
    keep = group_of.isin(["COVID19", "Healthy Donor"])
    logs = np.log(raw.loc[keep, list(ids)].astype(float))
    logs = logs.loc[:, logs.notna().mean() >= 0.5]
    group = (group_of[keep] == "COVID19").to_numpy(dtype=float)
    fit = limma_moderated_t(logs.to_numpy(), np.column_stack([np.ones(len(group)), group]), coef=1)
    return pd.DataFrame(
        {"name": logs.columns, "chebi": [ids[n] for n in logs.columns], "t": fit.t, "q": fit.p_adj}
    ).set_index("chebi")


@pytest.mark.skipif(not su2020.SU2020.exists(), reason="shared Su 2020 data not present")
def test_su2020_kynurenine_pathway_changes_in_covid(su2020_da: pd.DataFrame) -> None:
    da = su2020_da.set_index("name")
    assert (da.loc[["kynurenine", "quinolinate"], "t"] > 0).all()
    assert (da.loc[["tryptophan", "citrulline"], "t"] < 0).all()
    assert (da.loc[["kynurenine", "quinolinate", "tryptophan", "citrulline"], "q"] < 0.05).all()


def test_fry_matches_limma_fry() -> None:
    """limma 3.54.1 ``fry`` (``standardize="none"``, a signed set, correlated members) on
    the committed values (``limma_sets/``), within 1e-8."""
    y = np.loadtxt(SETS / "fry_values.tsv", delimiter="\t").T
    group = np.repeat([0.0, 1.0], 8)
    design = np.column_stack([np.ones(16), group])
    ids = [f"M{i}" for i in range(60)]
    sets = {"a": ids[:6], "b": ids[10:20], "c": ids[3:9], "d": ids[30:31]}
    signs = {"c": {"M3": -1.0, "M7": -1.0}}
    ref = pd.read_csv(SETS / "fry_reference.tsv", sep="\t", index_col=0)
    ours = fry(
        y, design, coef=1, features=ids, sets=sets, signs=signs, standardize="none", min_size=1
    ).set_index("set_id")
    for name in sets:
        assert ours.loc[name, "p"] == pytest.approx(ref.loc[name, "PValue"], rel=1e-8)
        assert ours.loc[name, "p_mixed"] == pytest.approx(ref.loc[name, "PValue.Mixed"], rel=1e-8)
        assert ours.loc[name, "direction"] == ref.loc[name, "Direction"]


def test_fry_finds_a_planted_set_and_is_calibrated_on_null_sets() -> None:
    rng = np.random.default_rng(5)
    y = rng.normal(size=(30, 300))
    group = np.repeat([0.0, 1.0], 15)
    y[group == 1, :8] += 1.0
    ids = [f"M{i}" for i in range(300)]
    sets = {"planted": ids[:8]}
    sets |= {f"N{j}": list(rng.choice(ids[8:], size=10, replace=False)) for j in range(300)}
    res = fry(y, np.column_stack([np.ones(30), group]), coef=1, features=ids, sets=sets)
    top = res.sort_values("p").iloc[0]
    assert top["set_id"] == "planted" and top["q"] < 1e-4 and top["direction"] == "Up"
    null = res.loc[res["set_id"] != "planted", "p"]
    assert 0.01 <= (null < 0.05).mean() <= 0.1


def test_fry_refuses_missing_values() -> None:
    y = np.ones((6, 3))
    y[0, 0] = np.nan
    with pytest.raises(MethodInputError, match="complete"):
        fry(y, np.column_stack([np.ones(6), [0, 0, 0, 1, 1, 1]]), coef=1, features="abc", sets={})


@pytest.fixture(scope="module")
def su2020_imputed(su2020_da: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Log raw abundances (half-minimum imputed) of the metabolites in ``su2020_da``."""
    from resistomics.modalities.metabolomics._processing import impute_half_minimum

    raw = su2020.raw()
    group_of = raw["Group"].str.strip()
    keep = group_of.isin(["COVID19", "Healthy Donor"])
    values = raw.loc[keep, list(su2020_da["name"])].astype(float).to_numpy()
    logs = np.log(impute_half_minimum(values.T).T)
    group = (group_of[keep] == "COVID19").to_numpy(dtype=float)
    return logs, np.column_stack([np.ones(len(group)), group]), list(su2020_da.index)


@pytest.mark.skipif(not su2020.SU2020.exists(), reason="shared Su 2020 data not present")
def test_su2020_reactome_tryptophan_catabolism(
    su2020_da: pd.DataFrame, su2020_imputed: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    from resistomics.knowledge import read_reactome_chebi

    plain = read_reactome_chebi(su2020.REACTOME)
    widened = load_metabolite_sets("reactome", reactome=su2020.REACTOME)
    measured = set(su2020_da.index)
    # Reactome keys L-tryptophan and the amino acids as zwitterions (CHEBI:57912, ...):
    # without the catalogue's equivalents only kynurenine and kynurenate are found, and
    # min_size (3) drops the set
    assert set(plain["R-HSA-71240"].members) & measured == {"CHEBI:16946", "CHEBI:18344"}
    assert {"CHEBI:16828", "CHEBI:16946", "CHEBI:18344"} <= set(widened["R-HSA-71240"].members)
    names = {s.set_id: s.name for s in widened.sets}
    values, design, ids = su2020_imputed
    res = fry(values, design, coef=1, features=ids, sets=widened.as_mapping(), names=names)
    row = res.set_index("set_id").loc["R-HSA-71240"]
    assert row["name"] == "Tryptophan catabolism" and row["n_measured"] >= 7
    assert row["tested"] and row["q"] < 0.05 and row["direction"] == "Up"
    # the competitive tests: a row each, tested (what the previous attempt lacked)
    rank = rank_set_test(su2020_da["t"], widened.as_mapping()).set_index("set_id")
    ora = over_representation(
        su2020_da.index[su2020_da["q"] < 0.05], su2020_da.index, widened.as_mapping()
    ).set_index("set_id")
    assert rank.loc["R-HSA-71240", "tested"] and ora.loc["R-HSA-71240", "tested"]


@pytest.mark.skipif(not su2020.SU2020.exists(), reason="shared Su 2020 data not present")
def test_su2020_builtin_tryptophan_kynurenine_program(
    su2020_da: pd.DataFrame, su2020_imputed: tuple[np.ndarray, np.ndarray, list[str]]
) -> None:
    programs = builtin_metabolic_programs()
    values, design, ids = su2020_imputed
    signs = {s.set_id: s.signs() for s in programs.sets}
    res = fry(values, design, coef=1, features=ids, sets=programs.as_mapping(), signs=signs)
    row = res.set_index("set_id").loc["TRYPTOPHAN_KYNURENINE"]
    # tryptophan (consumed, weight -1), kynurenine, kynurenate, quinolinate, ... measured
    assert row["n_measured"] >= 5
    assert row["direction"] == "Up" and row["q"] < 1e-6
    assert res.sort_values("p").iloc[0]["set_id"] in {
        "TRYPTOPHAN_KYNURENINE",
        "GLUTATHIONE_REDOX",
        "SPHINGOLIPID_CERAMIDE",
    }
