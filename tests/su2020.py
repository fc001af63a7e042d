"""Su et al. 2020 (../shared/data/metabolomics_su2020) for the metabolomics tests.

The raw table names its 1,050 metabolites as Metabolon does; the authors' processed table
(263 of the same samples, 333 metabolites) names its columns by ChEBI ID. No file pairs
the two, so :func:`name_to_chebi` derives the pairing from the values: over the shared
samples, each processed column is correlated (Pearson) with the log of every raw column
observed in at least 80 % of them; a pair is accepted when each is the other's best match
(mutual best), the correlation is at least 0.7 and the next-best raw column is at least
0.1 lower. The processed values were re-normalised and imputed by the authors, so the
correlations are high but not 1 (median about 0.9): near-perfect agreement is not
available, uniqueness and margin carry the decision. Of the 333 processed columns 216
pair this way; the pairs that a chemist can check by name (tryptophan CHEBI:16828,
kynurenine CHEBI:16946, citrulline CHEBI:16349, ...) are asserted in
``tests/modalities/metabolomics/test_names.py``.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from shared_data import SHARED_DATA

SU2020 = SHARED_DATA / "metabolomics_su2020"
REACTOME = SHARED_DATA / "metabolite_sets" / "ChEBI2Reactome_All_Levels_R78.human.tsv.gz"
META = ["Group", "WHO_status"]


@functools.cache
def raw() -> pd.DataFrame:
    """The raw table: samples x metabolites (names), with ``Group`` and ``WHO_status``."""
    return pd.read_csv(SU2020 / "Su_metab_data_raw.csv.gz", index_col=0)


@functools.cache
def processed() -> pd.DataFrame:
    """The processed table; ``Group`` without its trailing space."""
    d = pd.read_csv(SU2020 / "Su_covid_metabolomics_processed.csv.gz", index_col=0)
    return d.assign(Group=d["Group"].str.strip())


@functools.cache
def name_to_chebi() -> tuple[tuple[str, str, float], ...]:
    """``(raw name, CHEBI:<n>, r)`` pairs derived as the module docstring says."""
    r_tab, p_tab = raw(), processed()
    shared = r_tab.index.intersection(p_tab.index)
    logs = np.log(r_tab.loc[shared].drop(columns=META).astype(float))
    logs = logs.loc[:, logs.notna().mean() >= 0.8]
    p = p_tab.loc[shared].drop(columns=META).astype(float).to_numpy()
    # Pearson over the samples where the raw value is observed, for all pairs at once
    m = logs.notna().to_numpy(float)
    x = np.nan_to_num(logs.to_numpy())
    one = np.ones_like(p)
    n = m.T @ one
    sx, sy = x.T @ one, m.T @ p
    sxx, syy, sxy = (x**2).T @ one, m.T @ p**2, x.T @ p
    r = (n * sxy - sx * sy) / np.sqrt((n * sxx - sx**2) * (n * syy - sy**2))
    best_raw, best_processed = r.argmax(axis=0), r.argmax(axis=1)
    ranked = np.sort(r, axis=0)
    columns = p_tab.drop(columns=META).columns
    return tuple(
        (str(logs.columns[best_raw[j]]), f"CHEBI:{c}", float(ranked[-1, j]))
        for j, c in enumerate(columns)
        if best_processed[best_raw[j]] == j
        and ranked[-1, j] >= 0.7
        and ranked[-1, j] - ranked[-2, j] >= 0.1
    )
