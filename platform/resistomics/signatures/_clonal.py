"""Clonal evolution under therapy: per-variant changes from baseline, clone clustering,
and cohort-level recurrence of mutated genes.

Input is the canonical variant table, one row per (sample, variant), with ``subject_id``,
``sample_id``, ``chrom``, ``pos``, ``ref``, ``alt``, ``gene``, ``protein_change``,
``ref_count``, ``alt_count``, ``depth`` and ``vaf`` (optionally ``total_cn``, the total
copy number at the variant, and ``catalogue_hit``), and a sample design indexed by
``sample_id`` with ``subject_id``, ``phase``, ``timepoint`` (days) and optionally
``purity`` in (0, 1].

:func:`variant_changes` and :func:`cluster_clones` accept a pandas DataFrame or a dask
DataFrame partitioned by subject (every row of a subject in one partition, e.g. after
``set_index("subject_id")`` or ``shuffle(on="subject_id")``); dask in gives lazy dask out.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import special, stats

from resistomics.errors import MethodInputError
from resistomics.signatures._de import benjamini_hochberg

__all__ = [
    "AUTO_PRECISIONS",
    "ClonalStructure",
    "cancer_cell_fraction",
    "cluster_clones",
    "recurrent_genes",
    "variant_changes",
]

VARIANT_KEY = ("chrom", "pos", "ref", "alt")
CALLS = ("emergent", "expanded", "contracted", "lost", "stable", "unknown")
_CALL_DTYPE = pd.CategoricalDtype(list(CALLS))
# Identifier and annotation columns: pandas' nullable string dtype, which is also what
# dask's ``dataframe.convert-string`` makes of them, so pandas and dask results agree.
_TEXT = pd.StringDtype()
_DIPLOID = 2.0
# Sequencing-error floor on the expected VAF, so that a read at a clone-absent site
# costs a finite penalty instead of -inf (PyClone uses a similar error rate).
_ERROR_RATE = 1e-3
# PyClone-VI discretises the cellular prevalence on a grid (Gillis & Roth 2020); 101
# points give a 0.01 resolution, well below the binomial noise at 50-200x.
_GRID = np.linspace(0.0, 1.0, 101)
# Beta-binomial precisions tried by precision="auto" (with the binomial, i.e. infinite
# precision): a factor of two apart, spanning heavy to negligible over-dispersion.
AUTO_PRECISIONS = (12.5, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0)


# --------------------------------------------------------------------------------------
# Cancer cell fraction
# --------------------------------------------------------------------------------------


def cancer_cell_fraction(
    vaf: Any,
    purity: Any,
    *,
    total_cn: Any = _DIPLOID,
    multiplicity: Any = 1.0,
) -> np.ndarray:
    """Cancer cell fraction (CCF) of a mutation from its VAF, purity and copy number.

    ``CCF = min(1, VAF * (purity * CN + 2 * (1 - purity)) / (purity * m))``: the
    denominator of the VAF counts the mutated copies (``m`` per tumour cell carrying
    the mutation, in a fraction ``purity * CCF`` of cells) among all copies at the
    locus (``CN`` per tumour cell, 2 per normal cell), as in McGranahan et al.,
    *Sci. Transl. Med.* 7:283ra54 (2015) and Dentro et al., *Cold Spring Harb.
    Perspect. Med.* 7:a026625 (2017). The multiplicity defaults to 1 (the mutation sits
    on one copy), the copy number to diploid (2) where it is missing (NaN).

    Parameters
    ----------
    vaf, purity, total_cn, multiplicity
        Scalars or arrays that broadcast together.

    Returns
    -------
    numpy.ndarray
        CCF in [0, 1]; NaN where the VAF or the purity is NaN.

    Raises
    ------
    resistomics.errors.MethodInputError
        If a purity is outside (0, 1] or a copy number or multiplicity is not positive.
    """
    vaf_a = np.asarray(vaf, dtype=np.float64)
    purity_a = np.asarray(purity, dtype=np.float64)
    cn = np.asarray(total_cn, dtype=np.float64)
    cn = np.where(np.isnan(cn), _DIPLOID, cn)
    m = np.asarray(multiplicity, dtype=np.float64)
    if np.any((purity_a <= 0) | (purity_a > 1)):
        raise MethodInputError("purity must lie in (0, 1]; fix the design's purity column")
    if np.any(cn <= 0) or np.any(m <= 0):
        raise MethodInputError("total_cn and multiplicity must be positive")
    ccf = vaf_a * (purity_a * cn + _DIPLOID * (1.0 - purity_a)) / (purity_a * m)
    return np.minimum(1.0, ccf)


def _vaf_per_prevalence(purity: np.ndarray, total_cn: np.ndarray) -> np.ndarray:
    # The inverse of cancer_cell_fraction (m = 1): expected VAF = weight * CCF.
    return purity / (purity * total_cn + _DIPLOID * (1.0 - purity))


# --------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------


def _is_dask_frame(obj: object) -> bool:
    # Duck-typed so that pandas-only callers never import dask.dataframe (~80 MB).
    return type(obj).__module__.startswith("dask") and hasattr(obj, "map_partitions")


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MethodInputError(f"{what} needs columns {missing}; it has {list(frame.columns)}")


def _check_design(design: pd.DataFrame) -> pd.DataFrame:
    _require_columns(design, ("subject_id", "phase", "timepoint"), "design")
    if design.index.has_duplicates:
        dup = list(design.index[design.index.duplicated()][:5])
        raise MethodInputError(f"design must have one row per sample_id; duplicated: {dup}")
    out = design.copy()
    out.index = out.index.rename("sample_id")
    if "purity" in out.columns:
        purity = out["purity"].to_numpy(dtype=np.float64)
        bad = ~np.isnan(purity) & ((purity <= 0) | (purity > 1))
        if bad.any():
            raise MethodInputError(
                f"design purity must lie in (0, 1]; bad samples: {list(out.index[bad][:5])}"
            )
    return out


def _subject_column(frame: Any) -> Any:
    # Partitioning by subject is often done with set_index("subject_id").
    if "subject_id" not in frame.columns and frame.index.name == "subject_id":
        return frame.reset_index()
    return frame


def _annotated(variants: pd.DataFrame, design: pd.DataFrame) -> pd.DataFrame:
    """Variants with design columns, a copy number (2 when missing) and a purity."""
    variants = _subject_column(variants)
    _require_columns(
        variants,
        ("subject_id", "sample_id", *VARIANT_KEY, "gene", "protein_change"),
        "variants",
    )
    _require_columns(variants, ("alt_count", "depth"), "variants")
    missing = pd.Index(variants["sample_id"].unique()).difference(design.index)
    if len(missing) > 0:
        raise MethodInputError(
            f"{len(missing)} samples of variants are not in design, e.g. {list(missing[:5])}"
        )
    out = variants.reset_index(drop=True)
    samples = pd.Index(out["sample_id"])
    out["phase"] = design["phase"].reindex(samples).to_numpy()
    out["timepoint"] = design["timepoint"].reindex(samples).to_numpy(dtype=np.float64)
    if "purity" in design.columns:
        out["purity"] = design["purity"].reindex(samples).to_numpy(dtype=np.float64)
    else:
        out["purity"] = np.nan
    if "total_cn" in out.columns:
        cn = out["total_cn"].to_numpy(dtype=np.float64)
        out["total_cn"] = np.where(np.isnan(cn), _DIPLOID, cn)
    else:
        out["total_cn"] = _DIPLOID
    out["alt_count"] = out["alt_count"].to_numpy(dtype=np.float64)
    out["depth"] = out["depth"].to_numpy(dtype=np.float64)
    if "ref_count" in out.columns:
        out["ref_count"] = out["ref_count"].to_numpy(dtype=np.float64)
    else:
        out["ref_count"] = out["depth"] - out["alt_count"]
    return out


# --------------------------------------------------------------------------------------
# Per-variant changes from baseline
# --------------------------------------------------------------------------------------

_CHANGE_FLOATS = (
    "timepoint",
    "baseline_alt_count",
    "baseline_ref_count",
    "baseline_depth",
    "baseline_vaf",
    "alt_count",
    "ref_count",
    "depth",
    "vaf",
    "vaf_change",
    "baseline_ccf",
    "ccf",
    "ccf_change",
    "odds_ratio",
    "pvalue",
    "pvalue_adj",
)


def variant_changes(
    variants: Any,
    design: pd.DataFrame,
    *,
    baseline_phase: str = "baseline",
    min_depth: int = 10,
    alpha: float = 0.05,
    absent_vaf: float = 0.01,
) -> Any:
    """Change of every variant from the subject's baseline sample to each later sample.

    For each subject the baseline sample is its sample with ``phase == baseline_phase``
    (the earliest by ``timepoint`` if there are several). Every variant seen in any of
    the subject's samples is compared between the baseline and each other sample of the
    subject in the design (a second baseline-phase sample included):

    * ``vaf_change``: later VAF minus baseline VAF (VAF = alt / depth);
    * Fisher's exact test (Fisher, *J. R. Stat. Soc.* 85:87, 1922;
      :func:`scipy.stats.fisher_exact`, two-sided) on the 2x2 table
      ``[[alt_later, ref_later], [alt_baseline, ref_baseline]]``; ``odds_ratio > 1``
      means the alt allele rose. P-values are Benjamini-Hochberg adjusted (Benjamini &
      Hochberg, *J. R. Stat. Soc. B* 57:289, 1995) across all tests of the subject
      (its variants x later samples);
    * cancer cell fraction at both time points when the design gives purity
      (:func:`cancer_cell_fraction`, ``total_cn`` from the variants or 2);
    * ``call``: ``emergent`` (absent at baseline, i.e. ``alt_count == 0`` or VAF <
      ``absent_vaf``, and significantly higher later), ``lost`` (present at baseline,
      absent later, significant), ``expanded`` / ``contracted`` (other significant
      increases / decreases), ``stable`` (not significant at ``alpha``) and ``unknown``
      when the baseline or the later sample has depth < ``min_depth`` or no row for
      the variant (no coverage information): such pairs get no test.

    The test treats reads as independent draws, so at high depth it can flag small VAF
    shifts caused by purity or copy-number differences between samples; compare
    ``ccf_change`` when purity is known.

    Parameters
    ----------
    variants
        Canonical variant table (pandas), or a dask DataFrame partitioned by subject.
        ``ref_count`` defaults to ``depth - alt_count`` when absent.
    design
        Sample design indexed by ``sample_id`` (``subject_id``, ``phase``,
        ``timepoint``, optional ``purity``).
    baseline_phase
        Phase of the reference sample.
    min_depth
        Minimum depth for a sample's allele counts to be tested.
    alpha
        FDR level for the calls.
    absent_vaf
        VAF below which a variant counts as absent.

    Returns
    -------
    pandas.DataFrame or dask.dataframe.DataFrame
        One row per (subject, variant, later sample) with ``subject_id``,
        ``sample_id``, ``baseline_sample_id``, variant key and annotation, ``phase``,
        ``timepoint``, the allele counts, depth and VAF of both samples, ``vaf_change``,
        ``catalogue_hit`` when the variants have it,
        ``baseline_ccf``, ``ccf``, ``ccf_change``, ``odds_ratio``, ``pvalue``,
        ``pvalue_adj`` and a categorical ``call``; identifiers and annotations have
        pandas' string dtype. Lazy for dask input. Subjects without a baseline sample
        are left out.

    Raises
    ------
    resistomics.errors.MethodInputError
        If columns are missing, samples are not in the design or purity is out of range.
    """
    design = _check_design(design)
    run = partial(
        _variant_changes_frame,
        design=design,
        baseline_phase=baseline_phase,
        min_depth=min_depth,
        alpha=alpha,
        absent_vaf=absent_vaf,
    )
    if _is_dask_frame(variants):
        meta = run(_subject_column(variants._meta))
        return variants.map_partitions(run, meta=meta, enforce_metadata=False)
    return run(variants)


def _variant_changes_frame(
    variants: pd.DataFrame,
    *,
    design: pd.DataFrame,
    baseline_phase: str,
    min_depth: int,
    alpha: float,
    absent_vaf: float,
) -> pd.DataFrame:
    table = _annotated(variants, design)
    annotation = ["gene", "protein_change"]
    if "catalogue_hit" in table.columns:  # carried through for cluster_clones
        annotation.append("catalogue_hit")
    # and the catalogue's verdict, which the emergent-resistance reports show
    annotation += [c for c in ("catalogue_level", "catalogue_therapy") if c in table.columns]
    key = ["subject_id", *VARIANT_KEY]

    # The baseline sample of each subject: earliest baseline-phase sample in the design.
    subject_design = design[design["subject_id"].isin(table["subject_id"].unique())]
    base = subject_design[subject_design["phase"].astype(str) == baseline_phase]
    base = base.reset_index().sort_values(["subject_id", "timepoint", "sample_id"])
    baseline_sample = base.drop_duplicates("subject_id").set_index("subject_id")["sample_id"]

    # Every (subject, variant) x every later sample of the subject in the design, so that
    # a variant with no row in a later sample is reported as unknown rather than dropped.
    catalogue = table.drop_duplicates(key)[key + annotation]
    catalogue = catalogue[catalogue["subject_id"].isin(baseline_sample.index)]
    later = subject_design.reset_index()[["sample_id", "subject_id"]]
    later = later[~later["sample_id"].isin(baseline_sample.to_numpy())]
    pairs = catalogue.merge(later, on="subject_id", how="inner")
    pairs["baseline_sample_id"] = baseline_sample.reindex(pairs["subject_id"]).to_numpy()
    samples = pd.Index(pairs["sample_id"])
    pairs["phase"] = design["phase"].reindex(samples).to_numpy()
    pairs["timepoint"] = design["timepoint"].reindex(samples).to_numpy(dtype=np.float64)

    counts = table[["sample_id", *VARIANT_KEY, "alt_count", "ref_count", "depth"]]
    counts = counts.drop_duplicates(["sample_id", *VARIANT_KEY])
    cn = table[["sample_id", *VARIANT_KEY, "total_cn", "purity"]].drop_duplicates(
        ["sample_id", *VARIANT_KEY]
    )
    pairs = pairs.merge(counts, on=["sample_id", *VARIANT_KEY], how="left")
    pairs = pairs.merge(cn, on=["sample_id", *VARIANT_KEY], how="left")
    base_counts = counts.rename(
        columns={
            "sample_id": "baseline_sample_id",
            "alt_count": "baseline_alt_count",
            "ref_count": "baseline_ref_count",
            "depth": "baseline_depth",
        }
    )
    base_cn = cn.rename(
        columns={
            "sample_id": "baseline_sample_id",
            "total_cn": "baseline_total_cn",
            "purity": "baseline_purity",
        }
    )
    pairs = pairs.merge(base_counts, on=["baseline_sample_id", *VARIANT_KEY], how="left")
    pairs = pairs.merge(base_cn, on=["baseline_sample_id", *VARIANT_KEY], how="left")
    # Purity comes from the design even where a sample has no row for the variant.
    if "purity" in design.columns:
        purity = design["purity"].to_numpy(dtype=np.float64)
        lookup = pd.Series(purity, index=design.index)
        pairs["purity"] = lookup.reindex(samples).to_numpy()
        pairs["baseline_purity"] = lookup.reindex(pairs["baseline_sample_id"]).to_numpy()

    alt = pairs["alt_count"].to_numpy(dtype=np.float64)
    ref = pairs["ref_count"].to_numpy(dtype=np.float64)
    depth = pairs["depth"].to_numpy(dtype=np.float64)
    b_alt = pairs["baseline_alt_count"].to_numpy(dtype=np.float64)
    b_ref = pairs["baseline_ref_count"].to_numpy(dtype=np.float64)
    b_depth = pairs["baseline_depth"].to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        vaf = np.where(depth > 0, alt / depth, np.nan)
        b_vaf = np.where(b_depth > 0, b_alt / b_depth, np.nan)
    pairs["vaf"] = vaf
    pairs["baseline_vaf"] = b_vaf
    pairs["vaf_change"] = vaf - b_vaf
    pairs["ccf"] = _ccf_or_nan(vaf, pairs["purity"], pairs["total_cn"])
    pairs["baseline_ccf"] = _ccf_or_nan(b_vaf, pairs["baseline_purity"], pairs["baseline_total_cn"])
    pairs["ccf_change"] = pairs["ccf"] - pairs["baseline_ccf"]

    testable = (depth >= min_depth) & (b_depth >= min_depth)  # False where NaN
    odds = np.full(len(pairs), np.nan)
    pvalue = np.full(len(pairs), np.nan)
    idx = np.flatnonzero(testable)
    odds[idx], pvalue[idx] = fisher_exact_2x2(alt[idx], ref[idx], b_alt[idx], b_ref[idx])
    padj = np.full(len(pairs), np.nan)
    subjects = pairs["subject_id"].to_numpy()
    for subject in pd.unique(subjects[testable]):
        rows = testable & (subjects == subject)
        padj[rows] = benjamini_hochberg(pvalue[rows])
    pairs["odds_ratio"] = odds
    pairs["pvalue"] = pvalue
    pairs["pvalue_adj"] = padj

    significant = testable & (padj < alpha)
    absent_base = (b_alt == 0) | (b_vaf < absent_vaf)
    absent_later = (alt == 0) | (vaf < absent_vaf)
    up = vaf > b_vaf
    down = vaf < b_vaf
    call = np.select(
        [
            ~testable,
            significant & absent_base & up,
            significant & ~absent_base & absent_later & down,
            significant & up,
            significant & down,
        ],
        ["unknown", "emergent", "lost", "expanded", "contracted"],
        default="stable",
    )
    pairs["call"] = pd.Categorical(call, dtype=_CALL_DTYPE)

    columns = [
        "subject_id",
        "sample_id",
        "baseline_sample_id",
        *VARIANT_KEY,
        *annotation,
        "phase",
        *_CHANGE_FLOATS,
        "call",
    ]
    # Fixed dtypes whatever the input's string dtype, so that dask partitions, their
    # meta and the pandas result agree.
    text = [c for c in columns if c not in _CHANGE_FLOATS and c not in ("pos", "call")]
    dtypes = {**dict.fromkeys(text, _TEXT), **dict.fromkeys(_CHANGE_FLOATS, np.float64)}
    if "catalogue_hit" in text:
        dtypes["catalogue_hit"] = bool
        pairs["catalogue_hit"] = pairs["catalogue_hit"].astype("boolean").fillna(False)
    out = pairs[columns].astype({**dtypes, "pos": np.int64})
    return out.sort_values(
        ["subject_id", "chrom", "pos", "ref", "alt", "timepoint", "sample_id"],
        ignore_index=True,
    )


def _ccf_or_nan(vaf: np.ndarray, purity: pd.Series, total_cn: pd.Series) -> np.ndarray:
    p = purity.to_numpy(dtype=np.float64)
    ok = ~np.isnan(p) & ~np.isnan(vaf)
    out = np.full(vaf.shape, np.nan)
    if ok.any():
        out[ok] = cancer_cell_fraction(
            vaf[ok], p[ok], total_cn=total_cn.to_numpy(dtype=np.float64)[ok]
        )
    return out


# --------------------------------------------------------------------------------------
# Clone clustering
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClonalStructure:
    """Clones inferred per subject by :func:`cluster_clones`.

    All three tables are pandas for pandas input and lazy dask DataFrames (sharing one
    fit per partition: compute them together with ``dask.compute``) for dask input.

    Attributes
    ----------
    mutations
        One row per (subject, variant): ``subject_id``, variant key, ``gene``,
        ``protein_change``, ``catalogue_hit``, ``clone_id`` (1 = highest mean
        prevalence) and ``posterior`` (posterior probability of that clone).
    clones
        One row per (subject, clone, sample): ``subject_id``, ``clone_id``,
        ``sample_id``, ``phase``, ``timepoint``, ``prevalence`` (fitted cancer cell
        fraction of the clone in the sample), ``n_mutations`` (size, MAP assignments),
        ``carries_resistance_mutation`` and the ``resistance_genes`` /
        ``resistance_changes`` (``;``-joined, ``gene:protein_change``) of its
        catalogued mutations.
    model_selection
        One row per (subject, number of clones tried, density): ``n_clones``,
        ``precision`` (NaN for the binomial), ``n_mutations``, ``n_samples``,
        ``log_likelihood``, ``n_parameters``, ``bic`` and ``selected``.
    """

    mutations: Any
    clones: Any
    model_selection: Any


_MUTATION_COLUMNS = {
    "subject_id": _TEXT,
    "chrom": _TEXT,
    "pos": np.int64,
    "ref": _TEXT,
    "alt": _TEXT,
    "gene": _TEXT,
    "protein_change": _TEXT,
    "catalogue_hit": bool,
    "clone_id": np.int64,
    "posterior": np.float64,
}
_CLONE_COLUMNS = {
    "subject_id": _TEXT,
    "clone_id": np.int64,
    "sample_id": _TEXT,
    "phase": _TEXT,
    "timepoint": np.float64,
    "prevalence": np.float64,
    "n_mutations": np.int64,
    "carries_resistance_mutation": bool,
    "resistance_genes": _TEXT,
    "resistance_changes": _TEXT,
}
_SELECTION_COLUMNS = {
    "subject_id": _TEXT,
    "n_clones": np.int64,
    "precision": np.float64,
    "n_mutations": np.int64,
    "n_samples": np.int64,
    "log_likelihood": np.float64,
    "n_parameters": np.int64,
    "bic": np.float64,
    "selected": bool,
}


def cluster_clones(
    changes_or_variants: Any,
    design: pd.DataFrame,
    *,
    max_clones: int = 10,
    random_state: int = 0,
    n_init: int = 5,
    max_iter: int = 200,
    patience: int | None = 2,
    precision: float | Literal["auto"] | None = None,
) -> ClonalStructure:
    """Cluster each subject's mutations into clones by their prevalence trajectories.

    A binomial mixture in the spirit of PyClone-VI (Gillis & Roth, *BMC Bioinformatics*
    21:571, 2020), fitted by EM per subject. Clone ``k`` has a cellular prevalence
    ``phi[k, s]`` (cancer cell fraction) in every sample ``s`` of the subject and a
    weight ``pi[k]``; a mutation ``i`` of clone ``k`` has alt reads

    ``a[i, s] ~ Binomial(d[i, s], f(phi[k, s]))``, ``f(phi) = purity_s * phi /
    (purity_s * CN[i, s] + 2 * (1 - purity_s))``

    (the inverse of :func:`cancer_cell_fraction` with multiplicity 1; ``CN`` from
    ``total_cn`` or 2, purity 1 when the design has none), with ``f`` clipped to
    ``[1e-3, 1 - 1e-3]`` for sequencing error. With ``precision`` set, reads are
    beta-binomial instead, ``a ~ BetaBinomial(d, f * precision, (1 - f) * precision)``
    (PyClone-VI's over-dispersed density; its default precision is 200), which keeps
    over-dispersed data (library or copy-number noise) from splitting a clone into
    several. Samples of the subject without a row or
    with zero depth for a mutation contribute no likelihood. As in PyClone-VI, ``phi``
    is restricted to a grid (0, 0.01, ..., 1), which makes the M-step an exact argmax
    and EM monotone. Initialisation: k-means++ seeding (Arthur & Vassilvitskii, SODA
    2007) on the per-sample CCF point estimates, ``n_init`` restarts drawn from
    ``numpy.random.default_rng(random_state)``, best likelihood kept. The number of
    clones ``K = 1 .. min(max_clones, n_mutations)`` is chosen by the Bayesian
    information criterion (Schwarz, *Ann. Stat.* 6:461, 1978), ``BIC = -2 log L +
    (K * n_samples + K - 1) log(n_mutations)``, trying K upwards and stopping once
    ``patience`` consecutive K fail to improve on the best BIC so far (as mclust-style
    searches do; ``patience=None`` tries every K); clones left without a MAP member are
    dropped. With the binomial density over-dispersed real data can split a clone in
    several; use ``precision``.

    A mutation with ``catalogue_hit`` true (an optional boolean column of the variants:
    a catalogued resistance mutation) makes its clone ``carries_resistance_mutation``.

    Parameters
    ----------
    changes_or_variants
        The canonical variant table, or the output of :func:`variant_changes` (the
        allele counts of its baseline and later samples are used); pandas or a dask
        DataFrame partitioned by subject.
    design
        Sample design indexed by ``sample_id`` (``subject_id``, ``phase``,
        ``timepoint``, optional ``purity``).
    max_clones
        Largest number of clones tried per subject.
    random_state
        Seed: results are deterministic given it.
    n_init
        EM restarts per number of clones.
    max_iter
        EM iterations per restart.
    precision
        Beta-binomial precision (``alpha + beta``); ``None`` for the binomial; smaller
        is more dispersed (PyClone-VI uses 200). ``"auto"`` chooses it per subject by
        BIC among the binomial and :data:`AUTO_PRECISIONS` (one more parameter for a
        beta-binomial model; costs one K search per candidate).
    patience
        Stop the search over K after this many K in a row without a better BIC
        (``None``: try all K up to ``max_clones``). The search costs grow with K, so
        this saves most of the time when subjects have few clones.

    Returns
    -------
    ClonalStructure
        Per-mutation clone and posterior, per-clone prevalences and resistance flags,
        and the model-selection table (lazy for dask input).

    Raises
    ------
    resistomics.errors.MethodInputError
        If columns are missing, samples are not in the design or ``max_clones < 1``.
    """
    if max_clones < 1:
        raise MethodInputError(f"max_clones must be at least 1; got {max_clones}")
    if patience is not None and patience < 1:
        raise MethodInputError(f"patience must be at least 1 or None; got {patience}")
    if precision is not None and precision != "auto" and not float(precision) > 0:
        raise MethodInputError(f"precision must be positive, 'auto' or None; got {precision}")
    design = _check_design(design)
    run = partial(
        _cluster_frame,
        design=design,
        options=_FitOptions(max_clones, random_state, n_init, max_iter, patience, precision),
    )
    if not _is_dask_frame(changes_or_variants):
        return ClonalStructure(*run(changes_or_variants))

    import dask
    import dask.dataframe as dd  # ~80 MB per process: only for dask input

    fits = [dask.delayed(run)(part) for part in changes_or_variants.to_delayed()]
    frames = []
    for j, columns in enumerate((_MUTATION_COLUMNS, _CLONE_COLUMNS, _SELECTION_COLUMNS)):
        meta = _empty(columns)
        parts = [dask.delayed(operator.getitem)(fit, j) for fit in fits]
        frames.append(dd.from_delayed(parts, meta=meta, verify_meta=False))
    return ClonalStructure(*frames)


def _empty(columns: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})


def _typed(frame: pd.DataFrame, columns: dict[str, Any]) -> pd.DataFrame:
    if frame.empty:
        return _empty(columns)
    return frame[list(columns)].astype(columns).reset_index(drop=True)


def _long_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-(sample, variant) counts from a variant table or a variant_changes table."""
    frame = _subject_column(frame)
    if "baseline_sample_id" not in frame.columns:
        return frame
    keep = ["subject_id", *VARIANT_KEY, "gene", "protein_change"]
    if "catalogue_hit" in frame.columns:
        keep.append("catalogue_hit")
    later = frame[[*keep, "sample_id", "alt_count", "depth"]]
    base = frame[[*keep, "baseline_sample_id", "baseline_alt_count", "baseline_depth"]]
    base = base.rename(
        columns={
            "baseline_sample_id": "sample_id",
            "baseline_alt_count": "alt_count",
            "baseline_depth": "depth",
        }
    )
    both = pd.concat([base, later], ignore_index=True)
    both = both.drop_duplicates(["sample_id", *VARIANT_KEY])
    return both[both["depth"].notna()].reset_index(drop=True)


@dataclass(frozen=True)
class _FitOptions:
    """The fitting options of :func:`cluster_clones`, as given there."""

    max_clones: int
    random_state: int
    n_init: int
    max_iter: int
    patience: int | None
    precision: float | Literal["auto"] | None


def _cluster_frame(
    frame: pd.DataFrame,
    *,
    design: pd.DataFrame,
    options: _FitOptions,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    table = _annotated(_long_counts(frame), design)
    if "catalogue_hit" in table.columns:
        hit = table["catalogue_hit"].astype("boolean").fillna(False).astype(bool)
        table["catalogue_hit"] = hit.to_numpy()
    else:
        table["catalogue_hit"] = False
    mutations, clones, selection = [], [], []
    for subject, rows in table.groupby("subject_id", sort=True):
        samples = design[design["subject_id"] == subject]
        samples = samples.reset_index().sort_values(["timepoint", "sample_id"])
        m, c, s = _cluster_subject(rows, samples, options)
        mutations.append(m)
        clones.append(c)
        selection.append(s)
    return (
        _typed(pd.concat(mutations) if mutations else pd.DataFrame(), _MUTATION_COLUMNS),
        _typed(pd.concat(clones) if clones else pd.DataFrame(), _CLONE_COLUMNS),
        _typed(pd.concat(selection) if selection else pd.DataFrame(), _SELECTION_COLUMNS),
    )


def _cluster_subject(
    rows: pd.DataFrame,
    samples: pd.DataFrame,
    options: _FitOptions,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    subject = rows["subject_id"].iloc[0]
    precision = options.precision
    key = list(VARIANT_KEY)
    muts = rows.groupby(key, sort=True).agg(
        gene=("gene", "first"),
        protein_change=("protein_change", "first"),
        catalogue_hit=("catalogue_hit", "any"),
    )
    sample_ids = samples["sample_id"].to_numpy()
    n, s = len(muts), len(sample_ids)
    mi = muts.index.get_indexer(pd.MultiIndex.from_frame(rows[key]))
    si = pd.Index(sample_ids).get_indexer(rows["sample_id"])
    alt = np.zeros((n, s))
    depth = np.zeros((n, s))
    weight = np.ones((n, s))
    purity = rows["purity"].to_numpy(dtype=np.float64)
    purity = np.where(np.isnan(purity), 1.0, purity)
    alt[mi, si] = np.nan_to_num(rows["alt_count"].to_numpy(dtype=np.float64))
    depth[mi, si] = np.nan_to_num(rows["depth"].to_numpy(dtype=np.float64))
    weight[mi, si] = _vaf_per_prevalence(purity, rows["total_cn"].to_numpy(dtype=np.float64))

    # Log-likelihood of every mutation and sample at every grid prevalence: (n, s, G).
    f = np.clip(weight[:, :, None] * _GRID[None, None, :], _ERROR_RATE, 1.0 - _ERROR_RATE)
    with np.errstate(invalid="ignore", divide="ignore"):
        ccf_point = np.where(depth > 0, np.minimum(1.0, alt / depth / weight), 0.0)
    candidates: tuple[float | None, ...]
    if precision == "auto":
        candidates = (None, *AUTO_PRECISIONS)
    else:
        candidates = (None if precision is None else float(precision),)

    # fits: (n_clones, precision or None, (log L, grid index, resp), n_parameters, BIC)
    fits: list[tuple[int, float | None, tuple[float, np.ndarray, np.ndarray], int, float]] = []
    for rho in candidates:
        if rho is None:
            loglik = stats.binom.logpmf(alt[:, :, None], depth[:, :, None], f)
        else:
            loglik = stats.betabinom.logpmf(
                alt[:, :, None], depth[:, :, None], f * rho, (1.0 - f) * rho
            )
        rng = np.random.default_rng(options.random_state)  # the same restarts for every density
        searched: list[float] = []
        for k in range(1, min(options.max_clones, n) + 1):
            fit = max(
                (
                    _em(loglik, ccf_point, k, rng, options.max_iter)
                    for _ in range(options.n_init if k > 1 else 1)
                ),
                key=lambda r: r[0],
            )
            # precision="auto" estimates one more parameter for a beta-binomial model
            n_params = k * s + k - 1 + (1 if precision == "auto" and rho is not None else 0)
            bic = -2.0 * fit[0] + n_params * np.log(n)
            fits.append((k, rho, fit, n_params, bic))
            searched.append(bic)
            best_k = int(np.argmin(searched)) + 1
            if options.patience is not None and k - best_k >= options.patience:
                break
    best = int(np.argmin([b for *_, b in fits]))
    _, _, (_, grid_idx, resp), _, _ = fits[best]

    assign = resp.argmax(axis=1)
    used = np.unique(assign)
    phi = _GRID[grid_idx[used]]  # (k_used, s)
    # Clone 1 = highest mean prevalence (the truncal clone when there is one).
    order = np.lexsort((-phi[:, 0], -phi.mean(axis=1)))
    relabel = np.empty(resp.shape[1], dtype=np.int64)
    relabel[used[order]] = np.arange(1, len(used) + 1)
    post = resp[np.arange(n), assign] / resp[:, used].sum(axis=1)

    mutations = muts.reset_index()
    mutations.insert(0, "subject_id", subject)
    mutations["clone_id"] = relabel[assign]
    mutations["posterior"] = post

    clone_rows = []
    for rank, c in enumerate(used[order], start=1):
        members = mutations[mutations["clone_id"] == rank]
        hits = members[members["catalogue_hit"]]
        genes = ";".join(sorted(set(hits["gene"].astype(str))))
        changes = ";".join(
            sorted(f"{g}:{p}" for g, p in zip(hits["gene"], hits["protein_change"], strict=True))
        )
        for j, sample in enumerate(samples.itertuples(index=False)):
            clone_rows.append(
                {
                    "subject_id": subject,
                    "clone_id": rank,
                    "sample_id": sample.sample_id,
                    "phase": sample.phase,
                    "timepoint": sample.timepoint,
                    "prevalence": _GRID[grid_idx[c, j]],
                    "n_mutations": len(members),
                    "carries_resistance_mutation": len(hits) > 0,
                    "resistance_genes": genes,
                    "resistance_changes": changes,
                }
            )
    selection = pd.DataFrame(
        {
            "subject_id": subject,
            "n_clones": [k for k, *_ in fits],
            "precision": [np.nan if rho is None else rho for _, rho, *_ in fits],
            "n_mutations": n,
            "n_samples": s,
            "log_likelihood": [fit[0] for _, _, fit, _, _ in fits],
            "n_parameters": [p for *_, p, _ in fits],
            "bic": [b for *_, b in fits],
            "selected": [i == best for i in range(len(fits))],
        }
    )
    return mutations, pd.DataFrame(clone_rows), selection


def _em(
    loglik: np.ndarray,
    ccf_point: np.ndarray,
    k: int,
    rng: np.random.Generator,
    max_iter: int,
    tol: float = 1e-6,
) -> tuple[float, np.ndarray, np.ndarray]:
    """One EM run of the grid binomial mixture; returns (log L, grid index (k, s), resp)."""
    n, s, g = loglik.shape
    flat = loglik.reshape(n, s * g)  # the M-step is one matrix product over mutations
    samples = np.arange(s)[:, None]
    centres = _kmeans_pp(ccf_point, k, rng)
    dist = ((ccf_point[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    resp = np.zeros((n, k))
    resp[np.arange(n), dist.argmin(axis=1)] = 1.0
    previous = -np.inf
    total = -np.inf
    grid_idx = np.zeros((k, s), dtype=np.int64)
    for _ in range(max_iter):
        # M-step: weights, and the grid prevalence maximising each clone's likelihood.
        weights = (resp.sum(axis=0) + 1e-10) / (n + k * 1e-10)
        grid_idx = (resp.T @ flat).reshape(k, s, g).argmax(axis=2)  # (k, s)
        # E-step: log p(a_i, z_i = k) = log pi_k + sum_s loglik[i, s, phi_ks].
        joint = np.log(weights)[None, :] + loglik[:, samples, grid_idx.T].sum(axis=1)
        top = joint.max(axis=1)
        resp = np.exp(joint - top[:, None])
        mass = resp.sum(axis=1)
        resp /= mass[:, None]
        total = float((top + np.log(mass)).sum())
        if total - previous < tol * max(1.0, abs(total)):
            break
        previous = total
    return total, grid_idx, resp


def _kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [points[rng.integers(len(points))]]
    for _ in range(1, k):
        d2 = np.min([((points - c) ** 2).sum(axis=1) for c in centres], axis=0)
        total = d2.sum()
        if total <= 0:
            centres.append(points[rng.integers(len(points))])
        else:
            centres.append(points[rng.choice(len(points), p=d2 / total)])
    return np.array(centres)


# --------------------------------------------------------------------------------------
# Cohort-level recurrence
# --------------------------------------------------------------------------------------


def recurrent_genes(
    variants: pd.DataFrame,
    design: pd.DataFrame,
    *,
    contrast_column: str = "phase",
    group_a: str = "relapse",
    group_b: str = "baseline",
    catalogue_genes: Iterable[str] | None = None,
    paired: bool | None = None,
) -> pd.DataFrame:
    """Genes mutated in more subjects in group A samples than in group B samples.

    A subject counts once per group: it is *mutated* in a group when any of its samples
    of that group carries a variant in the gene, and the denominators are the subjects
    with at least one sample of the group in the design (so subjects without any
    mutation still count). A variant row counts as present when its ``alt_count`` is
    positive or missing: the test uses presence only, so it works on MAFs without
    read counts (e.g. the APL relapse vs diagnosis cohort).

    Per gene, Fisher's exact test (Fisher 1922; :func:`scipy.stats.fisher_exact`,
    two-sided) on ``[[mutated_a, n_a - mutated_a], [mutated_b, n_b - mutated_b]]``
    with subjects as units, and Benjamini-Hochberg FDR (Benjamini & Hochberg 1995)
    across genes. Fisher's test assumes the two groups are independent samples (different
    patients, e.g. the APL diagnosis and relapse cohorts).

    When the same subjects contribute both groups (``paired``), the unit is the subject
    with samples in both groups, and the test is McNemar's exact test (McNemar,
    *Psychometrika* 12:153, 1947) on the discordant subjects: ``only_a`` mutated in A
    but not B, ``only_b`` the reverse; the two-sided p-value is
    ``min(1, 2 * BinomCDF(min(only_a, only_b); only_a + only_b, 1/2))``, as
    :func:`statsmodels.stats.contingency_tables.mcnemar` with ``exact=True``, and the
    odds ratio is the conditional ``only_a / only_b``. Subjects with samples in only
    one group are left out of a paired test.

    Parameters
    ----------
    variants
        Variant table with ``sample_id`` and ``gene`` (``alt_count`` optional).
    design
        Sample design indexed by ``sample_id`` with ``subject_id`` and
        ``contrast_column``.
    contrast_column
        Design column holding the groups.
    group_a, group_b
        The tested group and the reference group.
    catalogue_genes
        Genes of a resistance catalogue; adds a boolean ``catalogue_gene`` column.
    paired
        McNemar on subjects sampled in both groups (True) or Fisher on the groups as
        independent samples (False). ``None`` (default): paired exactly when every
        subject of either group has samples in both.

    Returns
    -------
    pandas.DataFrame
        One row per gene mutated in either group, indexed by ``gene``: ``mutated_a``,
        ``n_a``, ``proportion_a``, ``mutated_b``, ``n_b``, ``proportion_b``,
        ``odds_ratio`` (sample odds ratio, scipy's statistic; paired: ``only_a /
        only_b``), ``only_a`` and ``only_b`` (paired; NA otherwise), ``test``
        (``fisher`` or ``mcnemar``), ``pvalue``, ``pvalue_adj`` (and
        ``catalogue_gene``), sorted by p-value then gene. Paired, ``n_a`` and ``n_b``
        both count the subjects sampled in both groups.

    Raises
    ------
    resistomics.errors.MethodInputError
        If columns are missing, samples are not in the design or a group has no subject.
    """
    _require_columns(variants, ("sample_id", "gene"), "variants")
    _require_columns(design, ("subject_id", contrast_column), "design")
    missing = pd.Index(variants["sample_id"].unique()).difference(design.index)
    if len(missing) > 0:
        raise MethodInputError(
            f"{len(missing)} samples of variants are not in design, e.g. {list(missing[:5])}"
        )
    group = design[contrast_column].astype(str)
    in_group = {
        name: set(design.loc[group == name, "subject_id"].astype(str))
        for name in (group_a, group_b)
    }
    for name, subjects in in_group.items():
        if not subjects:
            raise MethodInputError(
                f"no subject has a sample with {contrast_column} == {name!r} in the design"
            )
    both = in_group[group_a] & in_group[group_b]
    if paired is None:
        paired = in_group[group_a] == in_group[group_b]
    if paired and not both:
        raise MethodInputError(
            f"a paired test needs subjects sampled in both {group_a!r} and {group_b!r}"
        )
    present = variants
    if "alt_count" in variants.columns:
        alt = variants["alt_count"].to_numpy(dtype=np.float64)
        present = variants[np.isnan(alt) | (alt > 0)]
    present = present[present["gene"].notna()]
    samples = pd.Index(present["sample_id"])
    calls = pd.DataFrame(
        {
            "gene": present["gene"].astype(str).to_numpy(),
            "subject_id": design["subject_id"].reindex(samples).astype(str).to_numpy(),
            "group": group.reindex(samples).to_numpy(),
        }
    )
    calls = calls[calls["group"].isin([group_a, group_b])].drop_duplicates()
    if paired:
        calls = calls[calls["subject_id"].isin(both)]
        n_a = n_b = len(both)
    else:
        n_a, n_b = len(in_group[group_a]), len(in_group[group_b])
    mutated = calls.groupby(["gene", "group"]).size().unstack("group")
    mutated = mutated.reindex(columns=[group_a, group_b]).fillna(0).astype(np.int64)

    out = pd.DataFrame(index=mutated.index.rename("gene"))
    out["mutated_a"] = mutated[group_a].to_numpy()
    out["n_a"] = n_a
    out["proportion_a"] = out["mutated_a"] / n_a
    out["mutated_b"] = mutated[group_b].to_numpy()
    out["n_b"] = n_b
    out["proportion_b"] = out["mutated_b"] / n_b
    mutated_a = out["mutated_a"].to_numpy(dtype=np.int64)
    mutated_b = out["mutated_b"].to_numpy(dtype=np.int64)
    if paired:
        # Subjects mutated in both groups; the rest of each arm's mutated are discordant.
        per_subject = calls.assign(one=1).pivot_table(
            index=["gene", "subject_id"], columns="group", values="one", fill_value=0
        )
        per_subject = per_subject.reindex(columns=[group_a, group_b], fill_value=0)
        concordant = (
            ((per_subject[group_a] > 0) & (per_subject[group_b] > 0))
            .groupby(level="gene")
            .sum()
            .reindex(out.index, fill_value=0)
            .to_numpy(dtype=np.int64)
        )
        only_a, only_b = mutated_a - concordant, mutated_b - concordant
        with np.errstate(divide="ignore", invalid="ignore"):
            out["odds_ratio"] = only_a / only_b.astype(np.float64)
        out["only_a"] = pd.array(only_a, dtype="Int64")
        out["only_b"] = pd.array(only_b, dtype="Int64")
        out["test"] = "mcnemar"
        discordant = only_a + only_b
        p = 2.0 * stats.binom.cdf(np.minimum(only_a, only_b), discordant, 0.5)
        out["pvalue"] = np.where(discordant > 0, np.minimum(p, 1.0), 1.0)
    else:
        odds_arr, p_arr = fisher_exact_2x2(mutated_a, n_a - mutated_a, mutated_b, n_b - mutated_b)
        out["odds_ratio"] = odds_arr
        out["only_a"] = pd.array([pd.NA] * len(out), dtype="Int64")
        out["only_b"] = pd.array([pd.NA] * len(out), dtype="Int64")
        out["test"] = "fisher"
        out["pvalue"] = p_arr
    out["pvalue_adj"] = benjamini_hochberg(out["pvalue"].to_numpy())
    if catalogue_genes is not None:
        out["catalogue_gene"] = out.index.isin(list(catalogue_genes))
    return out.sort_values(["pvalue", "gene"], kind="mergesort")


def fisher_exact_2x2(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray, *, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided Fisher's exact test of many 2x2 tables ``[[a, b], [c, d]]`` at once.

    Fisher, *J. R. Stat. Soc.* 85:87 (1922). The same definition as
    :func:`scipy.stats.fisher_exact` and R's ``fisher.test`` (two-sided): the p-value
    sums the hypergeometric probabilities of every table with the observed margins that
    is no more likely than the observed one, and is 1 when the observed table is the
    mode. "No more likely" allows a relative 1e-7, as R does: the log-probabilities here
    carry rounding of ~1e-13 at margins in the hundreds, so scipy's 1e-14 would let
    exact ties fall either way. Vectorised over tables: one grid of log-probabilities
    per chunk of tables, from a table of log-factorials (``gammaln``), instead of one
    scipy call per table, which would dominate a cohort's clonal analysis.

    Returns
    -------
    odds_ratio, pvalue
        The sample odds ratio ``a*d / (b*c)`` (scipy's statistic; inf or nan as scipy
        gives them) and the two-sided p-value.
    """
    a, b, c, d = (np.asarray(x, dtype=np.int64) for x in (a, b, c, d))
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = (a * d).astype(np.float64) / (b * c).astype(np.float64)
    pvalue = np.ones(a.shape[0], dtype=np.float64)
    if a.shape[0] == 0:
        return odds, pvalue
    n1, n2, n = a + b, c + d, a + c  # row 1, row 2, column 1 totals
    total = n1 + n2
    lo = np.maximum(0, n - n2)
    hi = np.minimum(n, n1)
    log_fact = special.gammaln(np.arange(int(total.max()) + 1) + 1.0)  # log(k!)
    # log P(X = x) = const - log x! - log (n1-x)! - log (n-x)! - log (n2-n+x)!
    const = log_fact[n1] + log_fact[n2] + log_fact[n] + log_fact[total - n] - log_fact[total]
    tie = np.log1p(1e-7)
    for start in range(0, a.shape[0], chunk):
        sl = slice(start, start + chunk)
        if not (hi[sl] > lo[sl]).any():
            continue
        width = int((hi[sl] - lo[sl]).max(initial=0)) + 1
        x = lo[sl, None] + np.arange(width)[None, :]
        valid = x <= hi[sl, None]
        x = np.where(valid, x, lo[sl, None])
        n1s, ns, n2s = n1[sl, None], n[sl, None], n2[sl, None]
        logp = const[sl, None] - (
            log_fact[x] + log_fact[n1s - x] + log_fact[ns - x] + log_fact[n2s - ns + x]
        )
        logp = np.where(valid, logp, -np.inf)
        observed = logp[np.arange(logp.shape[0]), a[sl] - lo[sl]]
        mode = np.max(logp, axis=1)
        keep = logp <= observed[:, None] + tie
        p = np.exp(logp - mode[:, None])
        tail = np.where(keep, p, 0.0).sum(axis=1) / p.sum(axis=1)
        at_mode = observed >= mode - tie
        pvalue[sl] = np.where(at_mode, 1.0, np.minimum(tail, 1.0))
    pvalue[hi == lo] = 1.0  # one possible table (e.g. an empty margin): nothing to test
    return odds, pvalue
