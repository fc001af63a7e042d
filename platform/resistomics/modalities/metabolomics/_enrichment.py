"""Metabolite-set enrichment: over-representation and a competitive rank test.

Both take sets as ``set ID -> member identifiers`` (ChEBI IDs from
:mod:`resistomics.knowledge`) and return one row per set that shares at least one member
with the measured metabolites, tested or not: a set whose measured size lies outside
``[min_size, max_size]`` keeps its row with ``tested = False`` and no p-value, so a
missing result is visible (and why). Benjamini-Hochberg runs over the tested sets.

* :func:`over_representation`: the hypergeometric test of the selected (e.g.
  differentially abundant) metabolites in each set, with the measured metabolites that
  carry an identifier as the universe (Fisher's exact test, one-sided; as
  MetaboAnalyst's ORA, Xia & Wishart, *Nucleic Acids Res.* 38:W71, 2010, and the
  universe rule of Wieder et al., *PLoS Comput. Biol.* 17:e1009105, 2021: only
  metabolites that were measured and could be annotated are drawn).
* :func:`rank_set_test`: limma's ``geneSetTest(ranks.only = TRUE)`` / ``wilcoxGST``, a
  competitive Wilcoxon rank-sum test of the set's per-metabolite statistics (signed t)
  against all other measured metabolites, normal approximation with continuity and tie
  corrections and inter-metabolite correlation 0 (Michaud et al., *BMC Genomics* 9:363,
  2008; Wu & Smyth, *Nucleic Acids Res.* 40:e133, 2012, for the correlation term; limma
  3.54.1 ``rankSumTestWithCorrelation``).
* :func:`fry`: limma's ``fry``, a self-contained test (is the set changed at all, rather
  than more than the other metabolites?) on the samples x metabolites matrix: the
  rotation test ROAST of Wu et al., *Bioinformatics* 26:2176 (2010) in the closed-form
  approximation of Giner & Smyth, *F1000Research* 5:2605 (2016), which keeps the
  correlation between metabolites. When most of a study's metabolites change (two thirds
  of them in Su 2020, COVID-19 vs healthy), competitive tests have little room and a
  self-contained test answers the question asked of a pathway.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

from resistomics.errors import MethodInputError
from resistomics.modalities.metabolomics._limma import _fit_f_dist, benjamini_hochberg

__all__ = ["fry", "over_representation", "rank_set_test"]

Alternative = Literal["up", "down", "either", "mixed"]


def _check_sizes(min_size: int, max_size: int) -> None:
    if min_size < 1 or max_size < min_size:
        raise MethodInputError(f"need 1 <= min_size <= max_size, got {min_size}, {max_size}")


def _frame(rows: list[dict[str, object]], columns: list[str], sort: str) -> pd.DataFrame:
    out = pd.DataFrame(rows, columns=columns)
    tested = out["tested"].to_numpy(dtype=bool)
    q = np.full(len(out), np.nan)
    q[tested] = benjamini_hochberg(out.loc[tested, "p"].to_numpy(dtype=float))
    out["q"] = q
    return out.sort_values([sort, "set_id"], na_position="last", kind="stable").reset_index(
        drop=True
    )


def over_representation(
    selected: Iterable[str],
    universe: Iterable[str],
    sets: Mapping[str, Iterable[str]],
    *,
    names: Mapping[str, str] | None = None,
    min_size: int = 3,
    max_size: int = 500,
) -> pd.DataFrame:
    """Hypergeometric over-representation of ``selected`` in each set.

    With ``N`` measured metabolites (the universe), ``K`` of them in the set, ``n``
    selected and ``k`` selected in the set, ``p = P(X >= k)`` for
    ``X ~ Hypergeometric(N, K, n)`` (``scipy.stats.hypergeom.sf(k - 1, N, K, n)``), the
    one-sided Fisher exact test.

    Parameters
    ----------
    selected
        Identifiers of the selected metabolites (a subset of ``universe``).
    universe
        Identifiers of every measured metabolite that has one.
    sets
        Set ID -> member identifiers.
    names
        Set ID -> display name (default: the ID).
    min_size, max_size
        Bounds on ``K`` (the set's size within the universe) for a set to be tested.

    Returns
    -------
    DataFrame
        ``set_id``, ``name``, ``set_size`` (members), ``n_measured`` (``K``), ``n_selected``
        (``k``), ``expected`` (``n K / N``), ``fold`` (``k / expected``), ``tested``, ``p``,
        ``q`` (BH over tested sets), ``hits`` (``;``-joined selected members); one row per
        set with ``K >= 1``, by p.

    Raises
    ------
    MethodInputError
        Bad size bounds, an empty universe, or a selected identifier outside it.
    """
    _check_sizes(min_size, max_size)
    uni = set(universe)
    sel = set(selected)
    if not uni:
        raise MethodInputError("the universe (measured metabolites with an identifier) is empty")
    if not sel <= uni:
        extra = sorted(sel - uni)
        raise MethodInputError(
            f"{len(extra)} selected identifiers are not in the universe, e.g. {extra[0]!r}"
        )
    n_uni, n_sel = len(uni), len(sel)
    rows: list[dict[str, object]] = []
    for set_id, members in sets.items():
        m = set(members)
        measured = m & uni
        if not measured:
            continue
        hits = sorted(measured & sel)
        big_k, k = len(measured), len(hits)
        tested = min_size <= big_k <= max_size
        expected = n_sel * big_k / n_uni
        rows.append(
            {
                "set_id": set_id,
                "name": (names or {}).get(set_id, set_id),
                "set_size": len(m),
                "n_measured": big_k,
                "n_selected": k,
                "expected": expected,
                "fold": k / expected if expected > 0 else np.nan,
                "tested": tested,
                "p": float(stats.hypergeom.sf(k - 1, n_uni, big_k, n_sel)) if tested else np.nan,
                "hits": ";".join(hits),
            }
        )
    columns = ["set_id", "name", "set_size", "n_measured", "n_selected", "expected", "fold"]
    return _frame(rows, [*columns, "tested", "p", "hits"], "p")


def _rank_sum_p(
    rank_sums: np.ndarray, n1: np.ndarray, n: int, tie_adjustment: float
) -> tuple[np.ndarray, np.ndarray]:
    """limma's ``rankSumTestWithCorrelation`` (correlation 0, df Inf): ``(less, greater)``."""
    n2 = n - n1
    u = n1 * n2 + n1 * (n1 + 1) / 2 - rank_sums
    mu = n1 * n2 / 2
    sigma = np.sqrt(n1 * n2 * (n + 1) / 12 * (1 - tie_adjustment))
    with np.errstate(divide="ignore", invalid="ignore"):
        less = stats.norm.sf((u - 0.5 - mu) / sigma)
        greater = stats.norm.cdf((u + 0.5 - mu) / sigma)
    return less, greater


def rank_set_test(
    statistics: Mapping[str, float] | pd.Series,
    sets: Mapping[str, Iterable[str]],
    *,
    alternative: Alternative = "mixed",
    names: Mapping[str, str] | None = None,
    min_size: int = 3,
    max_size: int = 500,
) -> pd.DataFrame:
    """Competitive Wilcoxon rank-sum test of each set's statistics (limma ``geneSetTest``).

    ``alternative``: ``up`` (the set's statistics rank high), ``down`` (low), ``either``
    (``2 min(up, down)``) or ``mixed`` (``|statistic|`` ranks high: the set changes,
    whatever the direction of each member; the default, since a pathway's substrates
    and products move in opposite directions, tryptophan down and kynurenine up).

    Parameters
    ----------
    statistics
        Identifier -> statistic (e.g. the moderated t, signed) of every measured
        metabolite with an identifier; NaN entries are dropped.
    sets
        Set ID -> member identifiers.
    names, min_size, max_size
        As :func:`over_representation` (sizes count measured members).

    Returns
    -------
    DataFrame
        ``set_id``, ``name``, ``set_size``, ``n_measured``, ``mean_statistic``,
        ``n_up`` / ``n_down`` (members with positive / negative statistic), ``tested``,
        ``p``, ``q`` (BH over tested sets), ``members``; one row per set with a measured
        member, by p.

    Raises
    ------
    MethodInputError
        Bad size bounds or alternative, duplicate identifiers, or fewer than two
        statistics.
    """
    _check_sizes(min_size, max_size)
    if alternative not in ("up", "down", "either", "mixed"):
        raise MethodInputError(f"alternative {alternative!r} is up, down, either or mixed")
    s = pd.Series(statistics, dtype=float).dropna()
    if s.index.has_duplicates:
        raise MethodInputError(f"identifier {s.index[s.index.duplicated()][0]!r} appears twice")
    if len(s) < 2:
        raise MethodInputError("a rank test needs at least two metabolites with a statistic")
    values = s.to_numpy()
    tested_values = np.abs(values) if alternative == "mixed" else values
    if alternative == "down":
        tested_values = -tested_values
    ranks = stats.rankdata(tested_values)
    n = len(ranks)
    _, counts = np.unique(ranks, return_counts=True)
    tie = float(np.sum(counts * (counts + 1.0) * (counts - 1.0)) / (n * (n + 1.0) * (n - 1.0)))
    position = {k: i for i, k in enumerate(s.index)}
    rows: list[dict[str, object]] = []
    idx_of: list[np.ndarray] = []
    for set_id, members in sets.items():
        m = set(members)
        idx = np.array(sorted(position[x] for x in m if x in position), dtype=int)
        if idx.size == 0:
            continue
        idx_of.append(idx)
        rows.append(
            {
                "set_id": set_id,
                "name": (names or {}).get(set_id, set_id),
                "set_size": len(m),
                "n_measured": int(idx.size),
                "mean_statistic": float(values[idx].mean()),
                "n_up": int((values[idx] > 0).sum()),
                "n_down": int((values[idx] < 0).sum()),
                "tested": bool(min_size <= idx.size <= max_size and idx.size < n),
                "members": ";".join(sorted(s.index[idx])),
            }
        )
    if rows:
        n1 = np.array([len(i) for i in idx_of], dtype=float)
        sums = np.array([ranks[i].sum() for i in idx_of])
        less, greater = _rank_sum_p(sums, n1, n, tie)
        p = 2 * np.minimum(less, greater) if alternative == "either" else greater
        p = np.minimum(p, 1.0)
        for row, value in zip(rows, p, strict=True):
            row["p"] = float(value) if row["tested"] else np.nan
    columns = ["set_id", "name", "set_size", "n_measured", "mean_statistic", "n_up", "n_down"]
    return _frame(rows, [*columns, "tested", "p", "members"], "p")


def _fry_effects(values: np.ndarray, design: np.ndarray, coef: int, standardize: str) -> np.ndarray:
    """limma's ``.lmEffects`` (and fry's ``posterior.sd`` standardisation): features x
    (1 + residual df); column 0 the coefficient's effect, then the residual effects."""
    y = np.asarray(values, dtype=float)
    x = np.asarray(design, dtype=float)
    n, p = x.shape
    if y.shape[0] != n:
        raise MethodInputError(f"{y.shape[0]} samples in the values, {n} in the design")
    if not np.isfinite(y).all():
        raise MethodInputError("fry needs complete values (impute missing values first)")
    if n <= p:
        raise MethodInputError("no residual degrees of freedom")
    order = [c for c in range(p) if c != coef] + [coef]
    q, r = np.linalg.qr(x[:, order], mode="complete")
    if np.linalg.matrix_rank(x) < p:
        raise MethodInputError("the design must be of full column rank")
    effects = (q.T @ y).T[:, p - 1 :]
    if r[p - 1, p - 1] < 0:
        effects[:, 0] = -effects[:, 0]
    if standardize == "none":
        return effects
    d = effects.shape[1] - 1
    # statmod::gauss.quad.prob(128, "uniform"): Gauss-Legendre on [0, 1]
    nodes, weights = np.polynomial.legendre.leggauss(128)
    nodes, weights = (nodes + 1) / 2, weights / 2
    eu2max = float(np.sum((d + 1) * nodes**d * stats.chi2.ppf(nodes, 1) * weights))
    sq = effects**2
    s2_robust = (sq.sum(axis=1) - sq.max(axis=1)) / (d + 1 - eu2max)
    s2 = sq[:, 1:].mean(axis=1)
    scale, df_prior = _fit_f_dist(s2, np.full(s2.shape, float(d)))
    df = 0.92 * d
    if np.isfinite(df_prior):
        s2_robust = (df * s2_robust + df_prior * scale) / (df + df_prior)
    else:
        s2_robust = np.full(s2_robust.shape, scale)
    return effects / np.sqrt(s2_robust)[:, None]


def fry(
    values: np.ndarray,
    design: np.ndarray,
    *,
    coef: int,
    features: Iterable[str],
    sets: Mapping[str, Iterable[str]],
    standardize: Literal["posterior.sd", "none"] = "posterior.sd",
    signs: Mapping[str, Mapping[str, float]] | None = None,
    names: Mapping[str, str] | None = None,
    min_size: int = 3,
    max_size: int = 500,
) -> pd.DataFrame:
    """limma's ``fry`` self-contained set test of one coefficient (limma 3.54.1).

    Each metabolite's values are rotated into the coefficient's effect and its residual
    effects (QR of the design, ``.lmEffects``), standardised by a robust, empirical-Bayes
    moderated residual SD (``standardize = "posterior.sd"``) or not (``"none"``). For a
    set, the directional statistic is the mean effect over the root-mean-square mean
    residual effect (t on the residual df); the mixed p-value, for changes in either
    direction within the set, is ROAST's rotation p-value of the mean squared effect in
    Giner & Smyth's beta approximation.

    Parameters
    ----------
    values
        Samples x metabolites, log scale, complete (impute first).
    design
        Samples x coefficients, full column rank.
    coef
        Column of ``design`` tested (0-based).
    features
        Identifier of each column of ``values``.
    signs
        Set ID -> {member: weight}, fry's gene weights (default 1): -1 for a metabolite
        a program consumes (:meth:`~resistomics.knowledge.MetaboliteSet.signs`), so that
        "Up" means the program is more active.
    sets, names, min_size, max_size
        As :func:`over_representation`.

    Returns
    -------
    DataFrame
        ``set_id``, ``name``, ``set_size``, ``n_measured``, ``direction`` (Up / Down),
        ``tested``, ``p`` (directional), ``q``, ``p_mixed``, ``q_mixed``, ``members``; one
        row per set with a measured member, by mixed p.

    Raises
    ------
    MethodInputError
        Missing values, a design without residual df or not of full rank, duplicate
        feature identifiers, bad size bounds.
    """
    _check_sizes(min_size, max_size)
    if standardize not in ("posterior.sd", "none"):
        raise MethodInputError(f"standardize {standardize!r} is posterior.sd or none")
    ids = list(features)
    if len(ids) != np.shape(values)[1]:
        raise MethodInputError(f"{len(ids)} feature identifiers for {np.shape(values)[1]} columns")
    if len(set(ids)) != len(ids):
        raise MethodInputError("feature identifiers must be unique")
    effects = _fry_effects(values, design, coef, standardize)
    d = effects.shape[1] - 1
    position = {k: i for i, k in enumerate(ids)}
    rows: list[dict[str, object]] = []
    for set_id, members in sets.items():
        m = set(members)
        idx = np.array(sorted(position[x] for x in m if x in position), dtype=int)
        if idx.size == 0:
            continue
        weight = (signs or {}).get(set_id, {})
        e = effects[idx] * np.array([float(weight.get(ids[i], 1.0)) for i in idx])[:, None]
        mean = e.mean(axis=0)
        t = float(mean[0] / np.sqrt(np.mean(mean[1:] ** 2)))
        p = float(2 * stats.t.sf(abs(t), d))
        p_mixed = p
        if idx.size > 1:
            a = np.linalg.svd(e, compute_uv=False) ** 2
            d1 = a.size
            beta_mean = 1 / d1
            beta_var = (d1 - 1) / d1 / d1 / (d1 / 2 + 1)
            span = a[0] - a[-1]
            f_obs = (np.sum(e[:, 0] ** 2) - a[-1]) / span
            frb_mean = (a.sum() * beta_mean - a[-1]) / span
            cov = np.full((d1, d1), -beta_var / (d1 - 1))
            np.fill_diagonal(cov, beta_var)
            frb_var = float(a @ cov @ a) / span**2
            alpha_beta = frb_mean * (1 - frb_mean) / frb_var - 1
            alpha = alpha_beta * frb_mean
            p_mixed = float(stats.beta.sf(f_obs, alpha, alpha_beta - alpha))
        tested = min_size <= idx.size <= max_size
        rows.append(
            {
                "set_id": set_id,
                "name": (names or {}).get(set_id, set_id),
                "set_size": len(m),
                "n_measured": int(idx.size),
                "direction": "Down" if t < 0 else "Up",
                "tested": tested,
                "p": p if tested else np.nan,
                "p_mixed": p_mixed if tested else np.nan,
                "members": ";".join(sorted(ids[i] for i in idx)),
            }
        )
    columns = ["set_id", "name", "set_size", "n_measured", "direction", "tested", "p"]
    out = pd.DataFrame(rows, columns=[*columns, "p_mixed", "members"])
    tested_rows = out["tested"].to_numpy(dtype=bool)
    for col, qcol in (("p", "q"), ("p_mixed", "q_mixed")):
        qv = np.full(len(out), np.nan)
        qv[tested_rows] = benjamini_hochberg(out.loc[tested_rows, col].to_numpy(dtype=float))
        out[qcol] = qv
    out = out[[*columns, "q", "p_mixed", "q_mixed", "members"]]
    return out.sort_values(["p_mixed", "set_id"], na_position="last", kind="stable").reset_index(
        drop=True
    )
