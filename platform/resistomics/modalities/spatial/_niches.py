"""Resistance niches: who neighbours resistant tumour cells, and how that changes.

Per section, tumour cells are split by a per-cell program score (e.g. a resistance
program) into program-high (the top ``quantile`` of the section's tumour cells) and
program-low (the bottom ``quantile``; default thirds, the middle third is left out). For
every tumour cell the *neighbourhood composition* is the fraction of its graph neighbours
(kNN, radius or Delaunay, :func:`~resistomics.modalities.spatial.spatial_graph`) of each
cell type, the cell-level form of the cellular neighbourhoods of Schürch et al. (2020).
The section's effect for a neighbour type is the mean fraction around program-high cells
minus that around program-low cells (``difference``) and ``log2((mean_high + c) /
(mean_low + c))`` (``log2_ratio``, pseudocount ``c``); the within-section test is the
two-sided Mann–Whitney U test of the high against the low cells' fractions (Mann & Whitney
1947; scipy's normal approximation with tie correction, as neighbour fractions are
multiples of ``1 / degree`` and tie heavily). Neighbouring tumour cells share neighbours,
so the cells are not independent and the within-section p-value is descriptive: the
inference is at the patient level.

Per patient, the effect is averaged over the patient's sections in each arm of the
contrast (e.g. ``phase: progression vs baseline``) and its change is ``arm a - arm b``.
Across the cohort each neighbour type is tested by the paired t-test (Student 1908; mean
change against zero) and the Wilcoxon signed-rank test (Wilcoxon 1945; scipy's exact null
distribution for small cohorts without ties or zeros) on the patients' changes, with
Benjamini–Hochberg FDR (1995) across neighbour types, separately per effect measure and
test. With ``n`` patients the smallest two-sided signed-rank p-value is ``2 / 2**n``
(1/32 for six patients), so with several neighbour types only the t-test can reach a low
FDR in a small cohort.

References
----------
Schürch C.M. et al. (2020) Coordinated cellular neighborhoods orchestrate antitumoral
immunity at the colorectal cancer invasive front. Cell 182:1341-1359.
Palla G. et al. (2022) Squidpy: a scalable framework for spatial omics analysis.
Nat Methods 19:171-178.
Mann H.B., Whitney D.R. (1947) On a test of whether one of two random variables is
stochastically larger than the other. Ann Math Stat 18:50-60.
Wilcoxon F. (1945) Individual comparisons by ranking methods. Biometrics Bull 1:80-83.
Benjamini Y., Hochberg Y. (1995) Controlling the false discovery rate. J R Stat Soc B
57:289-300.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from dask import delayed
from dask.delayed import Delayed
from scipy import stats

from resistomics.contrasts import Contrast, unknown_attribute, unknown_value
from resistomics.errors import InputError
from resistomics.modalities.spatial._graph import GraphMethod, spatial_graph
from resistomics.modalities.spatial._labels import label_codes
from resistomics.modalities.spatial._sections import Section
from resistomics.signatures import benjamini_hochberg

__all__ = [
    "ResistanceNiches",
    "cohort_niche_tests",
    "map_niches",
    "neighbour_composition",
    "niche_changes",
    "niche_composition",
    "resistance_niches",
    "section_niches",
]

#: The effect measures of a section, tested separately across the cohort.
EFFECTS = ("difference", "log2_ratio")


@dataclass(frozen=True)
class ResistanceNiches:
    """The niche analysis at its three levels, each a tidy table.

    Attributes
    ----------
    per_section
        One row per (section, neighbour type): ``n_high``, ``n_low``, ``mean_high``,
        ``mean_low``, ``difference``, ``log2_ratio``, ``u_statistic``, ``pvalue``,
        ``fdr`` (BH across the section's neighbour types).
    per_patient
        One row per (subject, neighbour type): the effect in each arm (mean over the
        subject's sections) and its change, for each effect measure.
    cohort
        One row per (effect, test, neighbour type): ``n_subjects``, ``mean_change``,
        ``statistic``, ``pvalue``, ``fdr`` (BH across neighbour types within effect and
        test), ``n_increased``.
    """

    per_section: pd.DataFrame
    per_patient: pd.DataFrame
    cohort: pd.DataFrame


def neighbour_composition(
    adjacency: sp.spmatrix | sp.sparray, codes: np.ndarray, n_types: int
) -> np.ndarray:
    """``(n_cells, n_types)`` fraction of each cell's graph neighbours of each type.

    Edge weights are ignored (the connectivity pattern counts). A cell without neighbours
    (possible in a radius graph) has a row of NaN.
    """
    adj = sp.csr_matrix(adjacency)
    adj.eliminate_zeros()
    n = adj.shape[0]
    pattern = sp.csr_matrix((np.ones(adj.nnz), adj.indices, adj.indptr), shape=adj.shape)
    onehot = sp.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, n_types))
    counts = (pattern @ onehot).toarray()
    degree = np.diff(adj.indptr).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return counts / degree[:, None]


def _tumour_mask(
    categories: tuple[str, ...], codes: np.ndarray, tumour: str | Sequence[str], section: str
) -> np.ndarray:
    names = [tumour] if isinstance(tumour, str) else list(tumour)
    missing = [t for t in names if t not in categories]
    if missing or not names:
        raise InputError(
            section,
            "tumour-label",
            f"tumour label(s) {missing or names} not among the cell types {list(categories)}",
        )
    wanted = np.array([categories.index(t) for t in names])
    return np.isin(codes, wanted)


def niche_composition(
    adjacency: sp.spmatrix | sp.sparray,
    labels: pd.Categorical | pd.Series | Sequence[str] | np.ndarray,
    score: npt.ArrayLike,
    *,
    tumour: str | Sequence[str],
    quantile: float = 1 / 3,
    pseudocount: float = 0.01,
    min_cells: int = 3,
    section: str = "section",
) -> pd.DataFrame:
    """Neighbourhood composition around program-high against program-low tumour cells.

    Parameters
    ----------
    adjacency
        ``(n_cells, n_cells)`` neighbour graph (row ``i``: the neighbours of cell ``i``).
    labels
        Cell type per cell; a categorical keeps its categories (unused ones give rows of
        zeros), anything else gets sorted categories.
    score
        Program score per cell (only the tumour cells' scores are used; they must be
        finite).
    tumour
        The tumour cell type(s); cells of any of them are the tumour cells.
    quantile
        Fraction of the section's tumour cells called high (score ``>=`` the
        ``1 - quantile`` quantile) and low (score ``<=`` the ``quantile`` quantile),
        ``0 < quantile <= 0.5``. Tumour cells without neighbours are left out.
    pseudocount
        Added to both means in the log2 ratio.
    min_cells
        Fewer high or low cells than this leave the section's effects NaN (the section is
        reported, with its counts, and skipped when averaging per patient).
    section
        Name in the table and in error messages.

    Returns
    -------
    pandas.DataFrame
        One row per neighbour type; see :class:`ResistanceNiches` ``per_section``.

    Raises
    ------
    InputError
        ``tumour-label`` (no such type), ``score-length``, ``finite-score`` (a tumour cell
        without a finite score), ``niche-quantile``, plus the label rules of
        :func:`~resistomics.modalities.spatial.label_codes`.
    """
    n = adjacency.shape[0]
    codes, categories = label_codes(labels, n_cells=n, section=section)
    if not 0 < quantile <= 0.5:
        raise InputError(
            section, "niche-quantile", f"quantile must be in (0, 0.5]; got {quantile!r}"
        )
    s = np.asarray(score, dtype=np.float64).ravel()
    if s.shape[0] != n:
        raise InputError(section, "score-length", f"{s.shape[0]} scores for {n} cells")
    is_tumour = _tumour_mask(categories, codes, tumour, section)
    bad = is_tumour & ~np.isfinite(s)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            section,
            "finite-score",
            f"tumour cell {first} has program score {float(s[first])}; {int(bad.sum())} in all",
            row=str(first),
        )
    frac = neighbour_composition(adjacency, codes, len(categories))
    cells = np.flatnonzero(is_tumour & np.isfinite(frac).all(axis=1))
    ts = s[cells]
    if cells.size:
        lo_cut, hi_cut = np.quantile(ts, [quantile, 1 - quantile])
        high, low = cells[ts >= hi_cut], cells[ts <= lo_cut]
        if hi_cut == lo_cut:  # no spread in the score: no cell is both high and low
            high = low = cells[:0]
    else:
        high = low = cells
    k = len(categories)
    out: dict[str, Any] = {
        "section": section,
        "neighbour_type": list(categories),
        "n_high": len(high),
        "n_low": len(low),
    }
    if min(len(high), len(low)) < min_cells:
        nan = np.full(k, np.nan)
        out.update(
            mean_high=nan,
            mean_low=nan,
            difference=nan,
            log2_ratio=nan,
            u_statistic=nan,
            pvalue=nan,
            fdr=nan,
        )
        return pd.DataFrame(out)
    fh, fl = frac[high], frac[low]
    mh, ml = fh.mean(axis=0), fl.mean(axis=0)
    # a type constant over both groups (e.g. absent) has no test: scipy returns NaN
    u, p = stats.mannwhitneyu(fh, fl, axis=0, alternative="two-sided", method="asymptotic")
    p = np.asarray(p, dtype=np.float64)
    fdr = np.full(k, np.nan)
    tested = np.isfinite(p)
    fdr[tested] = benjamini_hochberg(p[tested])
    out.update(
        mean_high=mh,
        mean_low=ml,
        difference=mh - ml,
        log2_ratio=np.log2((mh + pseudocount) / (ml + pseudocount)),
        u_statistic=np.asarray(u, dtype=np.float64),
        pvalue=p,
        fdr=fdr,
    )
    return pd.DataFrame(out)


def section_niches(
    section: Section,
    *,
    program: str,
    tumour: str | Sequence[str],
    method: GraphMethod = "knn",
    k: int = 6,
    radius: float | None = None,
    quantile: float = 1 / 3,
    pseudocount: float = 0.01,
    min_cells: int = 3,
) -> pd.DataFrame:
    """:func:`niche_composition` of one :class:`Section`: its graph, its labels and the
    ``program`` column of its values.

    Raises
    ------
    InputError
        ``section-labels`` (no cell types), ``program-score`` (no such values column),
        and the rules of :func:`spatial_graph` and :func:`niche_composition`.
    """
    if section.labels is None:
        raise InputError(section.name, "section-labels", "the section has no cell types")
    if section.values is None or program not in section.genes:
        raise InputError(
            section.name,
            "program-score",
            f"no program score column {program!r}; columns: {list(section.genes)}",
        )
    graph = spatial_graph(section.coords, method=method, k=k, radius=radius, section=section.name)
    return niche_composition(
        graph.connectivities,
        section.labels,
        section.values[:, section.genes.index(program)],
        tumour=tumour,
        quantile=quantile,
        pseudocount=pseudocount,
        min_cells=min_cells,
        section=section.name,
    )


def _load_and_niches(
    load: Callable[[str], Section], name: str, options: dict[str, Any]
) -> pd.DataFrame:
    return section_niches(load(name), **options)


def map_niches(
    load: Callable[[str], Section], names: Sequence[str], **options: Any
) -> list[Delayed]:
    """One lazy :func:`section_niches` per section name; nothing is loaded yet.

    ``load(name)`` runs inside the task, so a worker holds one section at a time; compute
    the parts together (``dask.compute(*parts)``) and concatenate them into the
    ``per_section`` table of :func:`resistance_niches`. ``options`` go to
    :func:`section_niches` (``program`` and ``tumour`` are required).
    """
    return [
        delayed(_load_and_niches, pure=True)(
            load, name, options, dask_key_name=f"spatial-niches-{name}"
        )
        for name in names
    ]


def _check_samples(samples: pd.DataFrame, contrast: Contrast, subject: str) -> pd.DataFrame:
    for col in ("section", subject, contrast.column):
        if col not in samples.columns:
            raise InputError("samples", "sample-column", unknown_attribute(col, samples))
    arm = samples[contrast.column].astype(str)
    for value in (contrast.group_a, contrast.group_b):
        if not (arm == value).any():
            raise InputError(
                "samples", "contrast-arm", unknown_value(contrast.column, value, samples)
            )
    dup = samples["section"].astype(str).duplicated()
    if dup.any():
        first = str(samples["section"].astype(str)[dup].iloc[0])
        raise InputError("samples", "unique-section", f"section {first!r} is listed twice")
    keep = samples[contrast.selected(samples) & arm.isin([contrast.group_a, contrast.group_b])]
    return pd.DataFrame(
        {
            "section": keep["section"].astype(str).to_numpy(),
            "subject": keep[subject].astype(str).to_numpy(),
            "arm": keep[contrast.column].astype(str).to_numpy(),
        }
    )


def niche_changes(
    per_section: pd.DataFrame,
    samples: pd.DataFrame,
    contrast: Contrast,
    *,
    subject: str = "patient",
) -> pd.DataFrame:
    """Per subject and neighbour type: each arm's effect (mean over the subject's sections
    with a finite effect) and the change ``arm a - arm b``.

    Parameters
    ----------
    per_section
        Rows of :func:`niche_composition` for many sections.
    samples
        One row per section: ``section``, the ``subject`` column and ``contrast.column``.
    contrast
        E.g. ``parse_contrast("phase:progression vs baseline")``; ``where`` filters apply.
    subject
        The column pairing the arms (the patient).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject``, ``neighbour_type``, ``n_sections_a``, ``n_sections_b``, and
        for each effect ``E``: ``E_a``, ``E_b``, ``E_change`` (NaN where an arm has no
        section with a finite effect).

    Raises
    ------
    InputError
        ``sample-column``, ``contrast-arm``, ``unique-section``, ``section-registered`` (a
        section of ``per_section`` missing from ``samples``).
    """
    design = _check_samples(samples, contrast, subject)
    known = set(samples["section"].astype(str))
    unknown = sorted(set(per_section["section"].astype(str)) - known)
    if unknown:
        raise InputError(
            "samples",
            "section-registered",
            f"section {unknown[0]!r} has niche results but no row in the samples table",
        )
    rows = per_section.assign(section=per_section["section"].astype(str)).merge(
        design, on="section", how="inner"
    )
    rows = rows[np.isfinite(rows["difference"].to_numpy(dtype=np.float64))]
    per_arm = rows.groupby(["subject", "neighbour_type", "arm"], sort=True)
    means = per_arm[list(EFFECTS)].mean()
    counts = per_arm.size().rename("n_sections")
    wide = pd.concat([means, counts], axis=1).unstack("arm")
    out = pd.DataFrame(index=wide.index)
    for tag, arm in (("a", contrast.group_a), ("b", contrast.group_b)):
        col = ("n_sections", arm)
        out[f"n_sections_{tag}"] = (
            wide[col].fillna(0).astype(np.int64) if col in wide.columns else 0
        )
    for e in EFFECTS:
        a = wide[(e, contrast.group_a)] if (e, contrast.group_a) in wide.columns else np.nan
        b = wide[(e, contrast.group_b)] if (e, contrast.group_b) in wide.columns else np.nan
        out[f"{e}_a"] = a
        out[f"{e}_b"] = b
        out[f"{e}_change"] = out[f"{e}_a"] - out[f"{e}_b"]
    return out.reset_index()


def cohort_niche_tests(per_patient: pd.DataFrame) -> pd.DataFrame:
    """Paired tests of the niche change across subjects, per neighbour type.

    For each effect measure and neighbour type, over the subjects with both arms: the
    paired t-test (``scipy.stats.ttest_1samp`` of the changes against 0, equal to
    ``ttest_rel`` of arm a against arm b) and the Wilcoxon signed-rank test
    (``scipy.stats.wilcoxon``, two-sided, zero changes dropped as in Wilcoxon's
    procedure), then BH FDR across neighbour types within each effect and test.

    Returns
    -------
    pandas.DataFrame
        Columns ``effect``, ``test`` (``paired_t`` / ``wilcoxon``), ``neighbour_type``,
        ``n_subjects``, ``mean_change``, ``n_increased``, ``statistic``, ``pvalue``,
        ``fdr``; sorted by effect, test and p-value.
    """
    frames = []
    for e in EFFECTS:
        for test in ("paired_t", "wilcoxon"):
            rows = []
            for nt, g in per_patient.groupby("neighbour_type", sort=True):
                d = g[f"{e}_change"].to_numpy(dtype=np.float64)
                d = d[np.isfinite(d)]
                stat = pval = np.nan
                if test == "paired_t" and d.size >= 2 and np.ptp(d) > 0:
                    r = stats.ttest_1samp(d, 0.0)
                    stat, pval = float(r.statistic), float(r.pvalue)
                elif test == "wilcoxon" and np.count_nonzero(d) >= 1:
                    r = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
                    stat, pval = float(r.statistic), float(r.pvalue)
                rows.append(
                    {
                        "effect": e,
                        "test": test,
                        "neighbour_type": str(nt),
                        "n_subjects": int(d.size),
                        "mean_change": float(d.mean()) if d.size else np.nan,
                        "n_increased": int((d > 0).sum()),
                        "statistic": stat,
                        "pvalue": pval,
                    }
                )
            frame = pd.DataFrame(rows)
            p = frame["pvalue"].to_numpy(dtype=np.float64)
            fdr = np.full(len(p), np.nan)
            ok = np.isfinite(p)
            fdr[ok] = benjamini_hochberg(p[ok])
            frames.append(frame.assign(fdr=fdr).sort_values("pvalue", kind="mergesort"))
    return pd.concat(frames, ignore_index=True)


def resistance_niches(
    per_section: pd.DataFrame | Sequence[pd.DataFrame],
    samples: pd.DataFrame,
    contrast: Contrast,
    *,
    subject: str = "patient",
) -> ResistanceNiches:
    """The three levels of the niche analysis from the per-section tables.

    ``per_section`` is the output of :func:`niche_composition` / :func:`map_niches` (one
    frame or a list to concatenate); see :func:`niche_changes` and
    :func:`cohort_niche_tests`.
    """
    table = (
        per_section
        if isinstance(per_section, pd.DataFrame)
        else pd.concat(list(per_section), ignore_index=True)
    )
    per_patient = niche_changes(table, samples, contrast, subject=subject)
    return ResistanceNiches(
        per_section=table.reset_index(drop=True),
        per_patient=per_patient,
        cohort=cohort_niche_tests(per_patient),
    )
