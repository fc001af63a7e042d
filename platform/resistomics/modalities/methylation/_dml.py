"""Two-group differential methylation per CpG (DML), as DSS's ``DMLtest`` (DSS 2.46).

The model is DSS's (Feng, Conneely & Wu, *Nucleic Acids Res.* 42:e69, 2014; smoothing:
Wu et al., *Nucleic Acids Res.* 43:e141, 2015): methylated reads at a site are
beta-binomial around the group's mean with a per-group dispersion ``phi``; ``log phi``
has a log-normal prior estimated from all well-covered CpGs (median and IQR/1.39 of the
method-of-moments ``log phi``), each site's ``phi`` is its posterior mode (R's
``optimize``, i.e. Brent's minimiser with ``tol = 0.001`` on ``[-5, log 0.99]``), the
counts are reweighted by ``1 / (1 + (n - 1) phi)`` and the group means compared by a
Wald test. With smoothing, the group means are moving averages over ``span`` bp within a
contig and the variance accounts for the correlation of neighbouring sites
(``rho = 0.8`` per 50 bp), exactly as DSS's C code does it.

Every step follows DSS's R and C source, including its quirks (kept for parity):

* sites are kept when the coverage summed over +-100 bp exceeds 2 per sample in both
  groups (``hasCoverage``), and the statistic is ``NA`` (the row dropped) where a group
  has no reads at the site itself;
* the ``const`` added to the counts is the mean methylated fraction over all kept sites
  and samples of the group, and the weights are divided by their mean over all of them:
  both are global quantities, computed in a first pass;
* the smoothed variance sums ``vars[i]`` (not ``vars[j]``) on its diagonal and leaves
  out the window's last site (``compute_var_smooth.c``); variances below ``1e-5`` become
  ``1e-4`` with smoothing and ``1e-5`` without.

Where this differs from DSS, and why:

* windows stop at a contig's end. DSS's ``hasCoverage`` runs its window over the
  whole genome-ordered vector and its scan stops only at a position more than 100 bp
  below (above) the site's, so at the first (last) sites of a contig it also sums the
  reads of the previous (next) contig's sites up to the first one out of that range.
  DSS can therefore keep a few low-coverage sites at contig edges that are dropped here
  (none in the one-contig RRBS reference).
* the minimiser is R's ``Brent_fmin`` statement for statement, compiled (numba) and
  run per site; the objective is the same formula, with each sample's
  ``lbeta(n - x + beta, x + alpha) - lbeta(beta, alpha)`` as the log of a ratio of
  rising-factorial products (lgamma differences above 64 reads) instead of R's
  ``lbeta``, so objective values agree to ~1e-13 relative and the minimiser takes the
  same steps except where two trial values tie to that precision, when its result can
  move within the tolerance (0.001 in ``log phi``). :func:`brent_minimize` is the same
  algorithm vectorised over sites (for any objective).
* cumulative-sum window sums start at each block's halo rather than at the contig start
  (rounding differences ~1e-13 relative).

The work is one Dask graph over blocks of sites (each block with a halo of neighbouring
sites: ``100`` bp without smoothing, ``span + 100`` bp with it), computed once: pass A
(site filter, the ``const`` sums and the prior's ``log phi`` values), pass B (each
site's ``phi`` and the weight sums), pass C (the Wald test; with smoothing it takes the
``phi`` of neighbouring blocks' sites), and Benjamini-Hochberg over all tested sites.
Results do not depend on the block size (tested).

Output columns (DSS -> here): ``chr`` -> ``contig``, ``pos`` -> ``position``, ``mu1``,
``mu2``, ``diff``, ``diff.se`` -> ``diff_se``, ``stat``, ``phi1``, ``phi2``, ``pval``,
``fdr``; group 1 is the contrast's arm A.
"""

from __future__ import annotations

import itertools
import math
import posixpath
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import dask
import numba
import numpy as np
import pandas as pd
from dask.base import tokenize
from scipy import special

from resistomics.errors import MethodInputError

if TYPE_CHECKING:
    from resistomics.storage import DataRoot, FeatureMatrix

__all__ = [
    "DML_COLUMNS",
    "DML_SITES_PER_BLOCK",
    "DMLPlan",
    "StoreCounts",
    "benjamini_hochberg",
    "brent_minimize",
    "dml_test",
    "plan_dml_blocks",
    "write_dml_parts",
]

#: Result columns in DSS's order (DSS's ``chr``, ``pos``, ``diff.se`` renamed).
DML_COLUMNS = (
    "contig",
    "position",
    "mu1",
    "mu2",
    "diff",
    "diff_se",
    "stat",
    "phi1",
    "phi2",
    "pval",
    "fdr",
)

#: CpGs per task of the DML graph. A task holds its block and halo as float64 a few
#: times over (counts, weights, the minimiser's state): 65536 sites x 16 samples is
#: ~8 MiB per copy, so a task stays under ~150 MiB.
DML_SITES_PER_BLOCK = 1 << 16

# DSS constants (R sources of DMLtest and its helpers, src/DSS.h)
_COVERAGE_WINDOW = 200  # hasCoverage: ws
_COVERAGE_THRESH = 2  # hasCoverage: thresh (reads per sample over the window)
_PHI_INTERVAL = (-5.0, math.log(0.99))  # optimize(interval = c(-5, log(0.99)))
_PHI_TOL = 0.001  # optimize(tol = 0.001)
_RHO = 0.8  # compute.var.Smooth
_BINSIZE = 50  # DSS.h BINSIZE: correlation lag unit (bp)
_FALLBACK_PRIOR = (-3.0, 1.0)  # est.prior.BSseq.logN without enough sites
_MIN_PRIOR_SITES = 50
_DBL_MAX = float(np.finfo(np.float64).max)


# ----------------------------------------------------------------------- the minimiser
def brent_minimize(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    n: int,
    lower: float,
    upper: float,
    tol: float,
    *,
    max_iter: int = 500,
) -> np.ndarray:
    """Minimise ``n`` scalar functions at once with R's ``optimize`` (Brent, 1973).

    A vectorised transcription of R's ``Brent_fmin`` (``src/library/stats/src/
    optimize.c``, after Brent, *Algorithms for Minimization without Derivatives*, 1973,
    ch. 5): golden-section steps with parabolic interpolation, the same stopping rule
    and the same updates, each site at its own step; only the sites still searching are
    evaluated.

    Parameters
    ----------
    f
        ``f(u, idx)``: the objectives of the sites ``idx`` at the points ``u``.
    n
        Number of functions (sites).
    lower, upper, tol
        As ``optimize(interval = c(lower, upper), tol = tol)``.

    Returns
    -------
    numpy.ndarray
        The minimiser of each function (R's ``$minimum``).
    """
    c = (3.0 - math.sqrt(5.0)) * 0.5
    eps = math.sqrt(np.finfo(np.float64).eps)
    tol3 = tol / 3.0

    def value(u: np.ndarray, idx: np.ndarray) -> np.ndarray:
        # R's fcn1: a non-finite value is replaced by the largest double
        out = f(u, idx)
        return np.where(np.isfinite(out), out, _DBL_MAX)

    a = np.full(n, lower)
    b = np.full(n, upper)
    v = a + c * (b - a)
    w = v.copy()
    x = v.copy()
    d = np.zeros(n)
    e = np.zeros(n)
    fx = value(x, np.arange(n))
    fv = fx.copy()
    fw = fx.copy()
    active = np.arange(n)
    for _ in range(max_iter):
        if active.size == 0:
            break
        xa, aa, ba = x[active], a[active], b[active]
        xm = (aa + ba) * 0.5
        tol1 = eps * np.abs(xa) + tol3
        t2 = tol1 * 2.0
        going = ~(np.abs(xa - xm) <= t2 - (ba - aa) * 0.5)
        active = active[going]
        if active.size == 0:
            break
        xa, aa, ba = xa[going], aa[going], ba[going]
        xm, tol1, t2 = xm[going], tol1[going], t2[going]
        wa, va = w[active], v[active]
        fxa, fwa, fva = fx[active], fw[active], fv[active]
        da_, ea = d[active], e[active]

        p = np.zeros(active.size)
        q = np.zeros(active.size)
        r = np.zeros(active.size)
        fit = np.abs(ea) > tol1
        with np.errstate(invalid="ignore", over="ignore"):
            rf = (xa - wa) * (fxa - fva)
            qf = (xa - va) * (fxa - fwa)
            pf = (xa - va) * qf - (xa - wa) * rf
            qf = (qf - rf) * 2.0
            pf = np.where(qf > 0.0, -pf, pf)
            qf = np.abs(qf)
        p = np.where(fit, pf, p)
        q = np.where(fit, qf, q)
        r = np.where(fit, ea, r)
        ea = np.where(fit, da_, ea)

        with np.errstate(invalid="ignore", over="ignore"):
            golden = (
                (np.abs(p) >= np.abs(q * 0.5 * r)) | (p <= q * (aa - xa)) | (p >= q * (ba - xa))
            )
        eg = np.where(xa < xm, ba - xa, aa - xa)
        ea = np.where(golden, eg, ea)
        with np.errstate(divide="ignore", invalid="ignore"):
            dpar = p / q
        upar = xa + dpar
        near = (upar - aa < t2) | (ba - upar < t2)
        dpar = np.where(near, np.where(xa >= xm, -tol1, tol1), dpar)
        dnew = np.where(golden, c * ea, dpar)

        u = np.where(np.abs(dnew) >= tol1, xa + dnew, np.where(dnew > 0.0, xa + tol1, xa - tol1))
        fu = value(u, active)

        better = fu <= fxa
        left = u < xa
        # fu <= fx
        a_new = np.where(better, np.where(left, aa, xa), np.where(left, u, aa))
        b_new = np.where(better, np.where(left, xa, ba), np.where(left, ba, u))
        to_w = ~better & ((fu <= fwa) | (wa == xa))
        to_v = ~better & ~to_w & ((fu <= fva) | (va == xa) | (va == wa))
        v_new = np.where(better | to_w, wa, np.where(to_v, u, va))
        fv_new = np.where(better | to_w, fwa, np.where(to_v, fu, fva))
        w_new = np.where(better, xa, np.where(to_w, u, wa))
        fw_new = np.where(better, fxa, np.where(to_w, fu, fwa))
        x_new = np.where(better, u, xa)
        fx_new = np.where(better, fu, fxa)

        a[active], b[active] = a_new, b_new
        v[active], fv[active] = v_new, fv_new
        w[active], fw[active] = w_new, fw_new
        x[active], fx[active] = x_new, fx_new
        d[active], e[active] = dnew, ea
    return x


# ----------------------------------------------------------------------- compiled kernel
# The posterior-mode search is most of the DML's time: a per-site scalar Brent (R's
# ``Brent_fmin``) over a compiled beta-binomial objective, one loop over the sites.
_RISING_DIRECT = 64  # reads up to this: products of (a + i); above: lgamma differences


@numba.njit(cache=True, nogil=True)
def _log_bb_ratio(alpha: float, beta: float, tmp: float, x: float, n: float) -> float:
    """``lbeta(n - x + beta, x + alpha) - lbeta(beta, alpha)`` for integer counts.

    That is ``log(rising(alpha, x) rising(beta, n - x) / rising(tmp, n))`` with the
    rising factorials ``rising(a, k) = a (a + 1) ... (a + k - 1)`` and ``tmp = alpha +
    beta``. Up to :data:`_RISING_DIRECT` reads it is one log of two products (~2n ulp
    relative error, i.e. below the cancellation error of the lgamma differences, which
    it replaces at a fraction of the cost; the products stay below 1e150); above, the
    lgamma differences.
    """
    if n > _RISING_DIRECT:
        return (
            math.lgamma(x + alpha)
            + math.lgamma(n - x + beta)
            - math.lgamma(n + tmp)
            - math.lgamma(alpha)
            - math.lgamma(beta)
            + math.lgamma(tmp)
        )
    kx = int(x)
    kn = int(n)
    # the products in the same order as one loop over i < n would take them (so the
    # same bits), as three branch-free loops
    num = 1.0
    for i in range(kx):
        num *= alpha + i
    for i in range(kn - kx):
        num *= beta + i
    den = 1.0
    for i in range(kn):
        den *= tmp + i
    return math.log(num / den)


@numba.njit(cache=True, nogil=True)
def _bb_objective(
    u: float,
    x: np.ndarray,
    n: np.ndarray,
    m: np.ndarray,
    const: float,
    m0: float,
    tau: float,
    log_norm: float,
) -> float:  # pragma: no cover - compiled
    """Minus the log posterior of ``log phi = u`` at one site (DSS's ``plik``).

    ``log BB(x | n, mu, phi) = lchoose(n, x) + lbeta(n - x + beta, x + alpha) -
    lbeta(beta, alpha)`` with ``alpha = mu t``, ``beta = (1 - mu) t``, ``t = 1/phi - 1``:
    a sample without reads adds 0 (the two lbetas are equal).
    """
    tmp = 1.0 / math.exp(u) - 1.0
    s = 0.0
    for j in range(x.shape[0]):
        nj = n[j]
        if nj == 0.0:
            continue
        alpha = m[j] * tmp
        beta = tmp - alpha
        s += _log_bb_ratio(alpha, beta, tmp, x[j], nj)
    z = (u - m0) / tau
    val = -(const + s - (log_norm + 0.5 * z * z))
    if not math.isfinite(val):  # R's fcn1: a non-finite value becomes the largest double
        return _DBL_MAX
    return val


@numba.njit(cache=True, nogil=True)
def _phi_kernel(
    xs: np.ndarray,
    ns: np.ndarray,
    ms: np.ndarray,
    const: np.ndarray,
    m0: float,
    tau: float,
    log_norm: float,
    lower: float,
    upper: float,
    tol: float,
) -> np.ndarray:  # pragma: no cover - compiled
    """Each site's posterior mode of ``log phi``: R's ``Brent_fmin`` (``optimize.c``),
    statement for statement, on :func:`_bb_objective`."""
    c = (3.0 - math.sqrt(5.0)) * 0.5
    eps = math.sqrt(2.220446049250313e-16)  # sqrt(DBL_EPSILON)
    tol3 = tol / 3.0
    out = np.empty(xs.shape[0])
    for i in range(xs.shape[0]):
        xi, ni, mi, ci = xs[i], ns[i], ms[i], const[i]
        a = lower
        b = upper
        v = a + c * (b - a)
        w = v
        x = v
        d = 0.0
        e = 0.0
        fx = _bb_objective(x, xi, ni, mi, ci, m0, tau, log_norm)
        fv = fx
        fw = fx
        while True:
            xm = (a + b) * 0.5
            tol1 = eps * abs(x) + tol3
            t2 = tol1 * 2.0
            if abs(x - xm) <= t2 - (b - a) * 0.5:
                break
            p = 0.0
            q = 0.0
            r = 0.0
            if abs(e) > tol1:  # fit a parabola
                r = (x - w) * (fx - fv)
                q = (x - v) * (fx - fw)
                p = (x - v) * q - (x - w) * r
                q = (q - r) * 2.0
                if q > 0.0:
                    p = -p
                else:
                    q = -q
                r = e
                e = d
            if abs(p) >= abs(q * 0.5 * r) or p <= q * (a - x) or p >= q * (b - x):
                # a golden-section step
                e = b - x if x < xm else a - x
                d = c * e
            else:  # a parabolic-interpolation step
                d = p / q
                u = x + d
                if u - a < t2 or b - u < t2:
                    d = tol1
                    if x >= xm:
                        d = -d
            if abs(d) >= tol1:
                u = x + d
            elif d > 0.0:
                u = x + tol1
            else:
                u = x - tol1
            fu = _bb_objective(u, xi, ni, mi, ci, m0, tau, log_norm)
            if fu <= fx:
                if u < x:
                    b = x
                else:
                    a = x
                v = w
                w = x
                x = u
                fv = fw
                fw = fx
                fx = fu
            else:
                if u < x:
                    a = u
                else:
                    b = u
                if fu <= fw or w == x:
                    v = w
                    fv = fw
                    w = u
                    fw = fu
                elif fu <= fv or v == x or v == w:  # noqa: SIM109 - as in optimize.c
                    v = u
                    fv = fu
        out[i] = x
    return out


# ----------------------------------------------------------------------- windows
def _site_keys(codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """One sortable key per site: contig code in the high bits, position in the low."""
    return codes.astype(np.int64) * (1 << 34) + positions.astype(np.int64)


def _window_bounds(keys: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """``[lo, hi)`` of the sites within ``half`` bp of each site, in its contig.

    DSS's ``nitem_bin``: the window of site i holds every site j with
    ``|pos[j] - pos[i]| <= ws / 2`` (integer division), positions non-decreasing.
    """
    lo = np.searchsorted(keys, keys - half, side="left")
    hi = np.searchsorted(keys, keys + half, side="right")
    return lo, hi


def _window_sum(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Moving sums over ``[lo, hi)`` (DSS's ``windowFilter`` with flag 0) via cumsum."""
    cs = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    return cs[hi] - cs[lo]


def _window_mean(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Moving averages (``windowFilter`` flag 1)."""
    return _window_sum(values, lo, hi) / (hi - lo)


def _has_coverage(total: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """DSS's ``hasCoverage``: reads over +-100 bp > 2 per sample (within a contig)."""
    lo, hi = _window_bounds(keys, _COVERAGE_WINDOW // 2)
    summed = _window_sum(total.sum(axis=1).astype(np.float64), lo, hi)
    return summed > _COVERAGE_THRESH * total.shape[1]


# ----------------------------------------------------------------------- model pieces
def _log_phi_moments(x: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The ``log phi`` values ``est.prior.BSseq.logN`` takes its median and IQR of.

    Sites with every sample above 10 reads; ``phi = var(p) / (m (1 - m))`` with the
    sample variance of the per-sample fractions ``p`` and their mean ``m``.
    """
    keep = (n > 10).all(axis=1)
    if not keep.any() or n.shape[1] < 2:
        return np.empty(0)
    p = x[keep] / n[keep]
    mm = p.mean(axis=1)
    mm[mm == 0] = 1e-05
    mm[mm == 1] = 1 - 1e-05
    vv = p.var(axis=1, ddof=1)
    phi = (vv / mm / (1 - mm))[vv > 0]
    return np.log(phi[phi > 0])


def _prior(lphi: np.ndarray, n_columns: int, n_sites: int) -> tuple[float, float]:
    """``est.prior.BSseq.logN``: (median, IQR / 1.39) of ``log phi``; R's type-7 quantiles."""
    if n_columns == 1:
        return _FALLBACK_PRIOR
    if n_sites < _MIN_PRIOR_SITES:
        warnings.warn(
            "The coverages are too low to estimate the dispersion prior: "
            f"{n_sites} sites with > 10 reads in every sample (need {_MIN_PRIOR_SITES}); "
            "using N(-3, 1) as DSS does",
            RuntimeWarning,
            stacklevel=2,
        )
        return _FALLBACK_PRIOR
    lphi = lphi[~np.isnan(lphi)]
    q25, q50, q75 = np.quantile(lphi, [0.25, 0.5, 0.75])
    return float(q50), float((q75 - q25) / 1.39)


def _posterior_phi(
    x: np.ndarray, n: np.ndarray, mu: np.ndarray, prior: tuple[float, float]
) -> np.ndarray:
    """``dispersion.shrinkage.BSseq``: each site's posterior mode of ``phi``.

    Minimises ``-(sum_j log BB(x_j | n_j, mu_j, phi) + log N(log phi | m0, tau))`` over
    ``log phi`` in ``[-5, log 0.99]``; sites without reads in these samples get
    ``exp(m0)``.
    """
    m0, tau = prior
    out = np.full(x.shape[0], math.exp(m0))
    rows = np.flatnonzero((n > 0).any(axis=1))
    if rows.size == 0:
        return out
    xs = np.ascontiguousarray(x[rows], dtype=np.float64)
    ns = np.ascontiguousarray(n[rows], dtype=np.float64)
    ms = np.ascontiguousarray(mu[rows], dtype=np.float64)
    lchoose = special.gammaln(ns + 1) - special.gammaln(xs + 1) - special.gammaln(ns - xs + 1)
    const = lchoose.sum(axis=1)
    log_norm = math.log(math.sqrt(2 * math.pi)) + math.log(tau)
    lphi = _phi_kernel(xs, ns, ms, const, m0, tau, log_norm, *_PHI_INTERVAL, _PHI_TOL)
    out[rows] = np.exp(lphi)
    return out


def _var_smooth(
    p: np.ndarray, n: np.ndarray, phi: np.ndarray, keys: np.ndarray, half: int
) -> np.ndarray:
    """DSS's ``compute.var.Smooth`` (and ``compute_var_smooth.c``) for one group."""
    n = n + 1.0 / n.shape[1]
    lo, hi = _window_bounds(keys, half)
    delta = p * (1 - p) * phi
    m, reps = n.shape
    width = hi - lo  # nCG_bin
    # Off-diagonal pairs j < k, both in [lo, hi - 1) (the C loop leaves out the window's
    # last site): for each offset dd = k - j, cumulative sums of
    # g(j) = n_j n_k rho^(|pos_k - pos_j| div 50) delta_j delta_k over j in [lo, hi-1-dd).
    off = np.zeros((m, reps))
    for dd in range(1, int(width.max()) - 1 if m else 0):
        lag = (keys[dd:] - keys[:-dd]) // _BINSIZE
        g = n[:-dd] * n[dd:] * (_RHO ** lag.astype(np.float64) * delta[:-dd] * delta[dd:])[:, None]
        cs = np.concatenate([np.zeros((1, reps)), np.cumsum(g, axis=0)])
        stop = np.minimum(np.maximum(hi - 1 - dd, lo), m - dd)
        start = np.minimum(lo, m - dd)
        off += cs[stop] - cs[start]
    vars_ = n * (p * (1 - p))[:, None] * (1 + (n - 1) * phi[:, None])
    diag = vars_ * np.maximum(width - 1, 0)[:, None]
    per_rep = np.where((width <= 1)[:, None], vars_, diag + 2 * off)
    total = per_rep.sum(axis=1)
    nsm = np.stack([_window_sum(n[:, r], lo, hi) for r in range(n.shape[1])], axis=1)
    return total / nsm.sum(axis=1) ** 2


def _group_mean(
    x: np.ndarray, n: np.ndarray, const: float, keys: np.ndarray, half: int | None
) -> np.ndarray:
    """``compute.mean.noSmooth`` (``half`` None) or ``compute.mean.Smooth``."""
    if n.shape[1] > 1 or half is None:
        xs = x.sum(axis=1) + const
        ns = n.sum(axis=1) + 1.0
    else:
        xs = x[:, 0] + 0.4 * const
        ns = n[:, 0] + 0.4
    if half is None:
        return xs / ns
    lo, hi = _window_bounds(keys, half)
    return _window_mean(xs, lo, hi) / _window_mean(ns, lo, hi)


# ----------------------------------------------------------------------- blocks
@dataclass(frozen=True)
class DMLPlan:
    """Row ranges of the blocks: ``core[i]`` is tested, ``load[i]`` read (with halo)."""

    core: tuple[tuple[int, int], ...]
    load: tuple[tuple[int, int], ...]
    halo_bp: int


def plan_dml_blocks(
    codes: np.ndarray, positions: np.ndarray, *, sites_per_block: int, halo_bp: int
) -> DMLPlan:
    """Blocks of ``sites_per_block`` sites, each with every site within ``halo_bp`` of
    its first and last site in the same contig as its halo."""
    keys = _site_keys(codes, positions)
    n = len(keys)
    core = tuple((s, min(s + sites_per_block, n)) for s in range(0, n, sites_per_block))
    load = tuple(
        (
            int(np.searchsorted(keys, keys[s] - halo_bp, side="left")),
            int(np.searchsorted(keys, keys[e - 1] + halo_bp, side="right")),
        )
        for s, e in core
    )
    return DMLPlan(core, load, halo_bp)


@dataclass(frozen=True)
class _Design:
    group1: tuple[int, ...]
    group2: tuple[int, ...]
    smoothing: bool
    half: int
    equal_disp: bool


@dataclass(frozen=True)
class StoreCounts:
    """``read_rows`` of :func:`dml_test` over a ``methylation.counts`` store (picklable)."""

    store: FeatureMatrix

    def __call__(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        # straight into numpy from the Zarr arrays, opened once per process (not per read)
        key = (self.store.root.url, self.store.path)
        arrays = _OPENED.get(key)
        if arrays is None:
            arrays = _OPENED[key] = tuple(
                self.store._zarr(name) for name in ("methylated", "total")
            )
        return tuple(np.asarray(a[start:stop, :]) for a in arrays)  # type: ignore[return-value]


#: Zarr arrays of the stores a process has read (a handful: one per DML run's store).
_OPENED: dict[tuple[str, str], tuple[Any, ...]] = {}


def _counts(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    load: tuple[int, int],
    keys: np.ndarray,
    design: _Design,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A block's counts as float64, sample-major (arm A's samples, then arm B's, by
    sites), and DSS's site filter.

    One conversion and one window search per pass (the filter, ``hasCoverage`` of both
    arms, shares the +-100 bp windows); integer sums in float64 are exact, so the
    filter is that of the integer counts.
    """
    m, t = read_rows(*load)
    columns = np.asarray(design.group1 + design.group2, dtype=np.intp)
    xt = np.take(m.T, columns, axis=0).astype(np.float64)
    nt = np.take(t.T, columns, axis=0).astype(np.float64)
    k = len(design.group1)
    lo, hi = _window_bounds(keys, _COVERAGE_WINDOW // 2)
    kept = (_window_sum(nt[:k].sum(axis=0), lo, hi) > _COVERAGE_THRESH * k) & (
        _window_sum(nt[k:].sum(axis=0), lo, hi) > _COVERAGE_THRESH * (nt.shape[0] - k)
    )
    return xt, nt, kept


def _split(
    xt: np.ndarray, nt: np.ndarray, rows: np.ndarray, design: _Design
) -> tuple[np.ndarray, ...]:
    """Sites ``rows`` of each arm, ``x1, n1, x2, n2`` (sites x samples).

    Each a transposed copy (Fortran order), the layout of ``m[:, group]`` that the
    per-site sums and moments have always reduced over: numpy's row sums of a
    Fortran-ordered matrix add the columns in turn, of a C-ordered one pairwise, so
    the layout fixes the last bits.
    """
    k = len(design.group1)
    return (
        np.take(xt[:k], rows, axis=1).T,
        np.take(nt[:k], rows, axis=1).T,
        np.take(xt[k:], rows, axis=1).T,
        np.take(nt[k:], rows, axis=1).T,
    )


def _prior_columns(
    x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, pooled: bool
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The count matrices the prior is estimated from: both arms pooled, or each arm."""
    if pooled:
        x = np.concatenate([x1, x2], axis=1)
        n = np.concatenate([n1, n2], axis=1)
        return [(x, n)]
    return [(x1, n1), (x2, n2)]


def _pooled(design: _Design) -> bool:
    """DSS pools the dispersion with ``equal.disp``, and without smoothing when a group
    has one sample."""
    single = len(design.group1) == 1 or len(design.group2) == 1
    return design.equal_disp or (single and not design.smoothing)


def _pass_a(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    keys: np.ndarray,
    load: tuple[int, int],
    core: tuple[int, int],
    design: _Design,
) -> dict[str, Any]:
    x, n, kept = _counts(read_rows, load, keys, design)
    c0, c1 = core[0] - load[0], core[1] - load[0]
    sel = np.flatnonzero(kept[c0:c1]) + c0
    x1, n1, x2, n2 = _split(x, n, sel, design)
    out: dict[str, Any] = {}
    for g, (x, n) in enumerate(((x1, n1), (x2, n2)), start=1):
        with np.errstate(invalid="ignore", divide="ignore"):
            p = x / n
        out[f"psum{g}"] = float(np.nansum(p))
        out[f"pcount{g}"] = int(np.count_nonzero(~np.isnan(p)))
    parts = _prior_columns(x1, n1, x2, n2, _pooled(design))
    out["lphi"] = [_log_phi_moments(x, n) for x, n in parts]
    out["prior_sites"] = [int((n > 10).all(axis=1).sum()) for _, n in parts]
    out["n_kept"] = int(sel.size)
    return out


@dataclass(frozen=True)
class _Globals:
    const1: float
    const2: float
    prior1: tuple[float, float]
    prior2: tuple[float, float]
    n_kept: int


def _reduce_a(parts: Sequence[dict[str, Any]], design: _Design) -> _Globals:
    const = []
    for g in (1, 2):
        s = sum(p[f"psum{g}"] for p in parts)
        c = sum(p[f"pcount{g}"] for p in parts)
        const.append(s / c if c else float("nan"))
    pooled = _pooled(design)
    priors = []
    ncols = (
        [len(design.group1) + len(design.group2)]
        if pooled
        else [len(design.group1), len(design.group2)]
    )
    for k, ncol in enumerate(ncols):
        lphi = np.concatenate([p["lphi"][k] for p in parts]) if parts else np.empty(0)
        priors.append(_prior(lphi, ncol, sum(p["prior_sites"][k] for p in parts)))
    if pooled:
        priors.append(priors[0])
    return _Globals(const[0], const[1], priors[0], priors[1], sum(p["n_kept"] for p in parts))


def _means(
    x1: np.ndarray,
    n1: np.ndarray,
    x2: np.ndarray,
    n2: np.ndarray,
    keys: np.ndarray,
    g: _Globals,
    design: _Design,
) -> tuple[np.ndarray, np.ndarray]:
    half = design.half if design.smoothing else None
    return _group_mean(x1, n1, g.const1, keys, half), _group_mean(x2, n2, g.const2, keys, half)


def _pass_b(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    keys: np.ndarray,
    load: tuple[int, int],
    core: tuple[int, int],
    design: _Design,
    g: _Globals,
) -> dict[str, Any]:
    x, n, mask = _counts(read_rows, load, keys, design)
    kept = np.flatnonzero(mask)
    x1, n1, x2, n2 = _split(x, n, kept, design)
    k = keys[kept]
    mu1, mu2 = _means(x1, n1, x2, n2, k, g, design)
    rows = kept + load[0]
    inside = (rows >= core[0]) & (rows < core[1])
    x1, n1, x2, n2 = x1[inside], n1[inside], x2[inside], n2[inside]
    mu1, mu2 = mu1[inside], mu2[inside]
    if _pooled(design):
        x = np.concatenate([x1, x2], axis=1)
        n = np.concatenate([n1, n2], axis=1)
        mu = np.concatenate(
            [np.repeat(mu1[:, None], n1.shape[1], 1), np.repeat(mu2[:, None], n2.shape[1], 1)],
            axis=1,
        )
        phi1 = phi2 = _posterior_phi(x, n, mu, g.prior1)
    else:
        phi1 = _posterior_phi(x1, n1, np.repeat(mu1[:, None], n1.shape[1], 1), g.prior1)
        phi2 = _posterior_phi(x2, n2, np.repeat(mu2[:, None], n2.shape[1], 1), g.prior2)
    wt1 = 1 / (1 + (n1 - 1) * phi1[:, None])
    wt2 = 1 / (1 + (n2 - 1) * phi2[:, None])
    return {
        "rows": rows[inside],
        "phi1": phi1,
        "phi2": phi2,
        "wsum1": float(wt1.sum()),
        "wcount1": int(wt1.size),
        "wsum2": float(wt2.sum()),
        "wcount2": int(wt2.size),
    }


def _reduce_b(parts: Sequence[dict[str, Any]]) -> tuple[float, float]:
    w1 = sum(p["wsum1"] for p in parts) / max(sum(p["wcount1"] for p in parts), 1)
    w2 = sum(p["wsum2"] for p in parts) / max(sum(p["wcount2"] for p in parts), 1)
    return w1, w2


def _pass_c(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    keys: np.ndarray,
    load: tuple[int, int],
    core: tuple[int, int],
    design: _Design,
    g: _Globals,
    mean_wt: tuple[float, float],
    neighbours: Sequence[dict[str, Any]],
) -> dict[str, np.ndarray]:
    x, n, mask = _counts(read_rows, load, keys, design)
    kept = np.flatnonzero(mask)
    rows = kept + load[0]
    phi_rows = np.concatenate([b["rows"] for b in neighbours])
    where = np.searchsorted(phi_rows, rows)
    if where.size and (
        where.max() >= len(phi_rows) or not np.array_equal(phi_rows[where], rows)
    ):  # pragma: no cover - a planning error, not a data one
        raise AssertionError("a kept site without a dispersion from pass B")
    phi1 = np.concatenate([b["phi1"] for b in neighbours])[where]
    phi2 = np.concatenate([b["phi2"] for b in neighbours])[where]
    x1, n1, x2, n2 = _split(x, n, kept, design)
    wt1 = 1 / (1 + (n1 - 1) * phi1[:, None]) / mean_wt[0]
    wt2 = 1 / (1 + (n2 - 1) * phi2[:, None]) / mean_wt[1]
    x1, n1, x2, n2 = x1 * wt1, n1 * wt1, x2 * wt2, n2 * wt2
    k = keys[kept]
    mu1, mu2 = _means(x1, n1, x2, n2, k, g, design)
    if design.smoothing:
        var1 = _var_smooth(mu1, n1, phi1, k, design.half)
        var2 = _var_smooth(mu2, n2, phi2, k, design.half)
        vv = var1 + var2
        vv[vv < 1e-05] = 1e-04
        vv[vv > 1 - 1e-05] = 1 - 1e-04
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            var1 = (n1 * (mu1 * (1 - mu1))[:, None] * (1 + (n1 - 1) * phi1[:, None])).sum(
                axis=1
            ) / n1.sum(axis=1) ** 2
            var2 = (n2 * (mu2 * (1 - mu2))[:, None] * (1 + (n2 - 1) * phi2[:, None])).sum(
                axis=1
            ) / n2.sum(axis=1) ** 2
        vv = var1 + var2
        vv[vv < 1e-05] = 1e-05
    inside = (rows >= core[0]) & (rows < core[1])
    diff = mu1 - mu2
    se = np.sqrt(vv)
    with np.errstate(invalid="ignore"):
        stat = diff / se
    keep = inside & ~np.isnan(stat)
    stat = stat[keep]
    return {
        "rows": rows[keep],
        "mu1": mu1[keep],
        "mu2": mu2[keep],
        "diff": diff[keep],
        "diff_se": se[keep],
        "stat": stat,
        "phi1": phi1[keep],
        "phi2": phi2[keep],
        "pval": 2 * special.ndtr(-np.abs(stat)),
    }


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """R's ``p.adjust(p, "BH")`` (Benjamini & Hochberg, *J. R. Stat. Soc. B* 57:289, 1995)."""
    n = len(p)
    if n == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    scaled = p[order] * n / np.arange(1, n + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(adj, 1.0)
    return out


def _pvals(part: dict[str, np.ndarray]) -> np.ndarray:
    return part["pval"]


def _fdr(pvals: Sequence[np.ndarray]) -> np.ndarray:
    return benjamini_hochberg(np.concatenate(list(pvals)))


# ----------------------------------------------------------------------- parts on the workers
def _save(root: DataRoot, path: str, arrays: dict[str, np.ndarray]) -> None:
    with root.fs.open(path, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle kwarg


def _load(root: DataRoot, path: str) -> dict[str, np.ndarray]:
    with root.fs.open(path, "rb") as f, np.load(f) as got:
        return {k: got[k] for k in got.files}


def _save_array(root: DataRoot, path: str, values: np.ndarray) -> None:
    with root.fs.open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(values))


def _read_range(root: DataRoot, path: str, lo: int, hi: int) -> np.ndarray:
    """Elements ``lo:hi`` of a saved 1-D array, read by seeking (no whole-file read)."""
    with root.fs.open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        _shape, _fortran, dtype = header(f)
        f.seek(f.tell() + lo * dtype.itemsize)
        return np.frombuffer(f.read((hi - lo) * dtype.itemsize), dtype=dtype).copy()


def _pass_b_saved(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    keys: np.ndarray,
    load: tuple[int, int],
    core: tuple[int, int],
    design: _Design,
    g: _Globals,
    root: DataRoot,
    path: str,
) -> dict[str, Any]:
    """Pass B whose per-site dispersions go to a scratch file, not the task's result."""
    out = _pass_b(read_rows, keys, load, core, design, g)
    _save(root, path, {k: out.pop(k) for k in ("rows", "phi1", "phi2")})
    return out


def _pass_c_saved(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    keys: np.ndarray,
    load: tuple[int, int],
    core: tuple[int, int],
    design: _Design,
    g: _Globals,
    mean_wt: tuple[float, float],
    root: DataRoot,
    neighbours: Sequence[str],
    path: str,
) -> np.ndarray:
    """Pass C on the neighbours' saved dispersions; the block's table goes to a scratch
    file and only its p-values (for BH) are the task's result."""
    out = _pass_c(
        read_rows, keys, load, core, design, g, mean_wt, [_load(root, n) for n in neighbours]
    )
    _save(root, path, out)
    return out["pval"]


def _fdr_parts(pvals: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    q = _fdr(pvals)
    bounds = np.cumsum([0, *(len(p) for p in pvals)])
    return tuple(q[a:b] for a, b in itertools.pairwise(bounds))


def _write_part(
    root: DataRoot,
    scratch: str,
    fdr: np.ndarray,
    first_row: int,
    codes: np.ndarray,
    positions: np.ndarray,
    categories: Sequence[str],
    path: str,
    metadata: dict[str, str],
) -> int:
    """One block's rows of the table, with their FDR, as a Parquet part."""
    from resistomics.storage import write_table

    part = _load(root, scratch)
    rows = part["rows"] - first_row
    frame = pd.DataFrame(
        {
            "contig": pd.Categorical.from_codes(codes[rows], categories=list(categories)),
            "position": positions[rows],
        }
    )
    for col in DML_COLUMNS[2:-1]:
        frame[col] = part[col]
    frame["fdr"] = fdr
    write_table(root, path, frame, metadata=metadata)
    root.fs.rm(scratch)
    return len(frame)


# ----------------------------------------------------------------------- entry points
@dataclass(frozen=True)
class _Graph:
    design: _Design
    plan: DMLPlan
    keys: np.ndarray
    codes: np.ndarray
    categories: pd.Index
    positions: np.ndarray


def _prepare(
    contigs: np.ndarray | pd.Categorical,
    positions: np.ndarray,
    group1: Sequence[int] | np.ndarray,
    group2: Sequence[int] | np.ndarray,
    *,
    smoothing: bool,
    span: int,
    equal_disp: bool,
    sites_per_block: int,
) -> _Graph:
    g1, g2 = tuple(int(i) for i in group1), tuple(int(i) for i in group2)
    if not g1 or not g2:
        raise MethodInputError("a group has no samples", rule="arm-size")
    if set(g1) & set(g2):
        raise MethodInputError("the two groups share a sample", rule="arm-overlap")
    if (len(g1) == 1 or len(g2) == 1) and not equal_disp and not smoothing:
        raise MethodInputError(
            "a group has one sample (no biological replicates): use smoothing or "
            "equal_disp, as DSS requires",
            rule="arm-size",
        )
    if span < 2:
        raise MethodInputError(f"smoothing span {span} bp: need >= 2", rule="span")
    design = _Design(g1, g2, bool(smoothing), int(span) // 2, bool(equal_disp))
    if isinstance(contigs, pd.Categorical):
        codes, categories = np.asarray(contigs.codes), contigs.categories
    else:
        codes, categories = pd.factorize(pd.Series(np.asarray(contigs)), sort=False)
    positions = np.asarray(positions, dtype=np.int64)
    keys = _site_keys(codes, positions)
    if len(keys) > 1 and (np.diff(keys) < 0).any():
        raise MethodInputError(
            "sites are not in genome order (each contig one run, positions non-decreasing)",
            rule="sorted-positions",
        )
    halo = 2 * design.half + _COVERAGE_WINDOW // 2 if smoothing else _COVERAGE_WINDOW // 2
    plan = plan_dml_blocks(codes, positions, sites_per_block=sites_per_block, halo_bp=halo)
    return _Graph(design, plan, keys, np.asarray(codes), pd.Index(categories), positions)


def _neighbours(plan: DMLPlan) -> list[tuple[int, int]]:
    """For each block, the first and last block whose core its load range overlaps."""
    starts = np.asarray([c[0] for c in plan.core], dtype=np.int64)
    return [
        (
            int(np.searchsorted(starts, lo, side="right")) - 1,
            int(np.searchsorted(starts, hi - 1, side="right")) - 1,
        )
        for lo, hi in plan.load
    ]


def _globals_graph(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    gr: _Graph,
    keys_of: Callable[[int, int, str], Any] | None = None,
) -> tuple[Any, Any]:
    """The delayed reader and the delayed pass-A globals (``const``, priors).

    ``keys_of(lo, hi, tag)`` gives a task its sites' keys (default: the slice itself,
    in the graph)."""
    delayed = dask.delayed
    rr = delayed(read_rows, pure=True)
    keys_of = keys_of or (lambda lo, hi, _tag: gr.keys[lo:hi])
    a_parts = [
        delayed(_pass_a, pure=True)(rr, keys_of(lo, hi, "a"), (lo, hi), core, gr.design)
        for core, (lo, hi) in zip(gr.plan.core, gr.plan.load, strict=True)
    ]
    return rr, delayed(_reduce_a, pure=True)(a_parts, gr.design)


def dml_test(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    contigs: np.ndarray | pd.Categorical,
    positions: np.ndarray,
    group1: Sequence[int] | np.ndarray,
    group2: Sequence[int] | np.ndarray,
    *,
    smoothing: bool = False,
    span: int = 500,
    equal_disp: bool = False,
    sites_per_block: int = DML_SITES_PER_BLOCK,
    compute: Callable[..., Any] | None = None,
) -> pd.DataFrame:
    """DSS's ``DMLtest(BSobj, group1, group2, equal.disp, smoothing, smoothing.span)``.

    The table in memory (gathered from every block); :func:`write_dml_parts` writes
    the same table as Parquet parts on the workers instead.

    Parameters
    ----------
    read_rows
        ``read_rows(start, stop) -> (methylated, total)``: rows ``start:stop`` of the
        sites x samples count matrices (called inside the Dask tasks; it must pickle
        when the cluster has processes, e.g. a bound method of a
        :class:`~resistomics.storage.FeatureMatrix`).
    contigs, positions
        The site index in store order: each contig one run, positions non-decreasing
        (contig names, or a categorical of them).
    group1, group2
        Column indices of the two groups (DSS's ``group1``, ``group2``).
    smoothing, span, equal_disp
        As DSS's ``smoothing``, ``smoothing.span`` (bp) and ``equal.disp``.
    sites_per_block
        Sites per task (the tasks' memory is a few times this x samples x 8 bytes).
    compute
        ``dask.compute`` or a client's compute (default ``dask.compute``).

    Returns
    -------
    pandas.DataFrame
        One row per tested site, columns :data:`DML_COLUMNS`, in store order.

    Raises
    ------
    MethodInputError
        Overlapping or empty groups, or a group of one sample without smoothing or
        ``equal_disp`` (DSS's errors).
    """
    gr = _prepare(
        contigs,
        positions,
        group1,
        group2,
        smoothing=smoothing,
        span=span,
        equal_disp=equal_disp,
        sites_per_block=sites_per_block,
    )
    plan, keys, design = gr.plan, gr.keys, gr.design
    delayed = dask.delayed
    rr, glob = _globals_graph(read_rows, gr)
    b_parts = [
        delayed(_pass_b, pure=True)(rr, keys[lo:hi], (lo, hi), core, design, glob)
        for core, (lo, hi) in zip(plan.core, plan.load, strict=True)
    ]
    mean_wt = delayed(_reduce_b, pure=True)(b_parts)
    c_parts = [
        delayed(_pass_c, pure=True)(
            rr, keys[lo:hi], (lo, hi), core, design, glob, mean_wt, b_parts[first : last + 1]
        )
        for core, (lo, hi), (first, last) in zip(
            plan.core, plan.load, _neighbours(plan), strict=True
        )
    ]
    # BH sees only the p-values (8 bytes per CpG), not the blocks' whole tables, so the
    # worker that runs it does not receive the cohort's result
    fdr = delayed(_fdr, pure=True)([delayed(_pvals, pure=True)(c) for c in c_parts])
    parts, q = (compute or dask.compute)(c_parts, fdr)
    rows = np.concatenate([p["rows"] for p in parts]) if parts else np.empty(0, np.int64)
    table = pd.DataFrame(
        {
            "contig": pd.Categorical.from_codes(gr.codes[rows], categories=gr.categories),
            "position": gr.positions[rows],
        }
    )
    for col in DML_COLUMNS[2:-1]:
        table[col] = np.concatenate([p[col] for p in parts]) if parts else np.empty(0)
    table["fdr"] = q
    return table


def write_dml_parts(
    read_rows: Callable[[int, int], tuple[np.ndarray, np.ndarray]],
    contigs: np.ndarray | pd.Categorical,
    positions: np.ndarray,
    group1: Sequence[int] | np.ndarray,
    group2: Sequence[int] | np.ndarray,
    *,
    root: DataRoot,
    directory: str,
    metadata: dict[str, str] | None = None,
    smoothing: bool = False,
    span: int = 500,
    equal_disp: bool = False,
    sites_per_block: int = DML_SITES_PER_BLOCK,
    compute: Callable[..., Any] | None = None,
) -> int:
    """:func:`dml_test`'s table written by the Dask tasks as Parquet parts.

    Block ``i``'s tested sites become ``directory/part-{i:05d}.parquet`` (store order,
    ``metadata`` in each part's schema), written on the worker that tested them, so no
    process holds the table: each pass-B task saves its sites' dispersions and each
    pass-C task its rows to a scratch file under ``directory`` (read back by the
    neighbouring blocks' pass C and by the part's writer, then removed), and the only
    per-site values that cross tasks are the p-values on their way to
    Benjamini-Hochberg (8 bytes per CpG, on one worker) and the FDRs back to the parts'
    writers. The values are those of :func:`dml_test` (tested).

    Returns
    -------
    int
        The number of rows written (tested sites).
    """
    gr = _prepare(
        contigs,
        positions,
        group1,
        group2,
        smoothing=smoothing,
        span=span,
        equal_disp=equal_disp,
        sites_per_block=sites_per_block,
    )
    plan, keys, design = gr.plan, gr.keys, gr.design
    scratch = posixpath.join(directory, ".scratch")
    root.fs.makedirs(scratch, exist_ok=True)
    delayed = dask.delayed
    # the site index goes to scratch files once, and each task reads its range there:
    # the graph (held by the client and the scheduler) carries no per-site array
    site_files = {}
    for name, values in (("keys", keys), ("codes", gr.codes), ("positions", gr.positions)):
        site_files[name] = posixpath.join(scratch, f"{name}.npy")
        _save_array(root, site_files[name], values)

    def sites(name: str, lo: int, hi: int, tag: str) -> Any:
        # one read per task (a tag per pass), released once that task has run
        return delayed(_read_range, pure=True)(
            root,
            site_files[name],
            lo,
            hi,
            dask_key_name=f"dml-{name}-{tag}-{tokenize(site_files[name], lo, hi)}",
        )

    def keys_of(lo: int, hi: int, tag: str) -> Any:
        return sites("keys", lo, hi, tag)

    rr, glob = _globals_graph(read_rows, gr, keys_of)
    b_files = [posixpath.join(scratch, f"b-{i:05d}.npz") for i in range(len(plan.core))]
    c_files = [posixpath.join(scratch, f"c-{i:05d}.npz") for i in range(len(plan.core))]
    b_parts = [
        delayed(_pass_b_saved, pure=True)(
            rr, keys_of(lo, hi, "b"), (lo, hi), core, design, glob, root, b_files[i]
        )
        for i, (core, (lo, hi)) in enumerate(zip(plan.core, plan.load, strict=True))
    ]
    mean_wt = delayed(_reduce_b, pure=True)(b_parts)
    pvals = [
        delayed(_pass_c_saved, pure=True)(
            rr,
            keys_of(lo, hi, "c"),
            (lo, hi),
            core,
            design,
            glob,
            mean_wt,
            root,
            b_files[first : last + 1],
            c_files[i],
        )  # the neighbours' pass B is done: mean_wt waits for every block's
        for i, (core, (lo, hi), (first, last)) in enumerate(
            zip(plan.core, plan.load, _neighbours(plan), strict=True)
        )
    ]
    fdr = delayed(_fdr_parts, pure=True, nout=len(pvals))(pvals)
    categories = list(gr.categories)
    written = [
        delayed(_write_part, pure=True)(
            root,
            c_files[i],
            fdr[i],
            core[0],
            sites("codes", core[0], core[1], "w"),
            sites("positions", core[0], core[1], "w"),
            categories,
            posixpath.join(directory, f"part-{i:05d}.parquet"),
            dict(metadata or {}),
        )
        for i, core in enumerate(plan.core)
    ]
    (counts,) = (compute or dask.compute)(written)
    root.fs.rm(scratch, recursive=True)
    return int(sum(counts))
