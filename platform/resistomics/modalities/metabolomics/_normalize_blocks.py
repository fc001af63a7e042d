"""``normalize`` over the stored feature blocks: :func:`._normalization.normalize_matrix`
without the matrix in one process.

Each task reads its own rows of the store (``read_rows``). The filtered, imputed and
drift-corrected blocks are persisted on the workers (spilled to disk past their memory
target), one ``compute`` gives every per-feature and per-sample figure from them, and
the processed blocks are then computed a few ahead of the consumer, each corrected block
let go once used: the client holds the figures and one processed block at a time (as
it writes them), never the matrix, and KNN and LOESS run once per block.

* Per feature, in one task per block: the missingness filter, half-minimum imputation,
  QC RSD, QC-RLSC drift correction (Dunn et al. 2011: a LOESS per feature and batch) and
  the per-feature scaling need nothing beyond the block.
* KNN imputation (feature-wise, as ``impute::impute.knn``; Troyanskaya et al. 2001): the
  donors of a block's missing values are searched over every feature, each block of
  donors read in turn inside the task (:class:`._processing.KnnDonors` keeps the ``k``
  best per missing value, ties by position as in one stable sort), so the imputed values
  are the in-memory ones.
* Per sample: the total (``sum``: the blocks' sums added), the median over features
  (``median``) or the median of the quotients to the per-feature (QC) reference
  (``pqn``, Dieterle et al. 2006), and the dilution factor reported in ``sample_qc``,
  all exact by selection over blocks (:func:`._blockwise.column_medians`' two passes).
* The generalised log's constant (a tenth of the smallest non-zero value of the matrix)
  is a minimum over blocks.

The result equals :func:`._normalization.normalize_matrix` on the whole matrix to
rounding (``tests/modalities/metabolomics/test_normalize_blocks.py``: within 1e-12).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import numpy as np

from resistomics.errors import MethodInputError
from resistomics.modalities.metabolomics import _processing as proc
from resistomics.modalities.metabolomics._blockwise import (
    _PIVOTS,
    _bracket,
    _inside,
    _pivots,
    plan_blocks,
)
from resistomics.modalities.metabolomics._normalization import (
    MIN_QC,
    NormalizationSteps,
    drift_applies,
    qc_rsd,
)

__all__ = ["NormalizedBlock", "NormalizedFigures", "normalize_blockwise"]

ReadRows = Callable[[int, int], np.ndarray]


@dataclass(frozen=True)
class NormalizedFigures:
    """What ``normalize`` reports besides the matrix (all small).

    ``keep``, ``feature_missing`` per stored feature (missing fraction over the study
    samples ``study``, before filtering); ``sample_missing_raw`` per stored sample (over
    all features); ``sample_missing`` (over the kept features) and ``dilution`` per
    processed sample (``used``); ``rsd_before`` / ``rsd_after`` per kept feature.
    """

    keep: np.ndarray
    feature_missing: np.ndarray
    sample_missing_raw: np.ndarray
    sample_missing: np.ndarray
    rsd_before: np.ndarray
    rsd_after: np.ndarray
    dilution: np.ndarray
    drift_corrected: bool
    value_kind: str


@dataclass(frozen=True)
class NormalizedBlock:
    """The processed rows of one stored block: ``features`` (their stored positions),
    ``values`` (after the transform) and ``scaled`` (after scaling too, or None)."""

    features: np.ndarray
    values: np.ndarray
    scaled: np.ndarray | None


@dataclass(frozen=True)
class _Spec:
    """Everything a task needs (picklable): the reader and the samples' roles."""

    read_rows: ReadRows
    blocks: tuple[tuple[int, int], ...]
    steps: NormalizationSteps
    used: np.ndarray  # stored columns processed (no blanks)
    study_stored: np.ndarray  # stored columns of study samples
    qc: np.ndarray  # per used sample
    groups: list[str] | None  # per study sample among the used: the filter's groups
    injection_order: np.ndarray | None
    batch: np.ndarray | None
    drift: bool

    def kept(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The block's stored values, its kept positions and their used columns."""
        raw = np.asarray(self.read_rows(start, stop), dtype=np.float64)
        a = raw[:, self.used]
        keep = proc.filter_missingness(
            a[:, ~self.qc], max_fraction=self.steps.max_missing, groups=self.groups
        )
        keep &= ~np.isnan(a).all(axis=1)
        return raw, start + np.flatnonzero(keep), a[keep]


def _corrected(spec: _Spec, index: int) -> dict[str, Any]:
    """Block ``index`` filtered, imputed and drift-corrected, with its figures."""
    start, stop = spec.blocks[index]
    raw, ids, v = spec.kept(start, stop)
    missing = np.isnan(raw)
    out: dict[str, Any] = {
        "n_stored": stop - start,
        "ids": ids,
        "feature_missing": missing[:, spec.study_stored].mean(axis=1),
        "sample_missing_raw": missing.sum(axis=0),
        "sample_missing": np.isnan(v).sum(axis=0),
    }
    del raw, missing
    if spec.steps.impute == "half-min":
        v = proc.impute_half_minimum(v)
    elif spec.steps.impute == "knn":
        donors = proc.KnnDonors(v, ids, k=spec.steps.knn_k)
        for other, (s, e) in enumerate(spec.blocks):
            if donors.rows.size == 0:
                break
            if other == index:
                donors.update(v, ids)
            else:
                _, d_ids, d = spec.kept(s, e)
                donors.update(d, d_ids)
        v = donors.imputed()
    out["rsd_before"] = qc_rsd(v, spec.qc)
    if spec.drift:
        assert spec.injection_order is not None
        v = proc.correct_drift_qc_rlsc(
            v,
            injection_order=spec.injection_order,
            qc=spec.qc,
            batch=spec.batch,
            min_qc=MIN_QC,
            ids=ids,
        )
        out["rsd_after"] = qc_rsd(v, spec.qc)
    else:
        out["rsd_after"] = np.full(v.shape[0], np.nan)
    out["values"] = v
    return out


# ------------------------------------------------------------ per-sample normalisation
def _reference(spec: _Spec, v: np.ndarray) -> np.ndarray:
    """PQN's reference: each feature's median over the pooled QCs (all samples without)."""
    ref = v[:, spec.qc] if spec.qc.any() else v
    out = np.full(v.shape[0], np.nan)
    seen = ~np.isnan(ref).all(axis=1)  # nanmedian's all-NaN warning is process-wide
    out[seen] = np.nanmedian(ref[seen], axis=1)
    return out


def _statistic(spec: _Spec, part: dict[str, Any]) -> np.ndarray:
    """What the per-sample median is taken of: the values or PQN's quotients."""
    v = part["values"]
    if spec.steps.method == "median":
        return np.asarray(v)
    reference = _reference(spec, v)[:, None]
    with np.errstate(all="ignore"):
        quotients = v / reference
    quotients[~np.isfinite(quotients) | (reference == 0)] = np.nan
    return np.asarray(quotients)


def _column_sums(part: dict[str, Any]) -> np.ndarray:
    return np.asarray(np.nansum(part["values"], axis=0))


def _total(sums: Sequence[np.ndarray]) -> np.ndarray:
    return np.asarray(np.sum(sums, axis=0))


def _normalized(spec: _Spec, part: dict[str, Any], divisor: np.ndarray | None) -> np.ndarray:
    v = part["values"]
    if spec.steps.method == "sum":
        assert divisor is not None
        return np.asarray(1000.0 * v / divisor[None, :])  # as sum_normalize
    if divisor is None:
        return np.asarray(v)
    return np.asarray(v / divisor[None, :])


def _ratio(spec: _Spec, part: dict[str, Any], divisor: np.ndarray | None) -> np.ndarray:
    """``before / after`` of the normalisation: what the dilution factor is a median of."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(part["values"] / _normalized(spec, part, divisor))


def _smallest_nonzero(spec: _Spec, part: dict[str, Any], divisor: np.ndarray | None) -> float:
    v = _normalized(spec, part, divisor)
    nonzero = np.abs(v[(v != 0) & ~np.isnan(v)])
    return float(nonzero.min()) if nonzero.size else np.inf


def _final(
    spec: _Spec, part: dict[str, Any], divisor: np.ndarray | None, glog_min: float | None
) -> NormalizedBlock:
    v = _normalized(spec, part, divisor)
    if spec.steps.transform == "log":
        v = proc.log_transform(v, base=2)
    elif spec.steps.transform == "glog":
        assert glog_min is not None
        if v.shape[0] and not np.isfinite(glog_min):
            raise MethodInputError("glog transform: the matrix has no non-zero value")
        c = glog_min / 10.0  # as glog_transform
        v = np.log2((v + np.sqrt(v**2 + c**2)) / 2.0)
    scale = {"auto": proc.auto_scale, "pareto": proc.pareto_scale, "range": proc.range_scale}
    scaled = scale[spec.steps.scale](v) if spec.steps.scale in scale else None
    return NormalizedBlock(features=part["ids"], values=v, scaled=scaled)


def _pivots_task(stat: Callable[..., np.ndarray], spec: _Spec, part: Any, *extra: Any) -> Any:
    v = stat(spec, part, *extra)
    if v.shape[0] == 0:  # a block whose features the filter all dropped bounds nothing
        n = v.shape[1]
        return (
            np.zeros(n, np.int64),
            np.zeros((_PIVOTS, n), np.int64),
            np.full((_PIVOTS, n), np.inf),
        )
    return _pivots(v)


def _inside_task(
    stat: Callable[..., np.ndarray], spec: _Spec, part: Any, bracket: Any, *extra: Any
) -> Any:
    """A block's count below the bracket and its values inside it, as distinct (column,
    value) pairs with their counts: the ratios of the dilution factor are one value per
    sample up to an ulp, so the bracket holds nearly all of them, a few distinct ones."""
    d = _inside(stat(spec, part, *extra), bracket)
    col, val = d["column"], d["value"]
    order = np.lexsort((val, col))
    col, val = col[order], val[order]
    new = np.ones(col.size, dtype=bool)
    new[1:] = (col[1:] != col[:-1]) | (val[1:] != val[:-1])
    first = np.flatnonzero(new)
    count = np.diff(np.append(first, col.size))
    return {"below": d["below"], "column": col[first], "value": val[first], "count": count}


def _select_counted(parts: Sequence[dict[str, np.ndarray]], bracket: dict[str, np.ndarray]) -> Any:
    """:func:`._blockwise._select` on counted values: the mean of the two middle ranks."""
    n = bracket["n"]
    below = np.sum([p["below"] for p in parts], axis=0)
    col = np.concatenate([p["column"] for p in parts])
    val = np.concatenate([p["value"] for p in parts])
    cnt = np.concatenate([p["count"] for p in parts])
    order = np.lexsort((val, col))
    col, val, cnt = col[order], val[order], cnt[order]
    total = np.bincount(col, weights=cnt, minlength=n.size).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(total)[:-1]])
    out = np.full(n.size, np.nan)
    has = n > 0
    i_lo = (n - 1) // 2 - below
    i_hi = n // 2 - below
    if ((i_lo < 0) | (i_hi >= total))[has].any():  # cannot happen: the bracket is a bound
        raise AssertionError("column median: the bracket misses the median rank")
    if not has.any():
        return out
    cum = np.cumsum(cnt)
    a = val[np.searchsorted(cum, (start + i_lo)[has], side="right")]
    b = val[np.searchsorted(cum, (start + i_hi)[has], side="right")]
    out[has] = (a + b) / 2.0
    return out


def _medians(stat: Callable[..., np.ndarray], spec: Any, parts: Sequence[Any], *extra: Any) -> Any:
    """Lazy exact ``nanmedian`` over all kept features of each column of
    ``stat(spec, part, *extra)`` (non-finite values left out): two passes over the parts,
    as :func:`._blockwise.column_medians`."""
    delayed = dask.delayed
    first = [delayed(_pivots_task, pure=True)(stat, spec, p, *extra) for p in parts]
    bracket = delayed(_bracket, pure=True)(first)
    second = [delayed(_inside_task, pure=True)(stat, spec, p, bracket, *extra) for p in parts]
    return delayed(_select_counted, pure=True)(second, bracket)


def _figures(spec: _Spec, parts: Sequence[dict[str, Any]], n_stored_samples: int) -> dict[str, Any]:
    """The per-feature and per-sample figures of the stats pass (no values)."""
    n_kept = int(sum(len(p["ids"]) for p in parts))
    n_features = int(sum(p["n_stored"] for p in parts))
    keep = np.zeros(n_features, dtype=bool)
    for p in parts:
        keep[p["ids"]] = True
    missing = np.sum([p["sample_missing"] for p in parts], axis=0)
    raw_missing = np.sum([p["sample_missing_raw"] for p in parts], axis=0)
    return {
        "keep": keep,
        "feature_missing": np.concatenate([p["feature_missing"] for p in parts]),
        "sample_missing_raw": raw_missing / n_features
        if n_features
        else np.full(n_stored_samples, np.nan),
        "sample_missing": missing / n_kept if n_kept else np.full(len(spec.used), np.nan),
        "rsd_before": np.concatenate([p["rsd_before"] for p in parts]),
        "rsd_after": np.concatenate([p["rsd_after"] for p in parts]),
    }


def _client() -> Any:
    try:
        from distributed import get_client

        return get_client()
    except ValueError:
        return None


def normalize_blockwise(
    read_rows: ReadRows,
    n_features: int,
    steps: NormalizationSteps,
    *,
    n_samples: int,
    used: np.ndarray,
    study: np.ndarray,
    qc: np.ndarray,
    injection_order: np.ndarray | None = None,
    batch: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    features_per_block: int = 4096,
) -> tuple[NormalizedFigures, Iterator[NormalizedBlock]]:
    """:func:`._normalization.normalize_matrix` over blocks of stored features.

    Parameters
    ----------
    read_rows
        ``read_rows(start, stop)``: stored features ``start:stop`` x all ``n_samples``
        stored samples (e.g. :class:`._blockwise.StoreRows`), called inside the tasks.
    steps
        Resolved steps (:meth:`NormalizationSteps.resolved`).
    used, study
        Stored columns processed (study samples and pooled QCs, no blanks) and those of
        the study samples (the raw missing fraction of ``feature_qc``).
    qc, injection_order, batch, groups
        Per processed sample, as :func:`._normalization.normalize_matrix`'s.

    Returns
    -------
    The figures, and the processed blocks in feature order. On a ``distributed`` client
    the blocks stay on the workers until the iterator fetches each (and lets it go);
    without one the graph runs in this process.

    Raises
    ------
    MethodInputError
        As :func:`._normalization.normalize_matrix`: no feature passes the filter,
        QC-RLSC without an injection order or QCs, a step's own refusal.
    """
    qc = np.asarray(qc, dtype=bool)
    order = None if injection_order is None else np.asarray(injection_order, dtype=float)
    batches = None if batch is None else np.asarray(batch).astype(str)
    drift = drift_applies(steps, qc=qc, injection_order=order, batch=batches)
    spec = _Spec(
        read_rows=read_rows,
        blocks=plan_blocks(n_features, features_per_block),
        steps=steps,
        used=np.asarray(used, dtype=np.int64),
        study_stored=np.asarray(study, dtype=np.int64),
        qc=qc,
        groups=None if groups is None else np.asarray(groups)[~qc].astype(str).tolist(),
        injection_order=order,
        batch=batches,
        drift=drift,
    )
    delayed = dask.delayed
    # one key for the spec: its reader is not tokenised (nor its fields traversed) per task
    spec_key: Any = delayed(spec, pure=True)
    parts = [delayed(_corrected, pure=True)(spec_key, i) for i in range(len(spec.blocks))]
    # the corrected blocks are kept (on the workers, spilled past their memory target)
    # for the per-sample passes and the final one: KNN and LOESS run once
    client = _client()
    parts = client.persist(parts) if client is not None else list(dask.persist(*parts))
    divisor: Any = None
    if steps.method == "sum":
        divisor = delayed(_total, pure=True)([delayed(_column_sums, pure=True)(p) for p in parts])
    elif steps.method in ("median", "pqn"):
        divisor = _medians(_statistic, spec_key, parts)
    dilution: Any = None
    if steps.method != "none":
        dilution = _medians(_ratio, spec_key, parts, divisor)
    glog_min: Any = None
    if steps.transform == "glog":
        glog_min = delayed(min, pure=True)(
            [delayed(_smallest_nonzero, pure=True)(spec_key, p, divisor) for p in parts],
            default=np.inf,
        )
    light = [delayed(_without_values, pure=True)(p) for p in parts]
    figures = delayed(_figures, pure=True)(spec_key, light, n_samples)
    fig, dil, divisor, glog_min = dask.compute(figures, dilution, divisor, glog_min)

    if not fig["keep"].any():
        raise MethodInputError(
            f"no feature is observed in at least {1 - steps.max_missing:.0%} of the study "
            "samples (raise --max-missing)",
            place="--max-missing",
            rule="missingness-filter",
        )
    return (
        NormalizedFigures(
            keep=fig["keep"],
            feature_missing=fig["feature_missing"],
            sample_missing_raw=fig["sample_missing_raw"],
            sample_missing=fig["sample_missing"],
            rsd_before=fig["rsd_before"],
            rsd_after=fig["rsd_after"],
            dilution=np.ones(len(spec.used)) if dil is None else np.asarray(dil),
            drift_corrected=drift,
            value_kind="abundance" if steps.transform == "none" else "log2-abundance",
        ),
        _final_blocks(client, spec_key, parts, divisor, glog_min),
    )


def _without_values(part: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in part.items() if k != "values"}


def _final_blocks(
    client: Any, spec_key: Any, parts: list[Any], divisor: Any, glog_min: Any
) -> Iterator[NormalizedBlock]:
    """The processed blocks in order, computed a few ahead of the consumer (twice the
    cluster's threads), each corrected block let go once its final block is sent, so
    neither the workers nor this process ever hold all of them."""
    delayed = dask.delayed

    def final(i: int) -> Any:
        task = delayed(_final, pure=True)(spec_key, parts[i], divisor, glog_min)
        parts[i] = None  # the task holds the corrected block until it has run
        return task

    if client is None:
        for i in range(len(parts)):
            (block,) = dask.compute(final(i))
            yield block
        return
    window = max(2, 2 * sum(client.nthreads().values()))
    queue: deque[Any] = deque()
    ahead = 0
    while ahead < len(parts) or queue:
        while ahead < len(parts) and len(queue) < window:
            queue.append(client.compute(final(ahead)))
            ahead += 1
        future = queue.popleft()
        block = future.result()
        future.release()
        yield block
