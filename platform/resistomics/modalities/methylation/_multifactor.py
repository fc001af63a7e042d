"""The general-design DML test of DSS (``DMLfit.multiFactor`` + ``DMLtest.multiFactor``).

Park & Wu (*Bioinformatics* 32:1446, 2016, "Differential methylation analysis for BS-seq
data under general experimental design"), as DSS 2.46 implements it. Per CpG site, with
``Y`` methylated and ``N`` total reads of the ``n`` samples and the ``n x p`` design
matrix ``X`` of an R formula:

1. the arcsine link ``Z = asin(2 (Y + 0.1) / (N + 0.2) - 1)`` (of the smoothed counts
   when ``smoothing``, below);
2. samples with ``N = 0`` are dropped; the site is left out (``NA``) when fewer than
   ``p + 1`` samples remain or the remaining rows of ``X`` have a singular value below
   ``1e-8``;
3. a weighted least-squares fit with weights ``N``, ``beta0 = (X'NX)^-1 X'NZ``;
4. the dispersion ``phi = (sum(N (Z - X beta0)^2) - (n - p)) n / (n - p) / sum(N - 1)``
   (``n`` the number of samples in the design, the sums over the covered samples, as in
   DSS), clipped to ``[0.001, 0.999]``;
5. the refit with weights ``N / (1 + (N - 1) phi)``: ``beta = (X'VX)^-1 X'VZ`` and
   ``var(beta) = (X'VX)^-1``.

``DMLtest.multiFactor(coef=)`` gives ``stat = beta_k / se_k``, ``pvals = 2 Phi(-|stat|)``
and ``fdrs`` the Benjamini-Hochberg adjustment over every tested site of the dataset
(not per chunk; sites left out are ``NaN`` and do not count). ``term=`` (all the columns
of one or more formula terms) and ``contrast=`` (a ``p x r`` matrix ``L``) give DSS's
``DMLtest.multiFactor.Contrast``: ``stat = sign * sqrt(W / r)`` with the Wald statistic
``W = (L'beta)' (L' var(beta) L)^-1 (L'beta)`` and the sign of ``L'beta`` when ``r = 1``
(else ``+``), and again ``pvals = 2 Phi(-|stat|)``: DSS refers ``sqrt(W / r)`` to the
normal, not ``W`` to a chi-square with ``r`` degrees of freedom; we do as DSS does.

``smoothing`` (DSS's ``smooth.chr(..., "avg")``, the C ``windowFilter``): per sample
and contig, the methylated and total counts are replaced by the rounded mean over the
sites within ``smoothing_span // 2`` bp either side (sites with ``N = 0`` included, as
zeros), before the arcsine link only; the weights and the ``N = 0`` rule use the raw
counts, as in DSS.

Every step is vectorised over the sites of a chunk (batched ``p x p`` normal equations
and inverses); one Dask task per chunk of sites (with a halo of ``smoothing_span // 2``
bp read from the neighbouring chunks when smoothing), one ``compute`` per test.

Differences from DSS, by design: (a) DSS's ``term=``/``Contrast`` test stops with an
error when any site was left out (R's ``solve`` on an ``NA`` matrix); here those sites
are ``NaN``. (b) Factor levels sort in code-point (C-locale) order; R's ``factor()``
sorts in the session's locale, which differs only for levels that differ in case or
accents. (c) The formula language is the additive part of R's: factor and numeric
columns, ``:`` and ``*`` interactions, ``0 +`` / ``- 1``; R's contrast heuristic
(Chambers & Hastie, *Statistical Models in S*, 1992, p. 38) decides treatment contrasts
or indicators per factor in a term, as ``model.matrix`` does. Agreement with DSS 2.46
on the RRBS data of ``../shared/data/methylation_rrbs``: see
``tests/modalities/methylation/test_multifactor.py`` for the tolerance measured.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from resistomics.errors import MethodInputError
from resistomics.storage import FeatureMatrix

__all__ = [
    "MultiFactorDesign",
    "MultiFactorFit",
    "bh_adjust",
    "coefficient_arms",
    "design_matrix",
    "dml_fit_multifactor",
    "dml_test_multifactor",
    "multifactor_table",
    "smooth_window_average",
]

#: DSS's offset in the arcsine link and its dispersion bounds.
_C0 = 0.1
_C1 = 0.001
_SINGULAR = 1e-8
_NAME = r"[A-Za-z_.][A-Za-z0-9_.]*"


# -- the design matrix of an R formula ------------------------------------------------


@dataclass(frozen=True)
class MultiFactorDesign:
    """The design matrix of a formula on the samples, as R's ``model.matrix``.

    ``matrix``: samples x columns; ``columns``: R's column names (``(Intercept)``,
    ``caseSLE``, ``caseSLE:cellrN``); ``assign``: the term of each column (0 the
    intercept, ``i`` the i-th of ``terms``); ``terms``: R's term labels; ``levels``:
    the levels of each factor, reference first.
    """

    formula: str
    matrix: np.ndarray
    columns: tuple[str, ...]
    assign: tuple[int, ...]
    terms: tuple[str, ...]
    levels: dict[str, tuple[str, ...]]

    def column(self, name: str) -> int:
        """The index of a column by name; one-line error naming the columns otherwise."""
        if name not in self.columns:
            raise MethodInputError(
                f"no coefficient {name!r} in the design {self.formula!r}; its coefficients "
                f"are {list(self.columns)}",
                place="--coef",
                rule="unknown-coefficient",
            )
        return self.columns.index(name)


def _parse_formula(formula: str) -> tuple[bool, list[tuple[str, ...]]]:
    """``(intercept, terms)`` of an R right-hand side, terms as variable tuples."""
    text = formula.strip()
    if text.startswith("~"):
        text = text[1:]
    if "~" in text or not text.strip():
        raise MethodInputError(
            f"design {formula!r} is not a one-sided formula '~ a + b'",
            place="--design",
            rule="design-formula",
        )
    intercept = True
    terms: list[tuple[str, ...]] = []
    # split on + and - keeping the sign
    pieces = re.findall(r"([+-]?)\s*([^+-]+)", text.strip())
    if "".join(s + p for s, p in pieces).replace(" ", "") != text.replace(" ", ""):
        raise MethodInputError(
            f"design {formula!r} does not parse", place="--design", rule="design-formula"
        )
    for sign, raw in pieces:
        piece = raw.strip()
        if piece in ("0", "1"):
            if (piece == "0") == (sign != "-"):
                intercept = False
            elif sign != "-":
                intercept = True
            continue
        if sign == "-":
            raise MethodInputError(
                f"design {formula!r}: removing a term ('- {piece}') is not supported; "
                "only '- 1' is",
                place="--design",
                rule="design-formula",
            )
        if "*" in piece:
            names = [n.strip() for n in piece.split("*")]
            expanded = _subsets(names)
        else:
            expanded = [tuple(n.strip() for n in piece.split(":"))]
        for term in expanded:
            for name in term:
                if not re.fullmatch(_NAME, name):
                    raise MethodInputError(
                        f"design {formula!r}: {name!r} is not a column name (terms are "
                        "columns joined by '+', ':' or '*')",
                        place="--design",
                        rule="design-formula",
                    )
            terms.append(term)
    return intercept, terms


def _subsets(names: list[str]) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for mask in range(1, 1 << len(names)):
        out.append(tuple(n for i, n in enumerate(names) if mask >> i & 1))
    return sorted(out, key=len)


def _as_factor(values: pd.Series) -> tuple[np.ndarray, tuple[str, ...]]:
    if values.dtype == bool:
        text = np.where(values.to_numpy(), "TRUE", "FALSE").astype(object)
    else:
        text = values.astype(str).to_numpy(dtype=object)
    levels = tuple(sorted(set(text.tolist())))
    return text, levels


def design_matrix(
    formula: str, samples: pd.DataFrame, *, reference: Mapping[str, str] | None = None
) -> MultiFactorDesign:
    """The design matrix of ``formula`` on the columns of ``samples`` (one row each).

    As R's ``model.matrix(formula, samples)`` with the default treatment contrasts:
    a non-numeric column is a factor whose reference level is its first sorted level;
    a numeric column enters as is. Terms are ordered by degree, then as written;
    variables inside a term in their order of first appearance; the first variable
    varies fastest across the columns of an interaction. ``reference`` puts a given
    level of a factor first (R's ``relevel``), e.g. ``{"phase": "baseline"}``.

    Raises
    ------
    MethodInputError
        ``[design-formula]`` when the formula does not parse, ``[unknown-column]`` when
        it names a column ``samples`` lacks, ``[design-missing-value]`` when a used
        column has a missing value, ``[rank-deficient-design]`` when the columns are
        linearly dependent, ``[reference-level]`` when a ``reference`` level is not a
        level of its column.
    """
    intercept, raw_terms = _parse_formula(formula)
    order: list[str] = []
    for term in raw_terms:
        for name in term:
            if name not in order:
                order.append(name)
    for name in order:
        if name not in samples.columns:
            raise MethodInputError(
                f"design {formula!r} names {name!r}, not a sample column; columns are "
                f"{[c for c in samples.columns]}",
                place="--design",
                rule="unknown-column",
            )
        if samples[name].isna().any():
            raise MethodInputError(
                f"design column {name!r} has a missing value for samples "
                f"{samples.index[samples[name].isna()].tolist()[:5]}",
                place="--design",
                rule="design-missing-value",
            )
    # unique terms as sets, variables in first-appearance order, by degree (stable)
    seen: list[frozenset[str]] = []
    for term in raw_terms:
        key = frozenset(term)
        if key not in seen:
            seen.append(key)
    seen.sort(key=len)
    terms = [tuple(v for v in order if v in key) for key in seen]
    numeric = {
        name: pd.api.types.is_numeric_dtype(samples[name]) and samples[name].dtype != bool
        for name in order
    }
    factors = {name: _as_factor(samples[name]) for name in order if not numeric[name]}
    for name, level in (reference or {}).items():
        if name not in factors:
            raise MethodInputError(
                f"the contrast's column {name!r} is not a factor of the design {formula!r}",
                place="--contrast",
                rule="contrast-not-in-design",
            )
        if level not in factors[name][1]:
            raise MethodInputError(
                f"reference level {name}={level!r} is not a level of the design's {name!r} "
                f"{list(factors[name][1])}",
                place="--contrast",
                rule="reference-level",
            )
        text, levels = factors[name]
        factors[name] = (text, (level, *(lv for lv in levels if lv != level)))
    # R's TermCode: a factor is coded by contrasts when the term without it is empty or
    # lies inside a preceding term, else by indicators; with no intercept the first
    # factor of the first term holding one is coded by indicators.
    codes: list[dict[str, int]] = []
    for j, term in enumerate(terms):
        code = {}
        for name in term:
            if numeric[name]:
                continue
            rest = frozenset(term) - {name}
            contrasts = not rest or any(rest <= frozenset(t) for t in terms[:j])
            code[name] = 1 if contrasts else 2
        codes.append(code)
    if not intercept:
        for j, term in enumerate(terms):
            first = next((v for v in term if not numeric[v]), None)
            if first is not None:
                codes[j][first] = 2
                break
    n = len(samples)
    cols: list[np.ndarray] = []
    names: list[str] = []
    assign: list[int] = []
    if intercept:
        cols.append(np.ones(n))
        names.append("(Intercept)")
        assign.append(0)
    for j, term in enumerate(terms, start=1):
        parts: list[tuple[np.ndarray, list[str]]] = []
        for name in term:
            if numeric[name]:
                v = samples[name].to_numpy(dtype=np.float64)
                parts.append((v[:, None], [name]))
            else:
                text, levels = factors[name]
                use = levels[1:] if codes[j - 1][name] == 1 else levels
                block = np.stack([(text == lv).astype(np.float64) for lv in use], axis=1)
                parts.append((block.reshape(n, len(use)), [f"{name}{lv}" for lv in use]))
        block, labels = parts[0]
        for nxt, nxt_labels in parts[1:]:
            # the earlier variables vary fastest
            block = (block[:, None, :] * nxt[:, :, None]).reshape(n, -1)
            labels = [f"{a}:{b}" for b in nxt_labels for a in labels]
        cols.extend(block.T)
        names.extend(labels)
        assign.extend([j] * len(labels))
    matrix = np.column_stack(cols) if cols else np.zeros((n, 0))
    if matrix.shape[1] == 0:
        raise MethodInputError(
            f"design {formula!r} has no columns", place="--design", rule="design-formula"
        )
    rank = int(np.linalg.matrix_rank(matrix))
    if rank < matrix.shape[1]:
        raise MethodInputError(
            f"design {formula!r} is rank-deficient on these samples ({matrix.shape[1]} "
            f"columns {names}, rank {rank}): a column is a combination of others, drop or "
            "merge terms",
            place="--design",
            rule="rank-deficient-design",
        )
    return MultiFactorDesign(
        formula=formula,
        matrix=matrix,
        columns=tuple(names),
        assign=tuple(assign),
        terms=tuple(":".join(t) for t in terms),
        levels={k: v[1] for k, v in factors.items()},
    )


# -- the per-site fit ------------------------------------------------------------------


def smooth_window_average(values: np.ndarray, keys: np.ndarray, half: int) -> np.ndarray:
    """Rounded moving average of each column over the rows whose key lies within
    ``half`` of the row's key (DSS's ``windowFilter`` with ``flag = 1`` then ``round``).

    ``keys`` are non-decreasing; rows of different contigs must have keys more than
    ``half`` apart. The sums are of integers (exact in float64); R's ``round`` and
    numpy's ``rint`` both round half to even.
    """
    lo = np.searchsorted(keys, keys - half, side="left")
    hi = np.searchsorted(keys, keys + half, side="right")
    cs = np.zeros((values.shape[0] + 1, values.shape[1]), dtype=np.float64)
    np.cumsum(values, axis=0, dtype=np.float64, out=cs[1:])
    avg = (cs[hi] - cs[lo]) / (hi - lo).astype(np.float64)[:, None]
    return np.rint(avg)


def _inverse(a: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.inv(a)
    except np.linalg.LinAlgError:
        out = np.full_like(a, np.nan)
        for i in range(a.shape[0]):
            try:
                out[i] = np.linalg.inv(a[i])
            except np.linalg.LinAlgError:
                continue
        return out


def _wls(w: np.ndarray, x: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched weighted least squares: ``(beta, (X'WX)^-1)`` per row of ``w``/``z``."""
    wx = w[:, :, None] * x[None, :, :]  # sites x n x p, as DSS's t(X * N)
    wxt = wx.transpose(0, 2, 1)
    ainv = _inverse(wxt @ x)
    b = (wxt @ z[:, :, None])[:, :, 0]
    return (ainv @ b[:, :, None])[:, :, 0], ainv


def _unique_rows(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of a boolean matrix and each row's index among them (the bits
    packed into 64-bit words first: sorting words, not rows of booleans)."""
    packed = np.packbits(mask, axis=1)
    width = -(-packed.shape[1] // 8) * 8
    words = np.zeros((mask.shape[0], width), dtype=np.uint8)
    words[:, : packed.shape[1]] = packed
    codes = words.view(np.uint64)
    if codes.shape[1] == 1:
        _, first, inverse = np.unique(codes[:, 0], return_index=True, return_inverse=True)
    else:
        _, first, inverse = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    return mask[first], inverse.reshape(-1)


def _fit_sites(y: np.ndarray, n_reads: np.ndarray, z: np.ndarray, x: np.ndarray) -> np.ndarray:
    """DSS's ``DMLfit.oneCG`` for every row: ``[beta (p), var(beta) (p*p), phi]``."""
    n, p = x.shape
    s = y.shape[0]
    out = np.full((s, p + p * p + 1), np.nan)
    out[:, -1] = 0.0  # DSS leaves phi at 0 for the sites it skips
    if s == 0:
        return out
    covered = n_reads > 0
    k = covered.sum(axis=1)
    ok = k >= p + 1
    partial = ok & (k < n)
    if partial.any():
        patterns, inverse = _unique_rows(covered[partial])
        sv = np.linalg.svd(patterns[:, :, None] * x[None, :, :], compute_uv=False)
        good = ~(np.abs(sv) < _SINGULAR).any(axis=1)
        ok[np.flatnonzero(partial)] = good[inverse.reshape(-1)]
    if not ok.any():
        return out
    nr = n_reads[ok].astype(np.float64)
    zz = z[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        beta0, _ = _wls(nr, x, zz)
        resid = zz - beta0 @ x.T
        phi = (
            ((resid**2 * nr).sum(axis=1) - (n - p))
            * n
            / (n - p)
            / np.where(nr > 0, nr - 1, 0.0).sum(axis=1)
        )
        # R's min(max(c1, phi), 1 - c1): NaN stays NaN
        phi = np.minimum(np.maximum(_C1, phi), 1 - _C1)
        w = nr / (1 + (nr - 1) * phi[:, None])
        beta, var = _wls(np.where(np.isfinite(w), w, 1.0), x, zz)
    bad = ~np.isfinite(phi)
    beta[bad] = np.nan
    var[bad] = np.nan
    rows = np.flatnonzero(ok)
    out[rows, :p] = beta
    out[rows, p : p + p * p] = var.reshape(len(rows), p * p)
    out[rows, -1] = phi
    return out


def _fit_block(
    methylated: np.ndarray,
    total: np.ndarray,
    x: np.ndarray,
    keys: np.ndarray | None = None,
    start: int = 0,
    stop: int | None = None,
    half: int = 0,
) -> np.ndarray:
    """One chunk of sites; with ``keys`` the rows ``[start, stop)`` of a haloed block."""
    m = np.asarray(methylated, dtype=np.float64)
    t = np.asarray(total, dtype=np.float64)
    if keys is not None:
        m_s = smooth_window_average(m, keys, half)
        t_s = smooth_window_average(t, keys, half)
        sl = slice(start, stop)
        m, t, m_s, t_s = m[sl], t[sl], m_s[sl], t_s[sl]
    else:
        m_s, t_s = m, t
    z = np.arcsin(2 * (m_s + _C0) / (t_s + 2 * _C0) - 1)
    return _fit_sites(m, t, z, x)


@dataclass(frozen=True)
class MultiFactorFit:
    """The per-site fit of :func:`dml_fit_multifactor`.

    ``values``: sites x ``(p + p*p + 1)``, lazy (dask) or computed (numpy): the
    coefficients, the flattened covariance of the coefficients and the dispersion
    ``phi`` (``NaN`` coefficients and ``phi = 0`` at the sites DSS leaves out).
    ``sites``: the site index (``contig``, ``position`` ...) of the store.
    """

    design: MultiFactorDesign
    sites: pd.DataFrame
    values: Any
    smoothing: bool
    smoothing_span: int
    #: the store's sample columns the fit uses, in design-matrix row order
    samples: tuple[int, ...] = ()

    @property
    def n_coefficients(self) -> int:
        return len(self.design.columns)

    def compute(self) -> MultiFactorFit:
        """The fit with ``values`` computed (one Dask compute)."""
        values = self.values.compute() if hasattr(self.values, "compute") else self.values
        return MultiFactorFit(
            self.design,
            self.sites,
            np.asarray(values),
            self.smoothing,
            self.smoothing_span,
            self.samples,
        )

    def coefficients(self) -> pd.DataFrame:
        """Sites x coefficients (computes a lazy fit), with ``phi``."""
        v = np.asarray(self.compute().values)
        p = self.n_coefficients
        out = pd.DataFrame(v[:, :p], columns=list(self.design.columns))
        out["phi"] = v[:, -1]
        return out


def _samples_design(store: FeatureMatrix, design: pd.DataFrame | None) -> pd.DataFrame:
    ids = store.samples["sample_id"].astype(str).tolist()
    if design is None:
        return store.samples.set_index("sample_id", drop=False)
    table = design.set_index("sample_id", drop=False) if "sample_id" in design else design
    table.index = table.index.astype(str)
    missing = [s for s in ids if s not in table.index]
    if missing:
        raise MethodInputError(
            f"the design has no row for samples {missing[:10]} of the dataset",
            place="--design",
            rule="design-samples",
        )
    return table.loc[ids]


def dml_fit_multifactor(
    store: FeatureMatrix,
    formula: str,
    *,
    design: pd.DataFrame | None = None,
    reference: Mapping[str, str] | None = None,
    samples: Sequence[int] | None = None,
    smoothing: bool = False,
    smoothing_span: int = 500,
    sites_per_block: int | None = None,
) -> MultiFactorFit:
    """Fit DSS's general-design model at every site of a ``methylation.counts`` store,
    lazily (one Dask task per block of sites).

    Parameters
    ----------
    store
        The ``feature-matrix@1`` store (``methylated``, ``total``; sites sorted by
        contig and position).
    formula
        An R formula on the samples' columns, e.g. ``"~ case + cell"`` or
        ``"~ phase + subject_id"``.
    design
        The samples' attributes (``sample_id`` column or index); default the store's
        samples table, which carries the study design.
    reference
        The reference level of factors (see :func:`design_matrix`).
    samples
        Indices of the store's samples to use (default all), e.g. a contrast's filters.
    smoothing, smoothing_span
        Smooth the counts over ``smoothing_span // 2`` bp either side before the
        arcsine link (DSS's ``smoothing``, ``smoothing.span``).
    sites_per_block
        Sites per Dask task (rounded up to whole stored chunks; default one chunk row).

    Returns
    -------
    MultiFactorFit
        Lazy; :func:`dml_test_multifactor` computes it.

    Raises
    ------
    MethodInputError
        A bad formula, an unknown column, a rank-deficient design (see
        :func:`design_matrix`) or too few samples for the design
        (``[design-degrees-of-freedom]``: DSS needs more than ``p + 1`` samples).

    References
    ----------
    Park Y, Wu H. Differential methylation analysis for BS-seq data under general
    experimental design. *Bioinformatics* 32(10):1446-1453, 2016.
    """
    import dask
    import dask.array as da

    table = _samples_design(store, design)
    cols = np.arange(store.n_samples) if samples is None else np.asarray(samples, dtype=np.int64)
    dm = design_matrix(formula, table.iloc[cols], reference=reference)
    used = tuple(int(c) for c in cols)
    x = dm.matrix
    if x.shape[0] <= x.shape[1] + 1:
        raise MethodInputError(
            f"design {formula!r} has {x.shape[1]} coefficients for {x.shape[0]} samples: "
            "DSS needs more than coefficients + 1 samples; drop terms",
            place="--design",
            rule="design-degrees-of-freedom",
        )
    m = store.array("methylated", features_per_block=sites_per_block)
    t = store.array("total", features_per_block=sites_per_block)
    if samples is not None:
        m, t = m[:, cols], t[:, cols]
    width = x.shape[1] + x.shape[1] ** 2 + 1
    sites = store.features
    if not smoothing:
        values = da.map_blocks(
            _fit_block,
            m,
            t,
            x=x,
            dtype=np.float64,
            chunks=(m.chunks[0], (width,)),
        )
        return MultiFactorFit(dm, sites, values, False, smoothing_span, used)
    half = int(smoothing_span) // 2
    keys = _site_keys(sites, half)
    parts = []
    bounds = np.cumsum((0, *m.chunks[0]))
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        lo = int(np.searchsorted(keys, keys[a] - half, side="left"))
        hi = int(np.searchsorted(keys, keys[b - 1] + half, side="right"))
        block = dask.delayed(_fit_block)(m[lo:hi], t[lo:hi], x, keys[lo:hi], a - lo, b - lo, half)
        parts.append(da.from_delayed(block, shape=(b - a, width), dtype=np.float64))
    values = da.concatenate(parts, axis=0) if parts else da.zeros((0, width), dtype=np.float64)
    return MultiFactorFit(dm, sites, values, True, smoothing_span, used)


def _site_keys(sites: pd.DataFrame, half: int) -> np.ndarray:
    """Non-decreasing int64 keys: the position plus a gap wider than ``half`` per contig
    run (the store is sorted by contig, then position)."""
    contig = sites["contig"].to_numpy(dtype=object)
    pos = sites["position"].to_numpy(dtype=np.int64)
    run = np.zeros(len(contig), dtype=np.int64)
    if len(contig):
        run[1:] = np.cumsum(contig[1:] != contig[:-1])
    span = (int(pos.max()) if len(pos) else 0) + 2 * half + 2
    return run * span + pos


# -- the tests -----------------------------------------------------------------------


def bh_adjust(pvals: npt.ArrayLike) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, as R's ``p.adjust(p, "BH")``: ``NaN``
    stays ``NaN`` and does not count in the number of tests.

    References
    ----------
    Benjamini Y, Hochberg Y. Controlling the false discovery rate. *J R Stat Soc B*
    57:289-300, 1995.
    """
    p = np.asarray(pvals, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    keep = ~np.isnan(p)
    q = p[keep]
    m = q.size
    if m == 0:
        return out
    o = np.argsort(-q, kind="stable")  # decreasing, as order(p, decreasing = TRUE)
    i = np.arange(m, 0, -1, dtype=np.float64)
    adj = np.minimum(1.0, np.minimum.accumulate(m / i * q[o]))
    res = np.empty(m)
    res[o] = adj
    out[keep] = res
    return out


def _coef_stats(values: np.ndarray, p: int, k: int) -> np.ndarray:
    from scipy.special import ndtr

    beta = values[:, k]
    se = np.sqrt(values[:, p + k * p + k])
    stat = beta / se
    return np.stack([stat, 2 * ndtr(-np.abs(stat))], axis=1)


def _contrast_stats(values: np.ndarray, p: int, contrast: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    r = contrast.shape[1]
    beta = values[:, :p]
    sigma = values[:, p : p + p * p].reshape(-1, p, p)
    lb = beta @ contrast  # sites x r
    ok = np.isfinite(lb).all(axis=1) & np.isfinite(sigma).all(axis=(1, 2))
    stat = np.full(len(values), np.nan)
    if ok.any():
        middle = np.einsum("pa,spq,qb->sab", contrast, sigma[ok], contrast)
        w = np.einsum("sa,sab,sb->s", lb[ok], _inverse(middle), lb[ok])
        signs = np.sign(lb[ok, 0]) if r == 1 else 1.0
        with np.errstate(invalid="ignore"):
            stat[ok] = np.sqrt(w / r) * signs
    return np.stack([stat, 2 * ndtr(-np.abs(stat))], axis=1)


def _term_contrast(design: MultiFactorDesign, term: Sequence[str]) -> np.ndarray:
    cols: list[int] = []
    for t in term:
        label = ":".join(v.strip() for v in t.split(":"))
        match = [
            i
            for i, lab in enumerate(design.terms, start=1)
            if set(lab.split(":")) == set(label.split(":"))
        ]
        if not match:
            raise MethodInputError(
                f"no term {t!r} in the design {design.formula!r}; its terms are "
                f"{list(design.terms)}",
                place="--term",
                rule="unknown-term",
            )
        cols.extend(j for j, a in enumerate(design.assign) if a == match[0])
    contrast = np.zeros((len(design.columns), len(cols)))
    for c, j in enumerate(cols):
        contrast[j, c] = 1.0
    return contrast


def dml_test_multifactor(
    fit: MultiFactorFit,
    *,
    coef: str | int | None = None,
    term: str | Sequence[str] | None = None,
    contrast: npt.ArrayLike | None = None,
) -> pd.DataFrame:
    """DSS's ``DMLtest.multiFactor``: one coefficient, the columns of formula terms, or
    a contrast matrix, tested at every site (one Dask compute).

    Parameters
    ----------
    fit
        From :func:`dml_fit_multifactor`.
    coef
        A coefficient name (``"caseSLE"``) or 0-based column index.
    term
        A term label of the formula (``"cell"``, ``"case:cell"``) or several: all their
        columns at once (e.g. a factor with more than two levels).
    contrast
        A ``p x r`` matrix (rows: the design columns).

    Returns
    -------
    pandas.DataFrame
        ``chr``, ``pos``, ``stat``, ``pvals``, ``fdrs`` per site in the store's order
        (``NaN`` at the sites DSS leaves out). ``fdrs``: Benjamini-Hochberg over all
        tested sites of the dataset.

    Raises
    ------
    MethodInputError
        Not exactly one of ``coef``, ``term``, ``contrast``; an unknown coefficient or
        term; a contrast of the wrong shape.
    """
    import dask.array as da

    given = sum(v is not None for v in (coef, term, contrast))
    if given != 1:
        raise MethodInputError(
            "give exactly one of coef, term or contrast to test",
            place="--coef",
            rule="one-test",
        )
    p = fit.n_coefficients
    func: Any
    kwargs: dict[str, Any]
    if coef is not None:
        if isinstance(coef, str):
            k = fit.design.column(coef)
        else:
            k = int(coef)
            if not 0 <= k < p:
                raise MethodInputError(
                    f"coefficient index {k} outside 0..{p - 1}",
                    place="--coef",
                    rule="unknown-coefficient",
                )
        func, kwargs = _coef_stats, {"p": p, "k": k}
    else:
        if term is not None:
            mat = _term_contrast(fit.design, [term] if isinstance(term, str) else list(term))
        else:
            mat = np.asarray(contrast, dtype=np.float64)
            if mat.ndim == 1:
                mat = mat[:, None]
            if mat.ndim != 2 or mat.shape[0] != p or mat.shape[1] == 0:
                raise MethodInputError(
                    f"contrast has shape {mat.shape}: it needs {p} rows (the design "
                    "columns) and at least one column",
                    place="--contrast",
                    rule="contrast-shape",
                )
        func, kwargs = _contrast_stats, {"p": p, "contrast": mat}
    values = fit.values
    if isinstance(values, da.Array):
        stats = np.asarray(
            da.map_blocks(
                func, values, dtype=np.float64, chunks=(values.chunks[0], (2,)), **kwargs
            ).compute()
        )
    else:
        stats = func(np.asarray(values), **kwargs)
    return pd.DataFrame(
        {
            "chr": fit.sites["contig"].to_numpy(),
            "pos": fit.sites["position"].to_numpy(),
            "stat": stats[:, 0],
            "pvals": stats[:, 1],
            "fdrs": bh_adjust(stats[:, 1]),
        }
    )


def _arm_sums(methylated: np.ndarray, total: np.ndarray) -> np.ndarray:
    return np.stack(
        [np.asarray(methylated, np.float64).sum(axis=1), np.asarray(total, np.float64).sum(axis=1)],
        axis=1,
    )


def multifactor_table(
    fit: MultiFactorFit,
    coef: str,
    *,
    store: FeatureMatrix | None = None,
    arms: tuple[Sequence[int], Sequence[int]] | None = None,
) -> pd.DataFrame:
    """The per-CpG table of one coefficient, in the columns of a ``methylation.dml``
    result (one Dask compute).

    ``stat``, ``pval``, ``fdr``: :func:`dml_test_multifactor`'s ``stat``, ``pvals``,
    ``fdrs``; ``coef``, ``coef_se``: the coefficient and its standard error on DSS's
    arcsine scale ``asin(2 p - 1)``; ``phi1 = phi2``: the site's one dispersion.
    With ``arms`` (store sample columns of arm A and arm B, e.g. the two levels the
    coefficient compares), ``mu1``/``mu2`` are the arms' pooled methylation
    ``sum(M) / sum(N)`` and ``diff = mu1 - mu2`` (descriptive: unadjusted for the other
    terms); else ``NaN``. ``diff_se`` is ``NaN`` (the general design has no
    two-group mean difference).
    """
    import dask
    import dask.array as da

    k = fit.design.column(coef)
    p = fit.n_coefficients
    parts: list[Any] = [fit.values]
    if arms is not None:
        if store is None:
            raise MethodInputError(
                "arm means need the store", place="--contrast", rule="method-input"
            )
        m = store.array("methylated", features_per_block=fit.values.chunks[0][0])
        t = store.array("total", features_per_block=fit.values.chunks[0][0])
        for arm in arms:
            cols = np.asarray(arm, dtype=np.int64)
            parts.append(
                da.map_blocks(
                    _arm_sums,
                    m[:, cols],
                    t[:, cols],
                    dtype=np.float64,
                    chunks=(m.chunks[0], (2,)),
                )
            )
    computed = dask.compute(*parts)
    values = np.asarray(computed[0])
    n = len(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        mus = [c[:, 0] / c[:, 1] for c in computed[1:]] or [np.full(n, np.nan)] * 2
    done = MultiFactorFit(
        fit.design, fit.sites, values, fit.smoothing, fit.smoothing_span, fit.samples
    )
    test = dml_test_multifactor(done, coef=k)
    return pd.DataFrame(
        {
            "contig": fit.sites["contig"].to_numpy(),
            "position": fit.sites["position"].to_numpy(),
            "mu1": mus[0],
            "mu2": mus[1],
            "diff": mus[0] - mus[1],
            "diff_se": np.full(n, np.nan),
            "stat": test["stat"].to_numpy(),
            "phi1": values[:, -1],
            "phi2": values[:, -1],
            "pval": test["pvals"].to_numpy(),
            "fdr": test["fdrs"].to_numpy(),
            "coef": values[:, k],
            "coef_se": np.sqrt(values[:, p + k * p + k]),
        }
    )


def coefficient_arms(design: MultiFactorDesign, coef: str) -> tuple[str, str, str] | None:
    """``(column, level, reference)`` when ``coef`` is a treatment contrast of a factor's
    main effect (``caseSLE`` -> ``("case", "SLE", "HC")``), else ``None``."""
    k = design.column(coef)
    term = design.terms[design.assign[k] - 1] if design.assign[k] > 0 else None
    if term is None or term not in design.levels:
        return None
    levels = design.levels[term]
    level = coef[len(term) :]
    width = sum(a == design.assign[k] for a in design.assign)
    if width == len(levels) - 1 and level in levels[1:]:
        return term, level, levels[0]
    return None
