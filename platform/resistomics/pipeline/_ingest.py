"""Ingest: landed file -> staged version -> validated -> published or quarantined.

Write-then-publish: the version directory is new and never reused; the catalog records
the version as *staged* before any byte is written, and publishes it in one transaction
after validation passes. A crash at any point leaves at most a staged record and an
unpublished directory, which :func:`collect_garbage` removes; readers never see them.
"""

from __future__ import annotations

import posixpath
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from resistomics import __version__
from resistomics.catalog import VersionInfo, VersionStatus
from resistomics.errors import CatalogError, InputError, ValidationFailedError
from resistomics.modalities import dataset_type, reader_for
from resistomics.modalities.expression import MatrixSource, ReadContext
from resistomics.names import check_name
from resistomics.pipeline._landing import (
    Claim,
    archive,
    check_landed_tree,
    claim_landed,
    confine_to_landing,
    digest_landed,
    find_identical_landing,
    landing_identity,
    localize,
    quarantine,
    release_claim,
)
from resistomics.pipeline._workspace import Workspace
from resistomics.storage import ExpressionStoreWriter, open_expression_store, write_manifest
from resistomics.validation import ValidationReport, run_expectations, summarize_matrix

__all__ = ["IngestOutcome", "dataset_name_for", "ingest", "validate_version"]

Progress = Callable[[int], None]

# Values per task of the validation summaries. A summary task holds its block a few
# times over (values, row index, masks), so 1 Mi values (one Zarr chunk, ~8 MiB as CSR)
# keep a task under ~50 MiB: workers with a few hundred MiB validate any dataset without
# pausing. The extra tasks cost nothing next to the decompression.
VALIDATION_BLOCK_NNZ = 1 << 20


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one landed file."""

    status: Literal["published", "unchanged", "quarantined"]
    path: str
    study: str
    dataset: str
    version: VersionInfo | None
    message: str
    report: dict[str, Any] = field(default_factory=dict)
    quarantine_uri: str | None = None


_EXTENSIONS = (
    ".vcf.gz",
    ".vcf.bgz",
    ".maf.gz",
    ".maf.txt.gz",
    ".vcf",
    ".maf",
    ".tsv.gz",
    ".csv.gz",
    ".txt.gz",
    ".mtx.gz",
    ".tsv",
    ".csv",
    ".txt",
    ".h5ad",
    ".tab",
    ".counts",
)


def dataset_name_for(path: str) -> str:
    """Default dataset name: the file or directory name without format extensions."""
    name = posixpath.basename(path.rstrip("/"))
    for ext in _EXTENSIONS:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dataset"


def validate_version(ws: Workspace, version: VersionInfo) -> ValidationReport:
    """Run the dataset type's expectations on a (staged) expression version."""
    store = open_expression_store(ws.root, ws.root.to_path(version.uri))
    summaries = summarize_matrix(store.cells(target_nnz=VALIDATION_BLOCK_NNZ), store.obs, store.var)
    registered = sorted(ws.catalog.samples(version.study).index.astype(str))
    v = ws.settings.validation
    dtype = dataset_type(version.dataset_type)
    return run_expectations(
        dataset_type=dtype.name,
        dataset_type_version=dtype.version,
        suites=dtype.expectations,
        tables={"chunks": summaries.chunks, "cells": summaries.cells, "genes": summaries.genes},
        params={
            "registered_samples": registered,
            "min_library_size": v.min_library_size,
            "max_library_size": v.max_library_size,
            "min_detected_genes": v.min_detected_genes,
            "max_detected_genes": v.max_detected_genes,
        },
    )


def ingest(
    ws: Workspace,
    path: str,
    *,
    study: str,
    modality: str = "expression",
    dataset: str | None = None,
    fmt: str | None = None,
    sample: str | None = None,
    values: Literal["auto", "counts", "normalized"] | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> IngestOutcome:
    """Ingest one landed file or directory into the study.

    Returns an outcome for published, unchanged (same bytes already published) and
    quarantined files alike; raises :class:`InputError` only when the file cannot be
    taken at all (outside the landing zone, missing, unknown study), in which case
    nothing is moved or recorded.

    Dask work (validation summaries) runs on the current Dask client if one is active,
    else on the local threaded scheduler.
    """
    check_name("study", study)
    check_name("modality", modality)
    if dataset is not None:
        check_name("dataset", dataset)
    confine_to_landing(ws, path)
    samples = ws.catalog.samples(study)
    named = dataset
    dataset = dataset or dataset_name_for(path)
    identity = landing_identity(modality=modality, fmt=fmt, sample=sample, values=values)
    claim = claim_landed(ws, path)  # from here on, only this run reads (or moves) the entry
    scratch = Path(tempfile.mkdtemp(prefix="resistomics-ingest-"))
    staged: VersionInfo | None = None
    version_dir: str | None = None
    local = Path(claim.path)
    try:
        try:
            check_landed_tree(claim)
        except InputError as exc:
            return read_failure(
                ws,
                exc,
                claim=claim,
                local=local,
                study=study,
                dataset=dataset,
                version_dir=None,
                staged=None,
            )
        claimed_fs_path = ws.landing.to_path(claim.path) if "://" in claim.path else claim.path
        digest = digest_landed(ws, claimed_fs_path)
        existing = find_identical_landing(
            ws, study=study, digest=digest, identity=identity, dataset=named
        )
        if existing is not None:
            archive(ws, study, claim)
            return IngestOutcome(
                status="unchanged",
                path=path,
                study=study,
                dataset=existing.dataset,
                version=existing,
                message=f"{path}: identical bytes with the same options already published as "
                f"{existing.ref}; no new version",
            )
        local = localize(ws, claim.path, scratch)
        try:
            fmt_name, reader = reader_for(modality, str(local), fmt)
        except KeyError as exc:
            refused = InputError(str(local), "format", str(exc).strip("'\""))
            return read_failure(
                ws,
                refused,
                claim=claim,
                local=local,
                study=study,
                dataset=dataset,
                version_dir=None,
                staged=None,
            )
        if modality == "variants":
            from resistomics.pipeline._ingest_variants import ingest_variants

            return ingest_variants(
                ws,
                claim,
                local,
                reader,
                fmt_name,
                study=study,
                dataset=dataset,
                digest=digest,
                identity=identity,
                samples=samples,
                run_id=run_id,
            )
        ctx = ReadContext(
            registered_samples=frozenset(samples.index.astype(str))
            if len(samples)
            else frozenset(),
            sample=sample,
            values=values,
            rows_per_block=ws.settings.rows_per_chunk,
            genes_per_block=ws.settings.genes_per_block,
            scratch=scratch,
        )
        try:
            source: MatrixSource = reader(local, ctx)
            version_dir = ws.root.new_version_path(study, dataset)
            writer = ExpressionStoreWriter(
                ws.root,
                version_dir,
                orientation=source.orientation,
                obs=source.fixed if source.orientation == "genes" else None,
                var=source.fixed if source.orientation == "cells" else None,
                value_kind="counts",  # provisional; fixed below once the stream is read
                rows_per_block=ws.settings.rows_per_chunk,
                genes_per_block=ws.settings.genes_per_block,
                scratch=scratch,
                lognorm_target_sum=ws.settings.normalize_target_sum,
                design=samples,
                metadata={"source": path, "format": fmt_name, "digest": digest, **source.details},
            )
            for block, labels in source.blocks:
                writer.add(block, labels)
                del block  # not alive while the reader makes the next one: one block at a time
                if progress is not None:
                    progress(1)
            writer.value_kind = source.value_kind
            dtype_name = f"expression.{source.value_kind}"
            staged = stage_landed(
                ws,
                path=path,
                study=study,
                dataset=dataset,
                modality=modality,
                dtype_name=dtype_name,
                version_dir=version_dir,
                format="zarr-anndata",
                layout="sparse-matrix",
                layout_version=1,
                digest=digest,
                run_id=run_id,
                parameters={
                    "format": fmt_name,
                    "values": source.values_mode,
                    **source.details,
                    "landing": identity,
                },
            )
            summary = writer.close()
        except InputError as exc:
            return read_failure(
                ws,
                exc,
                claim=claim,
                local=local,
                study=study,
                dataset=dataset,
                version_dir=version_dir,
                staged=staged,
            )
        _set_shape(ws, staged, [summary.n_obs, summary.n_vars])
        staged = ws.catalog.get_version(staged.id)
        report_obj = validate_version(ws, staged)
        report = {
            "stage": "validate",
            "file": path,
            **report_obj.as_dict(),
            "nnz": summary.nnz,
            "dtype": summary.dtype,
        }
        if not report_obj.success:
            return validation_failure(ws, report_obj, report, claim=claim, staged=staged)
        return publish_landed(
            ws, staged, report, claim=claim, detail=f"{summary.n_obs} x {summary.n_vars}"
        )
    except BaseException:
        release_claim(ws, claim)  # not the file's fault: back to the landing zone, retried
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def stage_landed(
    ws: Workspace,
    *,
    path: str,
    study: str,
    dataset: str,
    modality: str,
    dtype_name: str,
    version_dir: str,
    format: str,
    layout: str,
    layout_version: int,
    digest: str,
    run_id: str | None,
    parameters: dict[str, Any],
) -> VersionInfo:
    """Record a landed file's new version as staged (invisible until published).

    A dataset keeps one type: landing, say, normalised values into a counts dataset is
    an input error (quarantined), not a catalog failure.
    """
    dtype = dataset_type(dtype_name)
    try:
        return ws.catalog.stage_version(
            study=study,
            dataset=dataset,
            modality=modality,
            dataset_type=dtype_name,
            uri=ws.root.relative_uri(version_dir),
            format=format,
            layout=layout,
            layout_version=layout_version,
            digest=digest,
            schema_version=dtype.version,
            shape=[],
            code_version=__version__,
            source_uri=path,
            run_id=run_id,
            parameters=parameters,
        )
    except CatalogError as exc:
        raise InputError(
            path, "dataset-type", f"{exc}; ingest it as another dataset (--dataset NAME)"
        ) from None


def publish_landed(
    ws: Workspace, staged: VersionInfo, report: dict[str, Any], *, claim: Claim, detail: str
) -> IngestOutcome:
    """Publish a validated version and move its landed file to the archive."""
    path = claim.landed
    manifest = write_manifest(ws.root, ws.root.to_path(staged.uri))
    version = ws.catalog.publish_version(staged.id, report, manifest_digest=manifest)
    archive(ws, staged.study, claim)
    return IngestOutcome(
        status="published",
        path=path,
        study=staged.study,
        dataset=staged.dataset,
        version=version,
        message=f"{path}: published {version.ref} ({detail}, {version.dataset_type})",
        report=report,
    )


def read_failure(
    ws: Workspace,
    exc: InputError,
    *,
    claim: Claim,
    local: Path,
    study: str,
    dataset: str,
    version_dir: str | None,
    staged: VersionInfo | None,
) -> IngestOutcome:
    """Quarantine a file that could not be read; remove whatever was staged for it."""
    path = claim.landed
    if version_dir is not None:
        ws.root.remove(version_dir)
    if staged is not None:
        ws.catalog.delete_staged(staged.id)
    line = exc.one_line()
    if str(local) != path:  # a remote file was read from a local copy: name the original
        line = line.replace(str(local), path.rstrip("/"))
    report = {
        "success": False,
        "stage": "read",
        "file": path,
        "rule": exc.rule,
        "location": str(exc.location),
        "message": line,
    }
    md = f"# Quarantined: {path}\n\nThe file could not be read.\n\n- rule: `{exc.rule}`\n- {line}\n"
    quri = quarantine(ws, study, claim, report, md)
    return IngestOutcome(
        status="quarantined",
        path=path,
        study=study,
        dataset=dataset,
        version=None,
        message=f"{line}; quarantined, report at {quri}",
        report=report,
        quarantine_uri=quri,
    )


def validation_failure(
    ws: Workspace,
    report_obj: ValidationReport,
    report: dict[str, Any],
    *,
    claim: Claim,
    staged: VersionInfo,
) -> IngestOutcome:
    """Quarantine a staged version whose expectations failed, with its report."""
    path = claim.landed
    md = f"# Quarantined: {path}\n\nDataset type `{staged.dataset_type}`.\n\n{report_obj.markdown()}\n"
    quri = quarantine(ws, staged.study, claim, report, md)
    report["quarantine_uri"] = quri
    version = ws.catalog.quarantine_version(staged.id, report, staged.uri)
    err = ValidationFailedError(path, [o.line() for o in report_obj.failures], quri)
    return IngestOutcome(
        status="quarantined",
        path=path,
        study=staged.study,
        dataset=staged.dataset,
        version=version,
        message=str(err),
        report=report,
        quarantine_uri=quri,
    )


def _set_shape(ws: Workspace, version: VersionInfo, shape: list[int]) -> None:
    from resistomics.catalog._models import Version

    with ws.catalog.session() as s:
        v = s.get(Version, version.id)
        if v is not None and v.status == VersionStatus.STAGED:
            v.shape = shape
