"""Garbage collection and integrity checks of the data root.

Rules (ARCHITECTURE.md, "Storage"): a staged version older than the cutoff is a crashed
or abandoned write; a ``datasets/<study>/<dataset>/<version>`` directory that no
catalog version references is an unpublished write that never reached the catalog.
Both go. A directory any catalog row names, quarantine folders and the archive are
never touched, and nothing is removed when the catalog and the root disagree about
more than a few directories (``settings.gc_max_disagreement``).
"""

from __future__ import annotations

import posixpath
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from resistomics.catalog import VersionInfo, VersionStatus
from resistomics.errors import RootMismatchError
from resistomics.publishing import Workspace, layout_of
from resistomics.storage import digest_path, verify_manifest

__all__ = ["Finding", "IntegrityCheck", "check_integrity", "collect_garbage"]


@dataclass(frozen=True)
class Finding:
    """One thing garbage collection removed (or would remove, in a dry run)."""

    kind: Literal["staged-version", "unreferenced-directory", "abandoned-landing"]
    path: str
    ref: str | None
    age_hours: float
    removed: bool


@dataclass(frozen=True)
class IntegrityCheck:
    """One check of one version (or archived source)."""

    ref: str
    status: str
    check: Literal["exists", "opens", "shape", "files", "source-digest"]
    result: Literal["ok", "warning", "problem"]
    detail: str


def _aware(t: datetime | None) -> datetime | None:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _dir_mtime(ws: Workspace, path: str, fs: Any = None) -> datetime | None:
    """Newest modification time inside ``path`` (a write in progress keeps it fresh);
    on the data root's file system unless ``fs`` is given."""
    fs = fs if fs is not None else ws.root.fs
    infos = list(fs.find(path, withdirs=True, detail=True).values()) or [fs.info(path)]
    times = []
    for info in infos:
        value = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        if value is None:
            continue
        times.append(
            value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
        )
    return max((_aware(t) for t in times if t is not None), default=None)  # type: ignore[type-var]


#: The temporary name of a copy into the landing zone made by ``resistomics ingest``
#: (pipeline._landing.land): ``.<name>.<8 hex>.partial``. Only these are ours to remove;
#: other tools' in-flight names may belong to a transfer still running.
_OUR_PARTIAL = re.compile(r"^\..+\.[0-9a-f]{8}\.partial$")


def _abandoned_landings(ws: Workspace) -> list[str]:
    """Partial copies under ``<landing>/<study>/<modality>/`` (a killed ``ingest`` copy)."""
    fs = ws.landing.fs
    base = ws.landing.path()
    if not fs.exists(base):
        return []
    found = []
    for study_dir in fs.ls(base, detail=False):
        if posixpath.basename(study_dir).startswith(".") or not fs.isdir(study_dir):
            continue  # .intake/ holds claims, released by the sweep
        for modality_dir in fs.ls(study_dir, detail=False):
            if not fs.isdir(modality_dir):
                continue
            found += [
                e
                for e in fs.ls(modality_dir, detail=False)
                if _OUR_PARTIAL.match(posixpath.basename(e.rstrip("/")))
            ]
    return found


def _version_dirs(ws: Workspace) -> list[str]:
    """Every ``datasets/<study>/<dataset>/<version>`` directory under the root."""
    fs = ws.root.fs
    base = ws.root.path("datasets")
    if not fs.exists(base):
        return []
    found = []
    for study_dir in fs.ls(base, detail=False):
        if not fs.isdir(study_dir):
            continue
        for dataset_dir in fs.ls(study_dir, detail=False):
            if fs.isdir(dataset_dir):
                found += [posixpath.normpath(p) for p in fs.ls(dataset_dir, detail=False)]
    return found


def collect_garbage(
    ws: Workspace,
    *,
    older_than: timedelta,
    dry_run: bool = False,
    now: datetime | None = None,
    max_disagreement: int | None = None,
) -> list[Finding]:
    """Remove staged versions, unreferenced version directories and abandoned partial
    copies in the landing zone (``.<name>.<uid>.partial``) older than ``older_than``.

    A directory that any catalog version names, whatever its status, is never removed.
    Before removing anything, the catalog and the data root are compared: when more
    than ``max_disagreement`` published/superseded/quarantined versions have no
    directory, plus version directories have no catalog row, the catalog and this
    root do not belong together (a moved or wrong root, a catalog of another root) and
    garbage collection refuses with :class:`~resistomics.errors.RootMismatchError`,
    removing nothing.

    Parameters
    ----------
    ws
        The workspace.
    older_than
        Only what has not changed for this long goes: a younger staged version may be
        an ingest still running.
    dry_run
        Report without removing.
    now
        The current time (tests).
    max_disagreement
        How many directories the catalog and the root may disagree about (crashed
        writes, a version removed by hand); ``settings.gc_max_disagreement`` by default.
    """
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    limit = ws.settings.gc_max_disagreement if max_disagreement is None else max_disagreement
    versions = ws.catalog.versions()
    named = {posixpath.normpath(ws.root.to_path(v.uri)): v for v in versions}
    on_disk = _version_dirs(ws)
    fs = ws.root.fs
    missing = [
        v for path, v in named.items() if v.status != VersionStatus.STAGED and not fs.exists(path)
    ]
    unreferenced = [p for p in on_disk if p not in named]
    if len(missing) + len(unreferenced) > limit:
        example = (
            f"e.g. {missing[0].ref} expects {ws.root.to_path(missing[0].uri)}"
            if missing
            else f"e.g. {unreferenced[0]}"
        )
        raise RootMismatchError(
            f"garbage collection refused: {len(missing)} catalog version(s) have no directory "
            f"under {ws.root.url} and {len(unreferenced)} version directory(ies) are named by "
            f"no catalog row ({example}); more than gc_max_disagreement={limit}, so the "
            "catalog and the data root do not match (moved or wrong root?); nothing removed",
            place=ws.root.url,
        )

    # A lost acknowledgement of the staging transaction leaves a second staged row
    # naming the directory its retry staged (and may have published): only the row goes.
    shared = Counter(posixpath.normpath(ws.root.to_path(v.uri)) for v in versions)
    found: list[Finding] = []
    for v in versions:
        created = _aware(v.created_at)
        if v.status != VersionStatus.STAGED or created is None or created > cutoff:
            continue
        path = ws.root.to_path(v.uri)
        if not dry_run:
            if shared[posixpath.normpath(path)] == 1:
                ws.root.remove(path)
            shared[posixpath.normpath(path)] -= 1
            ws.catalog.delete_staged(v.id)
        age = (now - created).total_seconds() / 3600
        found.append(Finding("staged-version", path, v.ref, round(age, 2), not dry_run))

    for version_dir in unreferenced:
        mtime = _dir_mtime(ws, version_dir)
        if mtime is not None and mtime > cutoff:
            continue
        if not dry_run:
            ws.root.remove(version_dir)
        age = (now - mtime).total_seconds() / 3600 if mtime is not None else float("nan")
        found.append(
            Finding("unreferenced-directory", version_dir, None, round(age, 2), not dry_run)
        )

    for partial in _abandoned_landings(ws):
        mtime = _dir_mtime(ws, partial, ws.landing.fs)
        if mtime is not None and mtime > cutoff:
            continue  # a copy may still be running
        if not dry_run:
            ws.landing.fs.rm(partial, recursive=True)
        age = (now - mtime).total_seconds() / 3600 if mtime is not None else float("nan")
        found.append(Finding("abandoned-landing", partial, None, round(age, 2), not dry_run))
    return found


def _open_check(ws: Workspace, v: VersionInfo, path: str) -> list[IntegrityCheck]:
    """Open a version through its layout and compare the shape with the catalog's."""
    status = v.status.value
    spec = layout_of(v)
    if spec.inspect is None:
        return [IntegrityCheck(v.ref, status, "opens", "warning", f"{spec.spec} is only planned")]
    found = spec.inspect(ws.root, path)
    checks = [IntegrityCheck(v.ref, status, "opens", "ok", f"{spec.spec}: {found.detail}")]
    if found.shape is not None and v.shape and tuple(found.shape) != tuple(v.shape):
        checks.append(
            IntegrityCheck(
                v.ref,
                status,
                "shape",
                "problem",
                f"store holds {' x '.join(map(str, found.shape))}, catalog says "
                f"{' x '.join(map(str, v.shape))}",
            )
        )
    return checks


def _archived_sources(ws: Workspace, study: str) -> list[str]:
    """Archived landed files of a study: ``archive/<study>/<uid>/<name>``."""
    fs = ws.root.fs
    base = ws.root.path("archive", study)
    if not fs.exists(base):
        return []
    return [e for d in fs.ls(base, detail=False) if fs.isdir(d) for e in fs.ls(d, detail=False)]


def _files_check(
    ws: Workspace, v: VersionInfo, path: str, *, sample: int | None, rng: random.Random
) -> list[IntegrityCheck]:
    """The version's stored files against the manifest recorded at publish time."""
    status = v.status.value
    if v.manifest_digest is None:
        return [
            IntegrityCheck(
                v.ref,
                status,
                "files",
                "warning",
                "no manifest (published before per-file digests were recorded): "
                "its files cannot be verified",
            )
        ]
    hashed, problems = verify_manifest(ws.root, path, v.manifest_digest, sample=sample, rng=rng)
    if problems:
        return [
            IntegrityCheck(
                v.ref, status, "files", "problem", f"{posixpath.join(path, p.file)}: {p.detail}"
            )
            for p in problems
        ]
    return [
        IntegrityCheck(
            v.ref, status, "files", "ok", f"{hashed} file(s) re-hashed match the manifest"
        )
    ]


def check_integrity(
    ws: Workspace,
    *,
    verify_sources: bool = True,
    sample: int | None = None,
    seed: int | None = None,
) -> list[IntegrityCheck]:
    """Check every published or superseded version, and the archive's digests.

    Each version's location must exist and open through its layout (sparse matrices
    through their reader, Parquet files through their footers) with the shape the
    catalog records, and its files must match the manifest written at publish time
    (SHA-256 and size per file, whatever the layout): an altered, missing, resized or
    extra file is a problem naming the file; a version published before manifests is a
    warning.
    With ``verify_sources``, every archived landed file is re-hashed: its digest must
    be that of a version of its study (the content digest of ingested data is the
    digest of its source file), and every ingested version should find its source.

    Parameters
    ----------
    ws
        The workspace.
    verify_sources
        Re-hash the archived landed files.
    sample
        Re-hash at most this many files per version, drawn at random (the nightly
        check); ``None`` re-hashes every file of every version (complete, on demand).
        Missing, resized and unlisted files are found either way.
    seed
        Seed of the sample (a rerun with the same seed checks the same files).
    """
    rng = random.Random(seed)
    checks: list[IntegrityCheck] = []
    live = [
        v
        for v in ws.catalog.versions()
        if v.status in (VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED)
    ]
    for v in live:
        path = ws.root.to_path(v.uri)
        if not ws.root.fs.exists(path):
            checks.append(
                IntegrityCheck(v.ref, v.status.value, "exists", "problem", f"{path} is missing")
            )
            continue
        checks.append(IntegrityCheck(v.ref, v.status.value, "exists", "ok", path))
        checks += _files_check(ws, v, path, sample=sample, rng=rng)
        try:
            checks += _open_check(ws, v, path)
        except (OSError, ValueError, KeyError) as exc:
            # zarr, anndata and pyarrow report damaged data as one of these
            checks.append(
                IntegrityCheck(
                    v.ref, v.status.value, "opens", "problem", f"{type(exc).__name__}: {exc}"
                )
            )
    if not verify_sources:
        return checks
    by_study: dict[str, list[VersionInfo]] = defaultdict(list)
    for v in live:
        by_study[v.study].append(v)
    for study in sorted(by_study):
        digests = {v.digest: v for v in by_study[study]}
        matched: set[str] = set()
        for src in _archived_sources(ws, study):
            digest = digest_path(ws.root.fs, src)
            owner = digests.get(digest)
            if owner is None:
                checks.append(
                    IntegrityCheck(
                        f"{study}:archive",
                        "archived",
                        "source-digest",
                        "problem",
                        f"{ws.root.to_url(src)} ({digest}) matches no version of {study}: "
                        "the archived copy changed or its version was removed",
                    )
                )
            else:
                matched.add(digest)
                checks.append(
                    IntegrityCheck(
                        owner.ref, owner.status.value, "source-digest", "ok", ws.root.to_url(src)
                    )
                )
        for v in by_study[study]:
            if v.source_uri and v.digest not in matched:
                checks.append(
                    # A warning, not a problem: a landing zone on another backend
                    # than the data root is not archived (pipeline._archive).
                    IntegrityCheck(
                        v.ref,
                        v.status.value,
                        "source-digest",
                        "warning",
                        f"no archived source with digest {v.digest} (source was {v.source_uri})",
                    )
                )
    return checks
