"""Ingest: landed file -> staged version -> validated -> published or quarantined.

The one template every modality goes through: landing checks, digest, dedupe, staging,
the modality's writer, validation and publish or quarantine. The modality (from the
registry) only reads its file and writes it in its layout.

Write-then-publish: the version directory is new and never reused; the catalog records
the version as *staged* before any byte is written under it, and publishes it in one
transaction after validation passes. A crash at any point leaves at most a staged
record and an unpublished directory, which :func:`collect_garbage` removes; readers
never see them.
"""

from __future__ import annotations

import contextlib
import posixpath
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from resistomics._text_files import input_limits
from resistomics.catalog import VersionInfo, VersionStatus
from resistomics.dataset_types import dataset_type
from resistomics.errors import (
    DatasetNotFoundError,
    InputError,
    ResistomicsError,
    StorageError,
    UnknownNameError,
    ValidationFailedError,
)
from resistomics.modalities import Modality, Summaries, modalities, modality
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
    landing_options,
    localize,
    quarantine,
    release_claim,
)
from resistomics.publishing import Staging, Workspace, layout_of
from resistomics.storage import write_manifest
from resistomics.validation import ValidationReport, run_expectations

__all__ = [
    "IngestOutcome",
    "dataset_name_for",
    "ingest",
    "modality_of_landed",
    "published_by_run",
    "quarantine_unread",
    "validate_version",
]

Progress = Callable[[int], None]


@dataclass(frozen=True)
class IngestOutcome:
    """What happened to one landed file."""

    status: Literal["published", "unchanged", "quarantined"]
    path: str
    modality: str
    study: str
    dataset: str
    version: VersionInfo | None
    message: str
    report: dict[str, Any] = field(default_factory=dict)
    quarantine_uri: str | None = None


def dataset_name_for(path: str) -> str:
    """Default dataset name: the file or directory name without format extensions
    (those any registered reader claims)."""
    name = posixpath.basename(path.rstrip("/"))
    suffixes = sorted(
        {s for m in modalities().values() for s in m.suffixes()}, key=len, reverse=True
    )
    for ext in suffixes:
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "dataset"


def modality_of_landed(ws: Workspace, path: str) -> str:
    """The modality a landed path belongs to: ``<landing>/<study>/<modality>/<file>``.

    Raises
    ------
    InputError
        Rule ``modality`` when the folder names no registered modality.
    """
    zone = ws.settings.resolved_landing_zone.rstrip("/")
    rel = path[len(zone) :].strip("/") if path.startswith(zone) else path
    parts = rel.split("/")
    name = parts[1] if len(parts) >= 3 else ""
    try:
        return modality(name).name
    except UnknownNameError as exc:
        raise InputError(
            path, "modality", f"{exc}; land files under <landing>/<study>/<modality>/"
        ) from None


def validate_version(ws: Workspace, version: VersionInfo) -> ValidationReport:
    """Re-run the dataset type's expectations on a stored (staged or published) version,
    whatever its modality.

    A result is checked on its stored tables (read through its layout). Dask work (the
    summaries) runs on the current Dask client if one is active.
    """
    if version.kind == "result":
        spec = layout_of(version)
        base = ws.root.to_path(version.uri)
        names = spec.tables(ws.root, base) if spec.tables is not None else []
        assert spec.read_table is not None
        tables = {n: spec.read_table(ws.root, base, n) for n in names}
        return _check(version, Summaries(tables))
    m = modality(version.modality)
    return _check(version, m.summarize(ws, version))


def _check(version: VersionInfo, summaries: Summaries) -> ValidationReport:
    dtype = dataset_type(version.dataset_type)
    return run_expectations(
        dataset_type=dtype.name,
        dataset_type_version=dtype.version,
        suites=dtype.expectations,
        tables=dict(summaries.tables),
        params=dict(summaries.params),
    )


def ingest(
    ws: Workspace,
    path: str,
    *,
    study: str,
    modality: str | None = None,
    dataset: str | None = None,
    fmt: str | None = None,
    options: Mapping[str, Any] | BaseModel | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> IngestOutcome:
    """Ingest one landed file or directory into the study.

    Parameters
    ----------
    modality
        A registered modality (default: the landing-zone folder the file is in).
    fmt
        One of the modality's reader formats (default: guessed from the file).
    options
        The modality's ingest options (e.g. expression's ``{"values": "normalized"}``),
        validated by its options model.

    Returns an outcome for published, unchanged (same bytes with the same options already
    published) and quarantined files alike; raises :class:`InputError` only when the file cannot be
    taken at all (outside the landing zone, missing, unknown study, unknown modality or
    option), in which case nothing is moved or recorded.

    Dask work (validation summaries) runs on the current Dask client if one is active,
    else on the local threaded scheduler.
    """
    check_name("study", study)
    if modality is not None:
        check_name("modality", modality)
    if dataset is not None:
        check_name("dataset", dataset)
    confine_to_landing(ws, path)
    plugin = _modality(ws, path, modality)
    opts = _options(ws, plugin, path, options)
    try:
        reader = plugin.reader(fmt) if fmt is not None else None
    except UnknownNameError as exc:
        raise InputError(path, "format", str(exc)) from None
    ws.catalog.samples(study)  # unknown study: refused before anything moves
    named = dataset
    dataset = dataset or dataset_name_for(path)
    identity = landing_identity(modality=plugin.name, fmt=fmt, options=opts.model_dump())
    claim = claim_landed(ws, path)  # from here on, only this run reads (or moves) the entry
    scratch = Path(tempfile.mkdtemp(prefix="resistomics-ingest-"))
    staging = Staging(
        ws=ws,
        landed=path,
        local=Path(claim.path),
        study=study,
        dataset=dataset,
        modality=plugin.name,
        digest="",
        scratch=scratch,
        run_id=run_id,
        progress=progress,
        identity=identity,
    )
    publishing = False  # set once the publish transaction may begin
    try:
        # every reader's bounds on lines, fields and inflation (see _text_files)
        with input_limits(ws.settings.limits):
            try:
                check_landed_tree(claim)
            except InputError as exc:
                return read_failure(ws, exc, claim=claim, staging=staging)
            claimed_fs_path = ws.landing.to_path(claim.path) if "://" in claim.path else claim.path
            staging.digest = digest_landed(ws, claimed_fs_path)
            existing = find_identical_landing(
                ws, study=study, digest=staging.digest, identity=identity, dataset=named
            )
            if existing is not None:
                archive(ws, study, claim)
                return IngestOutcome(
                    status="unchanged",
                    path=path,
                    modality=plugin.name,
                    study=study,
                    dataset=existing.dataset,
                    version=existing,
                    message=f"{path}: identical bytes with the same options already published as "
                    f"{existing.ref}; no new version",
                )
            staging.local = localize(ws, claim.path, scratch)
            try:
                chosen = reader or plugin.guess_reader(str(staging.local))
                written = plugin.write(staging, chosen, opts)
                if staging.version is None:
                    raise RuntimeError(f"the {plugin.name} writer did not stage {path}")
            except InputError as exc:
                return read_failure(ws, exc, claim=claim, staging=staging)
            staged = staging.set_shape(written.shape)
            summaries = written.summaries or plugin.summarize(ws, staged)
            report_obj = _check(staged, summaries)
            report = {"stage": "validate", "file": path, **report_obj.as_dict(), **written.report}
            if not report_obj.success:
                return validation_failure(ws, report_obj, report, claim=claim, staged=staged)
            publishing = True
            return publish_landed(
                ws,
                staged,
                report,
                claim=claim,
                detail=written.detail,
                same_as="dataset" if named else "study",
            )
    except BaseException as exc:
        settled = _settled(ws, staging) if publishing else "staged"
        if settled == "published":
            # interrupted (a timeout) after the publication committed: the version stands
            # and the file is done with; the caller reports it (published_by_run)
            with contextlib.suppress(OSError):
                archive(ws, study, claim)
            raise
        # not the file's fault: what was staged goes (unless the publication may have
        # committed), the file goes back to the landing zone and is retried (by the
        # flow, or announced again by the sweep, which then finds it published)
        if settled == "staged":
            _abandon_staged(ws, staging)
        release_claim(ws, claim)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError | TimeoutError):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StorageError(
                f"{path}: [storage] {reason} (after retries); nothing was published and "
                "the file is back in the landing zone"
            ) from exc
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _settled(ws: Workspace, staging: Staging) -> Literal["staged", "published", "unknown"]:
    """What became of the staged version of an ingest interrupted while publishing:
    still ``staged`` (or gone: deferred to an identical published version), ``published``
    (or superseded: the publication committed) or ``unknown`` (the catalog cannot say;
    its files are then left for garbage collection)."""
    if staging.version is None:
        return "staged"
    try:
        status = ws.catalog.get_version(staging.version.id).status
    except DatasetNotFoundError:
        return "staged"
    except (ResistomicsError, OSError):
        return "unknown"
    done = (VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED)
    return "published" if status in done else "staged"


def published_by_run(
    ws: Workspace, path: str, *, study: str, run_id: str | None, timeout: float | None
) -> IngestOutcome | None:
    """The outcome of an ingest run ``run_id`` of ``path`` interrupted by its time limit
    after its publication committed: ``published`` (with a note on the time limit), or
    ``None`` when the run published nothing (the caller quarantines the file)."""
    if run_id is None:
        return None
    done = (VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED)
    mine = [
        v
        for v in ws.catalog.versions(study=study)
        if v.run_id == run_id and v.status in done and v.source_uri == path
    ]
    if not mine:
        return None
    version = mine[-1]
    return IngestOutcome(
        status="published",
        path=path,
        modality=version.modality,
        study=version.study,
        dataset=version.dataset,
        version=version,
        message=f"{path}: published {version.ref} ({version.dataset_type}); the time limit "
        f"of {timeout:g} s (RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS) passed after the "
        "publication committed",
        report=dict(version.validation_report or {}),
    )


def _abandon_staged(ws: Workspace, staging: Staging) -> None:
    """Remove what an ingest that raised had staged, if the storage lets us: the
    directory first, then its catalog record. Where the directory cannot be removed
    (the storage is what failed), both stay for garbage collection, as after a crash."""
    if staging.version is None:
        return
    try:
        if staging.version_dir is not None:
            ws.root.remove(staging.version_dir)
    except OSError:
        return
    ws.catalog.delete_staged(staging.version.id)


def _options(
    ws: Workspace, plugin: Modality, path: str, given: Mapping[str, Any] | BaseModel | None
) -> Any:
    """The folder's options (:func:`landing_options`), overridden by the ones given."""
    where, declared = landing_options(ws, path)
    if where is None:
        return plugin.parse_options(given, file=path)
    try:
        plugin.parse_options(declared, file=path)
    except InputError as exc:
        raise InputError(
            where, "ingest-options", f"{exc.file.removeprefix('--')}: {exc.detail}"
        ) from None
    if isinstance(given, BaseModel):
        given = given.model_dump(exclude_unset=True)
    return plugin.parse_options({**declared, **(given or {})}, file=path)


def _modality(ws: Workspace, path: str, name: str | None) -> Modality:
    if name is None:
        return modality(modality_of_landed(ws, path))
    try:
        return modality(name)
    except UnknownNameError as exc:
        raise InputError(path, "modality", str(exc)) from None


def publish_landed(
    ws: Workspace,
    staged: VersionInfo,
    report: dict[str, Any],
    *,
    claim: Claim,
    detail: str,
    same_as: Literal["dataset", "study"] = "dataset",
) -> IngestOutcome:
    """Publish a validated version (with the manifest of its files) and move its landed
    file to the archive.

    If another ingest published the same bytes with the same options meanwhile (checked
    by the catalog under the study's lock; ``same_as``: in this dataset or anywhere in
    the study), this version is dropped, its files removed, and the outcome is
    ``unchanged``. If a newer version of the dataset (a higher number) was published
    meanwhile, this one is recorded superseded at once (see
    :meth:`~resistomics.catalog.Catalog.publish_version`) and the message says so.
    """
    path = claim.landed
    manifest = write_manifest(ws.root, ws.root.to_path(staged.uri))
    version = ws.catalog.publish_version(
        staged.id, report, manifest_digest=manifest, same_as=same_as
    )
    unchanged = version.id != staged.id
    if unchanged:
        ws.root.remove(ws.root.to_path(staged.uri))  # the catalog row is gone already
    archive(ws, staged.study, claim)
    return IngestOutcome(
        status="unchanged" if unchanged else "published",
        path=path,
        modality=staged.modality,
        study=staged.study,
        dataset=version.dataset,
        version=version,
        message=(
            f"{path}: identical bytes with the same options were published as "
            f"{version.ref} by another ingest meanwhile; no new version"
            if unchanged
            else f"{path}: published {version.ref} ({detail}, {version.dataset_type})"
            + (
                f", superseded at once by a newer version of {version.study}/"
                f"{version.dataset} (staged after it, published first)"
                if version.status is VersionStatus.SUPERSEDED
                else ""
            )
        ),
        report={} if unchanged else report,
    )


def read_failure(
    ws: Workspace, exc: InputError, *, claim: Claim, staging: Staging
) -> IngestOutcome:
    """Quarantine a file that could not be read; remove whatever was staged for it."""
    if staging.version_dir is not None:
        ws.root.remove(staging.version_dir)
    if staging.version is not None:
        ws.catalog.delete_staged(staging.version.id)
    path = staging.landed
    line = exc.one_line()
    if str(staging.local) != path:  # a remote file was read from a local copy: name the original
        line = line.replace(str(staging.local), path.rstrip("/"))
    report = {
        "success": False,
        "stage": "read",
        "file": path,
        "rule": exc.rule,
        "location": str(exc.location),
        "message": line,
    }
    md = f"# Quarantined: {path}\n\nThe file could not be read.\n\n- rule: `{exc.rule}`\n- {line}\n"
    quri = quarantine(ws, staging.study, claim, report, md)
    return IngestOutcome(
        status="quarantined",
        path=path,
        modality=staging.modality,
        study=staging.study,
        dataset=staging.dataset,
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
        modality=staged.modality,
        study=staged.study,
        dataset=staged.dataset,
        version=version,
        message=str(err),
        report=report,
        quarantine_uri=quri,
    )


def ingest_timeout_error(path: str, timeout: float | None) -> InputError:
    """The error a file is quarantined for when its ingest ran out of time (rule
    ``ingest-timeout``; the limit is ``RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS``), the
    same for the flow's ingest task and ``resistomics ingest``."""
    return InputError(
        path,
        "ingest-timeout",
        f"the ingest did not finish within {timeout:g} s (RESISTOMICS_LIMITS__"
        "INGEST_TIMEOUT_SECONDS); is the file far larger than expected, or its storage stuck?",
    )


def quarantine_unread(
    ws: Workspace,
    path: str,
    error: InputError,
    *,
    study: str,
    modality: str | None = None,
    dataset: str | None = None,
    run_id: str | None = None,
) -> IngestOutcome | None:
    """Quarantine a landed entry without reading it, for ``error`` (e.g. an ingest of it
    that ran out of time: rule ``ingest-timeout``).

    What a run ``run_id`` staged for it and left behind (an ingest interrupted mid-write)
    is removed first. Returns ``None`` when the entry is no longer in the landing zone.
    """
    if run_id is not None:
        for v in ws.catalog.versions(study=study, status=VersionStatus.STAGED):
            if v.run_id == run_id:
                ws.root.remove(ws.root.to_path(v.uri))
                ws.catalog.delete_staged(v.id)
    try:
        claim = claim_landed(ws, path)
    except InputError as exc:
        if exc.rule == "file-exists":
            return None
        raise
    plugin = _modality(ws, path, modality)
    staging = Staging(
        ws=ws,
        landed=path,
        local=Path(claim.path),
        study=study,
        dataset=dataset or dataset_name_for(path),
        modality=plugin.name,
        digest="",
        scratch=Path(tempfile.gettempdir()),
        run_id=run_id,
    )
    return read_failure(ws, error, claim=claim, staging=staging)
