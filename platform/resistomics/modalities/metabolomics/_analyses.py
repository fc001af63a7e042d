"""``normalize`` and ``da`` on published metabolomics datasets, their artifacts and plots.

``normalize`` resolves a ``metabolomics.abundance`` version, runs
:func:`._normalization.normalize_matrix` over its stored feature blocks
(:func:`._normalize_blocks.normalize_blockwise`, on the Dask cluster) and publishes ``metabolomics.normalized``: the
processed matrix as a ``feature-matrix@1`` store in the result's own folder (so ``da``,
program scores and anything else open it with ``open_feature_matrix``, as a source), and
the QC tables ``feature_qc`` and ``sample_qc``. ``da`` tests one contrast on a
``metabolomics.normalized`` result (a raw dataset is normalised first with
:data:`._normalization.DEFAULT_PIPELINE`, itself published) and publishes
``metabolomics.da``. Both are idempotent: the same input and parameters find the
published result.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.contrasts import Contrast, unknown_attribute, unknown_value
from resistomics.errors import ContrastNotApplicableError, InputError, MethodInputError
from resistomics.modalities._plugin import Artifact
from resistomics.modalities.metabolomics._blockwise import StoreRows
from resistomics.modalities.metabolomics._da import DaMethod, da_table_blockwise
from resistomics.modalities.metabolomics._normalization import (
    DEFAULT_PIPELINE,
    NormalizationSteps,
)
from resistomics.modalities.metabolomics._normalize_blocks import normalize_blockwise
from resistomics.publishing import (
    ResultOutcome,
    Workspace,
    publish_result,
    published_result,
    result_table,
)
from resistomics.storage import (
    FeatureBlock,
    FeatureMatrix,
    open_feature_matrix,
    write_feature_matrix,
)

__all__ = [
    "DA_TABLE",
    "DA_TYPE",
    "NORMALIZED_TYPE",
    "da_artifacts",
    "differential_abundance",
    "normalize_abundance",
    "normalize_artifacts",
    "plot_da_volcano",
    "plot_normalized_pca",
    "sample_pca",
]

SOURCE_TYPE = "metabolomics.abundance"
NORMALIZED_TYPE = "metabolomics.normalized"
DA_TYPE = "metabolomics.da"
DA_TABLE = "da"
#: Sample-table columns QC-RLSC reads (a MetaboAnalyst table's extra columns or the design).
INJECTION_ORDER, BATCH = "injection_order", "batch"
STUDY, QC = "study", "qc"


def _open(ws: Workspace, ref: str, study: str | None, types: tuple[str, ...]) -> VersionInfo:
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type not in types:
        raise MethodInputError(
            f"is {version.dataset_type}, not {' or '.join(types)}",
            place=version.ref,
            rule="dataset-type",
        )
    return version


def _store(ws: Workspace, version: VersionInfo) -> FeatureMatrix:
    return open_feature_matrix(ws.root, ws.root.to_path(version.uri))


def _section(ws: Workspace) -> dict[str, Any]:
    # MetabolomicsSettings, validated where the settings are built (importing _modality
    # here would close an import cycle through its commands)
    return dict(ws.settings.modalities.get("metabolomics", {}) or {})


def normalize_abundance(
    ws: Workspace,
    ref: str,
    *,
    max_missing: float = DEFAULT_PIPELINE.max_missing,
    missing_by: str | None = None,
    impute: str | None = None,
    knn_k: int = 10,
    method: str | None = None,
    drift: str = "auto",
    transform: str = "log",
    scale: str = "none",
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Process a ``metabolomics.abundance`` dataset and publish ``metabolomics.normalized``.

    Steps and their references: :func:`._normalization.normalize_matrix`
    (MetaboAnalyst's definitions, Pang et al. 2021; PQN, Dieterle et al. 2006; QC-RLSC,
    Dunn et al. 2011; KNN, Troyanskaya et al. 2001), run over the stored feature blocks
    (:func:`._normalize_blocks.normalize_blockwise`: one Dask graph on the active
    ``distributed`` client, this process holding one processed block at a time). Blanks are left out of the processed matrix; pooled QCs go
    through every step and stay in it (``sample_type`` says which is which).

    Parameters
    ----------
    max_missing, missing_by
        Drop features missing in more than this fraction of the study samples (in every
        group of the sample column ``missing_by``, when given).
    impute, knn_k
        ``half-min``, ``knn`` (``knn_k`` neighbours) or ``none``; default half-min on raw
        abundances, none on log-scaled values.
    method
        Per-sample normalisation ``sum``, ``median``, ``pqn`` or ``none``; default PQN
        (none on log-scaled values).
    drift
        ``auto`` (QC-RLSC when every sample has an ``injection_order`` and each
        ``batch`` has 4 pooled QCs), ``qc-rlsc`` (required) or ``none``.
    transform, scale
        ``log`` (log2), ``glog`` (base 2) or ``none`` (skipped on a log-scaled dataset);
        ``auto``, ``pareto``, ``range`` or ``none``: the scaled matrix is stored beside
        the unscaled one (tests read the unscaled values; PCA the scaled).

    Raises
    ------
    MethodInputError
        Not a ``metabolomics.abundance`` dataset; a step that cannot run (see
        :func:`._normalization.normalize_matrix`).
    InputError
        ``missing_by`` is not a sample column; an option value is not one of its choices.
    """
    version = _open(ws, ref, study, (SOURCE_TYPE,))
    log_scaled = bool((version.parameters or {}).get("log_scaled", False))
    _choice("--impute", impute, ("half-min", "knn", "none"))
    _choice("--method", method, ("sum", "median", "pqn", "none"))
    _choice("--drift", drift, ("auto", "qc-rlsc", "none"))
    _choice("--transform", transform, ("log", "glog", "none"))
    _choice("--scale", scale, ("auto", "pareto", "range", "none"))
    if not 0.0 <= max_missing <= 1.0:
        raise InputError("--max-missing", "option", f"{max_missing} is not within [0, 1]")
    asked = NormalizationSteps(
        max_missing=max_missing,
        missing_by=missing_by,
        impute=impute,  # type: ignore[arg-type]
        knn_k=knn_k,
        method=method,  # type: ignore[arg-type]
        drift=drift,  # type: ignore[arg-type]
        transform=transform,  # type: ignore[arg-type]
        scale=scale,  # type: ignore[arg-type]
    )
    steps = asked.resolved(log_scaled=log_scaled)
    parameters: dict[str, Any] = {"steps": steps.as_parameters(), "log_scaled_input": log_scaled}
    digest, existing = published_result(ws, version, NORMALIZED_TYPE, parameters)
    if existing is not None:
        return existing
    store = _store(ws, version)
    samples = store.samples.reset_index(drop=True)
    types = samples["sample_type"].astype(str).to_numpy()
    used = np.flatnonzero(types != "blank")
    kept_samples = samples.iloc[used].reset_index(drop=True)
    if not (kept_samples["sample_type"] == STUDY).any():
        raise MethodInputError("has no study sample", place=version.ref, rule="study-samples")
    groups = None
    if missing_by is not None:
        if missing_by not in kept_samples.columns:
            raise InputError("--missing-by", "missing-by", unknown_attribute(missing_by, samples))
        groups = kept_samples[missing_by].astype(str).to_numpy()
    order = _numeric(kept_samples, INJECTION_ORDER)
    batch = (
        kept_samples[BATCH].astype(str).to_numpy()
        if BATCH in kept_samples.columns and kept_samples[BATCH].notna().all()
        else None
    )
    is_qc = (kept_samples["sample_type"] == QC).to_numpy()
    study_cols = np.flatnonzero(types == STUDY)
    # one Dask task per stored feature block (each reads its rows; KNN streams the
    # others), so this process holds the figures and one processed block at a time
    out, processed = normalize_blockwise(
        StoreRows(dataclasses.replace(store)),  # a copy without the cached index
        store.n_features,
        steps,
        n_samples=store.n_samples,
        used=used,
        study=study_cols,
        qc=is_qc,
        injection_order=order,
        batch=batch,
        groups=groups,
        features_per_block=store.chunks[0],
    )
    parameters["drift_corrected"] = out.drift_corrected
    value_kind = "log-abundance" if log_scaled else out.value_kind
    parameters["value_kind"] = value_kind
    features = store.features.reset_index(drop=True)
    feature_qc = pd.DataFrame(
        {
            "feature_id": features["feature_id"].astype(str),
            "name": features["name"] if "name" in features else features["feature_id"],
            "kept": out.keep,
            "missing_fraction": out.feature_missing,
            "qc_rsd_before": np.nan,
            "qc_rsd_after": np.nan,
        }
    )
    feature_qc.loc[out.keep, "qc_rsd_before"] = out.rsd_before
    feature_qc.loc[out.keep, "qc_rsd_after"] = out.rsd_after
    sample_qc = pd.DataFrame(
        {
            "sample_id": samples["sample_id"].astype(str),
            "sample_type": types,
            "processed": types != "blank",
            "missing_fraction": out.sample_missing_raw,
            "missing_fraction_kept": np.nan,
            "dilution_factor": np.nan,
        }
    )
    sample_qc.loc[used, "missing_fraction_kept"] = out.sample_missing
    sample_qc.loc[used, "dilution_factor"] = out.dilution
    section = _section(ws)
    n = int(section.get("features_per_chunk", 4096))
    arrays = ["abundance", *(["scaled"] if steps.scale != "none" else [])]

    def write_matrix(version_dir: str) -> None:
        blocks = (
            FeatureBlock(
                features.iloc[block.features].reset_index(drop=True),
                {"abundance": block.values}
                | ({"scaled": block.scaled} if block.scaled is not None else {}),
            )
            for block in processed
        )
        write_feature_matrix(
            ws.root,
            version_dir,
            blocks,
            samples=kept_samples,
            arrays=dict.fromkeys(arrays, "float64"),
            feature_id="feature_id",
            primary="abundance",
            features_per_chunk=n,
            samples_per_chunk=int(section.get("samples_per_chunk", 256)),
            metadata={
                "source": version.ref,
                "value_kind": value_kind,
                "log_base": 2 if value_kind == "log2-abundance" else None,
                "steps": steps.as_parameters(),
                "drift_corrected": out.drift_corrected,
            },
        )

    name = f"{version.dataset}.normalized.{_slug(steps, log_scaled=log_scaled)}"
    outcome = publish_result(
        ws,
        modality="metabolomics",
        parents=[version],
        study=version.study,
        dataset=name,
        dtype=NORMALIZED_TYPE,
        parameters=parameters,
        digest=digest,
        tables={"feature_qc": feature_qc, "sample_qc": sample_qc},
        write_extra=write_matrix,
        run_id=run_id,
    )
    return outcome


def _slug(steps: NormalizationSteps, *, log_scaled: bool) -> str:
    """``pqn-log-none`` (method, transform, scale), plus each step that differs from the
    default (``.impute-knn10.missing0.8-by-group.drift-none``), so results of different
    steps are different datasets, not versions superseding each other."""
    default = DEFAULT_PIPELINE.resolved(log_scaled=log_scaled)
    parts = [f"{steps.method}-{steps.transform}-{steps.scale}"]
    if steps.impute != default.impute:
        parts.append(f"impute-{steps.impute}" + (str(steps.knn_k) if steps.impute == "knn" else ""))
    if steps.max_missing != default.max_missing or steps.missing_by:
        by = "".join(c if c.isalnum() or c in "_-" else "-" for c in steps.missing_by or "")
        parts.append(f"missing{steps.max_missing:g}" + (f"-by-{by}" if by else ""))
    if steps.drift != default.drift:
        parts.append(f"drift-{steps.drift}")
    return ".".join(parts)


def _choice(flag: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise InputError(flag, "option", f"{value!r} is not one of {', '.join(choices)}")


def _numeric(samples: pd.DataFrame, column: str) -> np.ndarray | None:
    if column not in samples.columns:
        return None
    # injection_order is a nullable integer column (pd.NA where unknown)
    values = pd.to_numeric(samples[column], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    return values if np.isfinite(values).all() else None


def _arms(
    samples: pd.DataFrame, contrast: Contrast, pair_by: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Column indices of arm A and arm B among the study samples (QC and blanks are never
    subjects), aligned by subject when ``pair_by`` is given (and the subjects' labels)."""
    study = (samples["sample_type"] == STUDY).to_numpy()
    if contrast.column not in samples.columns:
        raise ContrastNotApplicableError(
            "--contrast", "contrast-column", unknown_attribute(contrast.column, samples)
        )
    values = samples[contrast.column].astype(str).to_numpy()
    keep = contrast.selected(samples) & study
    arms = []
    for arm in (contrast.group_a, contrast.group_b):
        if not (values[study] == arm).any():
            raise ContrastNotApplicableError(
                "--contrast", "contrast-arm", unknown_value(contrast.column, arm, samples[study])
            )
        arms.append(np.flatnonzero(keep & (values == arm)))
    if pair_by is None:
        for arm, idx in zip((contrast.group_a, contrast.group_b), arms, strict=True):
            if len(idx) < 2:
                raise InputError(
                    "--contrast",
                    "arm-size",
                    f"arm {contrast.column}={arm} has {len(idx)} study samples after "
                    "filters; need at least 2",
                )
        return arms[0], arms[1], None
    if pair_by not in samples.columns:
        raise InputError("--pair-by", "pair-by", unknown_attribute(pair_by, samples))
    subject = samples[pair_by].astype(str).to_numpy()
    by_arm = []
    for arm, idx in zip((contrast.group_a, contrast.group_b), arms, strict=True):
        s = pd.Series(idx, index=subject[idx])
        dup = s.index[s.index.duplicated()]
        if len(dup):
            raise InputError(
                "--pair-by",
                "one-sample-per-subject-and-arm",
                f"{pair_by}={dup[0]!r} has {int((s.index == dup[0]).sum())} samples in arm "
                f"{contrast.column}={arm}; a paired design needs one per arm",
            )
        by_arm.append(s)
    common = sorted(set(by_arm[0].index) & set(by_arm[1].index))
    if len(common) < 2:
        raise InputError(
            "--pair-by",
            "pairs",
            f"{len(common)} {pair_by} value(s) have a sample in both arms; need at least 2",
        )
    return (
        by_arm[0].loc[common].to_numpy(),
        by_arm[1].loc[common].to_numpy(),
        np.asarray(common, dtype=object),
    )


def differential_abundance(
    ws: Workspace,
    ref: str,
    contrast: Contrast | None = None,
    *,
    method: str = "limma",
    pair_by: str | None = None,
    study: str | None = None,
    run_id: str | None = None,
) -> ResultOutcome:
    """Differential abundance of every feature between the arms of ``contrast``.

    ``ref`` is a ``metabolomics.normalized`` result, or a ``metabolomics.abundance``
    dataset, which is first normalised with :data:`._normalization.DEFAULT_PIPELINE`
    (published as its own result, recorded in this one's parameters). Study samples only:
    pooled QCs and blanks are never subjects. Methods and fold changes:
    :func:`._da.da_table_blockwise`, one Dask task per stored feature block (limma: Smyth 2004; Welch 1947; Wilcoxon 1945; BH 1995);
    ``pair_by`` (a sample column, e.g. ``subject_id``) pairs the arms' samples of each
    subject (limma with the subject in the design, paired t, signed-rank); subjects with
    a sample in one arm only are left out.

    Returns
    -------
    ResultOutcome
        ``<normalized>.da.<method>[.paired-<column>].<contrast>``: table ``da`` with the
        feature index columns (``feature_id``, ``name``, identifiers, m/z, RT where the
        table has them) and :data:`._da.DA_COLUMNS`.

    Raises
    ------
    InputError
        No or a malformed contrast; an unknown method; an arm with fewer than 2 samples
        (pairs); a subject with two samples in one arm.
    ContrastNotApplicableError
        The contrast's column or an arm is not among the study samples.
    MethodInputError
        Neither a ``metabolomics.abundance`` nor a ``metabolomics.normalized`` dataset.
    """
    if contrast is None:
        raise InputError("--contrast", "option", "give --contrast 'COLUMN:A vs B'")
    _choice("--method", method, ("limma", "welch", "wilcoxon"))
    version = _open(ws, ref, study, (SOURCE_TYPE, NORMALIZED_TYPE))
    if version.dataset_type == SOURCE_TYPE:
        # a contrast that cannot apply fails before anything is normalised or published
        _arms(_store(ws, version).samples.reset_index(drop=True), contrast, pair_by)
        version = normalize_abundance(ws, version.ref, study=version.study, run_id=run_id).version
    store = _store(ws, version)
    value_kind = str(store.metadata.get("value_kind", "abundance"))
    log_scale = value_kind != "abundance"
    samples = store.samples.reset_index(drop=True)
    in_a, in_b, pairs = _arms(samples, contrast, pair_by)
    parameters: dict[str, Any] = {
        "contrast": contrast.as_parameters(),
        "method": method,
        "pair_by": pair_by,
        "normalization": (version.parameters or {}).get("steps"),
        "value_kind": value_kind,
        "fold_change": {
            "log2-abundance": "difference of means (log2)",
            "abundance": "log2 ratio of means",
        }.get(value_kind, "difference of means (the dataset's log scale)"),
    }
    digest, existing = published_result(ws, version, DA_TYPE, parameters)
    if existing is not None:
        return existing
    ws.catalog.save_contrast(
        version.study,
        column=contrast.column,
        group_a=contrast.group_a,
        group_b=contrast.group_b,
        where=dict(contrast.where),
    )
    m: DaMethod = method  # type: ignore[assignment]
    # one Dask task per block of stored features (each reads its rows), so no process
    # holds the matrix; equal to da_table on the whole matrix
    stats = da_table_blockwise(
        StoreRows(store),
        store.n_features,
        in_a,
        in_b,
        method=m,
        log_scale=log_scale,
        pairs=pairs,
        features_per_block=store.chunks[0],
    )
    features = store.features.reset_index(drop=True)
    table = pd.concat([features, stats], axis=1)
    parameters["n_arm_a"], parameters["n_arm_b"] = len(in_a), len(in_b)
    if pairs is not None:
        study_arm = (samples["sample_type"] == STUDY) & samples[contrast.column].astype(str).isin(
            [contrast.group_a, contrast.group_b]
        )
        parameters["n_pairs"] = len(pairs)
        parameters["n_unpaired_left_out"] = int(study_arm.sum()) - 2 * len(pairs)
    name = ".".join(
        [
            f"{version.dataset}.da.{method}",
            *([f"paired-{pair_by}"] if pair_by else []),
            contrast.slug,
        ]
    )
    return publish_result(
        ws,
        modality="metabolomics",
        parents=[version],
        study=version.study,
        dataset=name,
        dtype=DA_TYPE,
        parameters=parameters,
        digest=digest,
        tables={DA_TABLE: table},
        run_id=run_id,
    )


# -- artifacts and plots -------------------------------------------------------------

TOP_FEATURES = 50
_FDR = 0.05


def normalize_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The QC table (per-feature QC RSD before / after drift correction, the features
    least reproducible first) and per-sample missingness of a normalize result."""
    features = result_table(ws, result, "feature_qc")
    samples = result_table(ws, result, "sample_qc")
    kept = features[features["kept"]]
    worst = kept.sort_values(["qc_rsd_after", "qc_rsd_before"], ascending=False, na_position="last")
    params = result.parameters or {}
    steps = params.get("steps") or {}
    med_b, med_a = (
        float(np.nanmedian(kept[c])) if kept[c].notna().any() else None
        for c in ("qc_rsd_before", "qc_rsd_after")
    )
    rsd = (
        "no pooled QCs: no RSD"
        if med_b is None
        else f"median QC RSD {med_b:.1f} %"
        + (f" before, {med_a:.1f} % after QC-RLSC drift correction" if med_a is not None else "")
    )
    summary = (
        f"# Normalisation {result.ref}\n\n"
        f"{len(kept)} of {len(features)} features kept (missing in at most "
        f"{steps.get('max_missing')} of the study samples); impute {steps.get('impute')}, "
        f"normalise {steps.get('method')}, drift {'corrected' if params.get('drift_corrected') else 'not corrected'}, "
        f"transform {steps.get('transform')}, scale {steps.get('scale')}; {rsd}.\n"
    )
    study, dataset = result.study, result.dataset
    return [
        Artifact(
            "table",
            ("metabolomics", study, dataset, "qc-features"),
            f"QC RSD per feature of {result.ref} (least reproducible first)",
            table=worst.head(TOP_FEATURES).reset_index(drop=True),
        ),
        Artifact(
            "table",
            ("metabolomics", study, dataset, "qc-samples"),
            f"Missingness per sample of {result.ref}",
            table=samples.sort_values("missing_fraction", ascending=False).reset_index(drop=True),
        ),
        Artifact(
            "markdown", ("metabolomics", study, dataset, "summary"), summary, markdown=summary
        ),
    ]


def _arm_names(result: VersionInfo) -> tuple[str, str]:
    c = (result.parameters or {}).get("contrast") or {}
    return str(c.get("a", "A")), str(c.get("b", "B"))


def da_artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    """The top features (smallest p) and a summary of a ``metabolomics.da`` result."""
    table = result_table(ws, result, DA_TABLE)
    a, b = _arm_names(result)
    sig = table["p_adj"] < _FDR
    top = table.nsmallest(TOP_FEATURES, "p").reset_index(drop=True)
    method = (
        str(table["method"].iloc[0]) if len(table) else str((result.parameters or {}).get("method"))
    )
    summary = (
        f"# Differential abundance {result.ref}\n\n"
        f"{len(table)} features tested ({a} vs {b}, {method}); {int(sig.sum())} at FDR < "
        f"{_FDR:g}: {int((sig & (table['log2fc'] > 0)).sum())} higher in {a}, "
        f"{int((sig & (table['log2fc'] < 0)).sum())} higher in {b}.\n"
    )
    return [
        Artifact(
            "table",
            ("metabolomics", result.study, result.dataset, "top-features"),
            f"Top {TOP_FEATURES} differentially abundant features of {result.ref}",
            table=top,
        ),
        Artifact(
            "markdown",
            ("metabolomics", result.study, result.dataset, "summary"),
            summary,
            markdown=summary,
        ),
    ]


def sample_pca(values: np.ndarray, *, n_components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Principal components of the samples (columns of features x samples ``values``):
    features with a missing value or no variance are left out, each feature centred;
    the scores (samples x components) and the fraction of variance each explains (SVD)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x).all(axis=1)]
    x = x - x.mean(axis=1, keepdims=True)
    x = x[np.abs(x).max(axis=1) > 0] if len(x) else x
    if x.shape[0] < n_components or x.shape[1] <= n_components:
        raise MethodInputError(
            f"PCA needs at least {n_components} complete features and {n_components + 1} "
            f"samples, have {x.shape[0]} and {x.shape[1]}",
            rule="pca",
        )
    u, s, _ = np.linalg.svd(x.T, full_matrices=False)
    explained = s**2 / float(np.sum(s**2))
    return u[:, :n_components] * s[:n_components], explained[:n_components]


def plot_normalized_pca(
    ws: Workspace, result: VersionInfo, output: Any, *, color_by: str | None = None, **_: Any
) -> Any:
    """PCA of the processed samples coloured by ``color_by`` (default ``group``, else
    ``class``), pooled QCs marked (:func:`resistomics.plots.plot_sample_pca`)."""
    from resistomics.plots import plot_sample_pca

    store = _store(ws, result)
    samples = store.samples.reset_index(drop=True)
    name = "scaled" if "scaled" in store.arrays else "abundance"
    scores, explained = sample_pca(np.asarray(store.array(name).compute()))
    column = color_by or next((c for c in ("group", "class") if c in samples.columns), None)
    if column is not None and column not in samples.columns:
        raise InputError("--color-by", "option", unknown_attribute(column, samples))
    groups = (
        samples[column].astype("string").fillna("").astype(str).to_numpy()
        if column
        else samples["sample_type"].astype(str).to_numpy()
    )
    steps = (result.parameters or {}).get("steps") or {}
    how = f"{steps.get('method')}, {steps.get('transform')}, scale {steps.get('scale')}"
    return plot_sample_pca(
        scores,
        explained,
        output,
        groups=groups,
        qc=(samples["sample_type"] == QC).to_numpy(),
        title=f"{result.ref}\n{how} ({name} values)",
        legend_title=column or "sample type",
    )


def plot_da_volcano(
    ws: Workspace,
    result: VersionInfo,
    output: Any,
    *,
    fdr: float = _FDR,
    labels: int = 15,
    **_: Any,
) -> Any:
    """Volcano of a ``metabolomics.da`` result (:func:`resistomics.plots.plot_de_volcano`:
    log2 fold change against -log10 BH FDR, the top features named)."""
    from resistomics.plots import plot_de_volcano

    table = result_table(ws, result, DA_TABLE)
    frame = pd.DataFrame(
        {
            "gene_id": table["feature_id"],
            "gene_symbol": table["name"] if "name" in table else table["feature_id"],
            "log2_fold_change": table["log2fc"],
            "pval_adj": table["p_adj"],
        }
    )
    params = result.parameters or {}
    c = params.get("contrast") or {}
    method = str(table["method"].iloc[0]) if len(table) else str(params.get("method"))
    title = f"{c.get('column', '')}: {c.get('a', '')} vs {c.get('b', '')}, {method}\n{result.ref}"
    return plot_de_volcano(
        frame,
        output,
        title=title,
        arms=_arm_names(result),
        n_labels=labels,
        fdr=fdr,
        what="features",
    )
