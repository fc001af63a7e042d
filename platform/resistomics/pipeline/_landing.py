"""The landing zone: which files may be taken, how they are read, archived or quarantined.

Every path that reaches the pipeline from a user, an event or the sweep passes through
here: it must lie inside the landing zone, and a processed file leaves the landing zone
for ``archive/`` (taken) or ``quarantine/`` (refused) under the data root.
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import shutil
import socket
import stat
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from resistomics.catalog import VersionInfo
from resistomics.errors import InputError
from resistomics.names import check_file_name
from resistomics.pipeline._workspace import Workspace

if TYPE_CHECKING:
    from resistomics.storage import DataRoot

__all__ = [
    "INTAKE",
    "IN_FLIGHT_SUFFIXES",
    "Claim",
    "archive",
    "check_landed_tree",
    "claim_landed",
    "confine_to_landing",
    "digest_landed",
    "find_identical_landing",
    "in_flight",
    "inside",
    "land",
    "land_remote",
    "landing_identity",
    "landing_options",
    "localize",
    "move",
    "quarantine",
    "release_abandoned_claims",
    "release_claim",
]

# Private intake directory inside the landing zone: a claimed file is renamed here before
# anything reads it. Inside the landing zone so the rename stays on one file system (and
# is atomic); hidden so the sweep never announces what is in it.
INTAKE = ".intake"
_CLAIM_RECORD = ".claim.json"

# Names of files still being written: hidden ones (ours: ``.<name>.<uid>.partial``) and
# the temporary suffixes of common copy tools (rsync --partial-dir aside, browsers, WinSCP).
IN_FLIGHT_SUFFIXES = (".part", ".tmp", ".partial", ".crdownload", ".filepart")


def in_flight(name: str) -> bool:
    """Whether a landing-zone name marks a file still being copied (never announced or read)."""
    return name.startswith(".") or name.lower().endswith(IN_FLIGHT_SUFFIXES)


def inside(path: str, zone: str, *, follow: bool = True) -> bool:
    """Whether ``path`` lies strictly inside ``zone`` (local paths: after realpath).

    With ``follow=False`` the entry itself is not resolved (only the directories above
    it): a symlink in the zone is inside it, wherever it points.
    """
    if "://" in zone or "://" in path:
        return path.rstrip("/").startswith(zone.rstrip("/") + "/")
    if follow:
        real = os.path.realpath(path)
    else:
        absolute = os.path.abspath(path)
        real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    return real.startswith(os.path.realpath(zone) + os.sep)


def confine_to_landing(ws: Workspace, path: str) -> str:
    """The landing-zone path ``path`` names, or an :class:`InputError`.

    The entry itself is not followed (a symlink is judged as a symlink, after it is
    claimed); every directory above it must resolve inside the landing zone, and no part
    of the path below the zone may be hidden: ``.intake/`` and ``.<name>.partial`` are
    files in flight, never ingested from outside.
    """
    zone = ws.settings.resolved_landing_zone
    if "://" in path or "://" in zone:
        parts = path.rstrip("/").split("/")
        entry = "/".join(parts)
        rel = entry.removeprefix(zone.rstrip("/") + "/") if entry != zone.rstrip("/") else ""
        ok = rel != entry and bool(rel) and ".." not in rel.split("/")
    else:
        absolute = os.path.abspath(path)
        parent = os.path.realpath(os.path.dirname(absolute))
        entry = os.path.join(parent, os.path.basename(absolute))
        rel = os.path.relpath(entry, os.path.realpath(zone))
        ok = bool(os.path.basename(absolute)) and not rel.startswith(("..", os.sep)) and rel != "."
    if not ok:
        raise InputError(
            path,
            "landing-zone",
            f"only files inside the landing zone {zone} are ingested; copy the file there first "
            "(`resistomics ingest` does this for you)",
        )
    for stored in ("datasets", "archive", "quarantine", "catalog.sqlite"):
        # a landing zone configured as (or above) the data root must still never hand a
        # published version, an archive or a quarantine to ingest (which moves what it takes)
        area = ws.root.to_url(ws.root.path(stored))
        if entry.rstrip("/") == area or inside(entry, area, follow=False):
            raise InputError(
                path,
                "landing-zone",
                f"is stored data of the data root ({stored}/), never a landed file",
            )
    if any(in_flight(part) for part in rel.split("/" if "://" in entry else os.sep)):
        raise InputError(
            path,
            "partial",
            "a hidden name in the landing zone is a file still being copied or already claimed; "
            "it is never ingested",
        )
    return entry


@dataclass(frozen=True)
class Claim:
    """A landed entry taken out of the landing zone into a private intake directory.

    ``landed`` is the path as it was announced (what messages name); ``path`` is where
    the entry now is (what is hashed, read, archived or quarantined); nobody else writes
    to it: writers of the landing zone see the name free again.
    """

    landed: str
    path: str
    directory: str


def claim_landed(ws: Workspace, path: str) -> Claim:
    """Take the landed entry at ``path`` for this process, atomically on a local landing zone.

    Raises
    ------
    InputError
        ``landing-zone`` / ``partial`` for a path outside the zone or in flight;
        ``file-exists`` if the entry is not there (another run claimed it first, or it
        was already processed).
    """
    entry = confine_to_landing(ws, path)
    fs = ws.landing.fs
    remote = "://" in entry
    src = ws.landing.to_path(entry) if remote else entry
    release_abandoned_claims(ws)
    if not (fs.exists(src) or (not remote and os.path.islink(src))):
        raise InputError(path, "file-exists", "no such file or directory")
    directory = ws.landing.path(INTAKE, uuid.uuid4().hex[:16])
    fs.makedirs(directory, exist_ok=True)
    record = {"landed": path, **_owner()}
    with fs.open(posixpath.join(directory, _CLAIM_RECORD), "w") as f:
        json.dump(record, f)
    target = posixpath.join(directory, posixpath.basename(src.rstrip("/")))
    try:
        if remote:
            # Object stores have no rename: copy, then delete. Not atomic: two runs may
            # both copy the same object; the catalog's digest check keeps them from
            # publishing it twice.
            move(fs, src, fs, target)
        else:
            os.rename(src, target)
    except FileNotFoundError:
        fs.rm(directory, recursive=True)
        raise InputError(
            path, "file-exists", "no such file or directory (claimed by another run)"
        ) from None
    return Claim(
        landed=path, path=ws.landing.to_url(target) if remote else target, directory=directory
    )


def _owner() -> dict[str, Any]:
    """Who claims: host, process id, the process's start time (so a reused pid is not
    taken for the owner) and when."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "process_start": _process_start(os.getpid()),
        "claimed_at": datetime.now(UTC).isoformat(),
    }


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from ``/proc``; ``None``
    where there is no ``/proc`` (then only whether the pid lives is checked)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        with open("/proc/stat", "rb") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith(b"btime "))
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    # field 22 of stat (the 20th after the command name): start time in clock ticks
    # since boot
    return round(boot + int(fields[19]) / os.sysconf("SC_CLK_TCK"), 2)


def _owner_gone(
    record: Mapping[str, Any], *, host: str, now: datetime, stale: timedelta, mtime: datetime | None
) -> str | None:
    """Why a claim's owner is taken as gone (``None``: it may still be working)."""
    if record.get("host") == host:
        pid = int(record.get("pid") or 0)
        if not _alive(pid):
            return f"process {pid} on this host is gone"
        started, recorded = _process_start(pid), record.get("process_start")
        if started is not None and recorded is not None and abs(started - float(recorded)) > 1:
            return f"process {pid} on this host is another process now (pid reused)"
        return None
    claimed: datetime | None
    try:
        claimed = datetime.fromisoformat(str(record["claimed_at"]))
    except (KeyError, ValueError):
        claimed = mtime  # a claim recorded before claimed_at was: the record's own age
    if claimed is None:
        return None
    if claimed.tzinfo is None:
        claimed = claimed.replace(tzinfo=UTC)
    if now - claimed > stale:
        hours = (now - claimed).total_seconds() / 3600
        return f"claimed on host {record.get('host')!r} {hours:.1f} h ago (stale after {stale.total_seconds() / 3600:g} h)"
    return None


def release_abandoned_claims(ws: Workspace, *, now: datetime | None = None) -> list[str]:
    """Put entries claimed by a run that died back where they landed.

    A run killed after its claim leaves the entry in ``.intake/``; the next claim (or
    sweep) returns it to its landing path, unless another file has landed there since.
    The claim records host, pid, the process's start time and when it was made: a
    claim of this host is given back once its process is gone (or its pid belongs to a
    newer process); a claim of another host, whose process cannot be checked from here,
    once it is older than ``settings.claim_stale_after_hours``.
    Returns the landed paths put back.

    Parameters
    ----------
    ws
        The workspace.
    now
        The current time (tests).
    """
    fs = ws.landing.fs
    intake = ws.landing.path(INTAKE)
    if not fs.isdir(intake):
        return []
    now = now or datetime.now(UTC)
    stale = timedelta(hours=ws.settings.claim_stale_after_hours)
    released = []
    host = socket.gethostname()
    for directory in fs.ls(intake, detail=False):
        record_path = posixpath.join(directory, _CLAIM_RECORD)
        try:
            with fs.open(record_path, "r") as f:
                record = json.load(f)
            mtime = _mtime(fs.info(record_path))
        except (FileNotFoundError, ValueError):
            _drop_unrecorded(fs, directory, now=now, stale=stale)
            continue
        if _owner_gone(record, host=host, now=now, stale=stale, mtime=mtime) is None:
            continue
        landed = str(record["landed"])
        try:
            dst = ws.landing.to_path(landed) if "://" in landed else landed
            if _give_back(fs, directory, dst, remote="://" in landed):
                released.append(landed)
        except FileNotFoundError:  # another run gave it back (or removed it) first
            continue
    return released


def _drop_unrecorded(fs: Any, directory: str, *, now: datetime, stale: timedelta) -> None:
    """Remove a claim directory left without a readable record once it is stale.

    The record is written before the entry is renamed in, so such a directory (a run
    killed between the two) never holds a landed entry; one that does is left alone.
    """
    try:
        entries = [
            e for e in fs.ls(directory, detail=False) if posixpath.basename(e) != _CLAIM_RECORD
        ]
        mtime = _mtime(fs.info(directory))
    except FileNotFoundError:
        return
    if not entries and mtime is not None and now - mtime > stale:
        fs.rm(directory, recursive=True)


def _mtime(info: Mapping[str, Any]) -> datetime | None:
    value = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(float(value), UTC)


def _give_back(fs: Any, directory: str, dst: str, *, remote: bool) -> bool:
    """Move a dead run's claimed entry back to ``dst`` (if free); drop the claim."""
    entries = [e for e in fs.ls(directory, detail=False) if posixpath.basename(e) != _CLAIM_RECORD]
    given_back = False
    if len(entries) == 1 and not fs.exists(dst):
        if remote:
            move(fs, entries[0], fs, dst)
        else:
            os.rename(entries[0], dst)
        given_back = True
    if given_back or not entries:
        fs.rm(directory, recursive=True)
    return given_back


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def check_landed_tree(claim: Claim) -> None:
    """Refuse, before reading, what must not be read: links, FIFOs, devices, bad names.

    Nothing of a link's target is read or named: a 10x directory whose ``barcodes.tsv``
    points at ``/etc/passwd`` is refused as a link, and the error names only the member.
    Object stores hold only regular objects; there, only the name is checked.
    """
    landed = claim.landed.rstrip("/")
    try:
        check_file_name(posixpath.basename(landed))
    except InputError as exc:
        raise InputError(landed, exc.rule, exc.detail) from None
    if "://" in claim.path:
        return
    _check_member(claim.path, landed)
    if not os.path.isdir(claim.path) or os.path.islink(claim.path):
        return
    for dirpath, dirnames, filenames in os.walk(claim.path):
        for name in sorted(dirnames + filenames):
            member = os.path.join(dirpath, name)
            shown = posixpath.join(landed, os.path.relpath(member, claim.path))
            _check_member(member, shown)


def _check_member(path: str, shown: str) -> None:
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise InputError(
            shown,
            "symlink",
            "is a symbolic link; land the file itself (links are never followed out of the "
            "landing zone)",
        )
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(
            shown,
            "file-type",
            "is not a regular file (a FIFO, socket or device); land a regular file",
        )


def land(source: Path, directory: Path) -> Path:
    """Copy ``source`` (a file or directory) into ``directory`` of the landing zone atomically.

    The copy is written under a hidden temporary name (``.<name>.<uid>.partial``, which
    the sweep and ingest ignore), flushed to disk, then renamed to ``<name>``: a copy that
    is interrupted (``kill -9``, a full disk) never appears under the final name. A file
    already waiting under that name is replaced; a directory is refused.

    Raises
    ------
    InputError
        ``symlink`` / ``file-type`` for a member of ``source`` that is a link, FIFO or
        device (checked before anything is copied); ``landed-exists`` for a directory of
        that name already waiting.
    """
    check_landed_tree(Claim(landed=str(source), path=str(source.resolve()), directory=""))
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    partial = directory / f".{source.name[:200]}.{uuid.uuid4().hex[:8]}.partial"
    try:
        if source.is_dir():
            if target.exists():
                raise InputError(
                    str(target),
                    "landed-exists",
                    "a directory of that name already waits in the landing zone; ingest it "
                    "or remove it first",
                )
            shutil.copytree(source, partial, copy_function=_copy_synced)
            for dirpath, _, _ in os.walk(partial):
                _fsync_directory(dirpath)
            os.rename(partial, target)
        else:
            _copy_synced(str(source), str(partial))
            os.replace(partial, target)
        _fsync_directory(str(directory))
    finally:
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
        elif partial.exists():
            partial.unlink()
    return target


def land_remote(source: Path, landing: DataRoot, *parts: str) -> str:
    """Upload ``source`` (a file or directory) to ``<landing>/<parts...>/`` on an object store.

    The URL it is ingested from is returned. A file is one PUT (a multipart upload is
    completed as one object), so an interrupted upload never appears under its name. A
    directory is uploaded under a hidden ``.<name>.<uid>.partial/`` prefix first (the
    sweep and ingest ignore hidden names) and then copied to ``<name>/`` object by object:
    object stores have no rename of a prefix. The same checks as :func:`land` come first.

    Raises
    ------
    InputError
        As :func:`land`.
    """
    check_landed_tree(Claim(landed=str(source), path=str(source.resolve()), directory=""))
    fs = landing.fs
    directory = landing.path(*parts)
    target = posixpath.join(directory, source.name)
    if source.is_dir():
        if fs.exists(target):
            raise InputError(
                landing.to_url(target),
                "landed-exists",
                "a directory of that name already waits in the landing zone; ingest it "
                "or remove it first",
            )
        partial = posixpath.join(directory, f".{source.name[:200]}.{uuid.uuid4().hex[:8]}.partial")
        members = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
        try:
            for member in members:
                fs.put_file(str(source / member), posixpath.join(partial, member))
            for member in members:
                fs.copy(posixpath.join(partial, member), posixpath.join(target, member))
        finally:
            fs.invalidate_cache()
            if fs.exists(partial):
                fs.rm(partial, recursive=True)
            fs.invalidate_cache()
    else:
        fs.put_file(str(source), target)
    return landing.to_url(target)


def _copy_synced(src: str, dst: str) -> None:
    with open(src, "rb") as r, open(dst, "xb") as w:
        shutil.copyfileobj(r, w, 8 << 20)
        w.flush()
        os.fsync(w.fileno())


def _fsync_directory(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def landing_identity(
    *, modality: str, fmt: str | None, options: Mapping[str, Any]
) -> dict[str, Any]:
    """The ingest options that, with the bytes and the dataset, identify a landing.

    The same bytes landed again with the same options are the version already published;
    with another ``--format`` or modality option (expression's ``--values``, ``--sample``)
    they are a different dataset version (stored under the version's
    ``parameters["landing"]``).
    """
    return {"modality": modality, "format": fmt, **options}


#: Ingest options for the files landing in a folder of the landing zone, written next to
#: them (hidden: never announced, never ingested itself).
OPTIONS_FILE = ".ingest-options.yaml"


def landing_options(ws: Workspace, path: str) -> tuple[str | None, dict[str, Any]]:
    """The ingest options the landed entry's folder declares in :data:`OPTIONS_FILE`.

    Files that arrive by events or the sweep carry no command-line options; the folder
    they land in (``<landing>/<study>/<modality>/``) can say them once for all its files::

        keep_all_missing: true          # options for every file of the folder
        files:                          # then, by file-name pattern (fnmatch), in order
          "Su_*.csv.gz": {extra_columns: [WHO_status]}

    Returns the options file's path (None when the folder has none) and the options that
    apply to ``path``, not yet validated (the modality's options model does that).

    Raises
    ------
    InputError
        Rule ``ingest-options``, placed at the options file: not YAML, not a mapping, or
        a ``files`` entry that is not a mapping of options.
    """
    import yaml

    remote = "://" in path
    entry = path.rstrip("/")
    folder = posixpath.dirname(entry) if remote else os.path.dirname(os.path.abspath(entry))
    where = posixpath.join(folder, OPTIONS_FILE) if remote else os.path.join(folder, OPTIONS_FILE)
    fs = ws.landing.fs
    target = ws.landing.to_path(where) if remote else where
    if not fs.exists(target):
        return None, {}
    try:
        raw = yaml.safe_load(fs.cat_file(target).decode("utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(where, "ingest-options", f"not readable as YAML: {first}") from None
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise InputError(where, "ingest-options", "must be a mapping of option: value")
    options = {str(k): v for k, v in raw.items() if k != "files"}
    by_file = raw.get("files") or {}
    if not isinstance(by_file, Mapping):
        raise InputError(where, "ingest-options", "'files' must map file patterns to options")
    name = posixpath.basename(entry)
    for pattern, values in by_file.items():
        if not isinstance(values, Mapping):
            raise InputError(
                where, "ingest-options", f"files: {pattern!r} must map option names to values"
            )
        if fnmatch.fnmatchcase(name, str(pattern)):
            options.update({str(k): v for k, v in values.items()})
    return where, options


def localize(ws: Workspace, path: str, scratch: Path) -> Path:
    """A local copy of a remote landed file (local files are used in place)."""
    if "://" not in path:
        return Path(path)
    fs = ws.landing.fs
    remote = ws.landing.to_path(path)
    target = scratch / posixpath.basename(remote.rstrip("/"))
    fs.get(remote, str(target), recursive=fs.isdir(remote))
    return target


def move(src_fs: Any, src: str, dst_fs: Any, dst: str) -> None:
    """Move a file or directory tree to ``dst``, possibly on another file system.

    fsspec's recursive ``mv`` cannot cross backends, and on object stores it tries to
    copy the directory "key" itself (s3fs: NoSuchKey), so outside the local case files
    are copied one by one and the source is removed only after every copy succeeded.
    """
    from fsspec.implementations.local import LocalFileSystem

    src = src.rstrip("/")
    if isinstance(src_fs, LocalFileSystem) and isinstance(dst_fs, LocalFileSystem):
        os.makedirs(posixpath.dirname(dst), exist_ok=True)
        shutil.move(src, dst)  # a rename where it can; moves a symlink as a link, unread
        return
    files = sorted(src_fs.find(src)) if src_fs.isdir(src) else [src]
    for f in files:
        target = dst if f == src else posixpath.join(dst, posixpath.relpath(f, src))
        dst_fs.makedirs(posixpath.dirname(target), exist_ok=True)
        if src_fs is dst_fs:
            src_fs.copy(f, target)
        else:
            with src_fs.open(f, "rb") as r, dst_fs.open(target, "wb") as w:
                shutil.copyfileobj(r, w, 8 << 20)
    src_fs.rm(src, recursive=True)


def quarantine(
    ws: Workspace, study: str, claim: Claim, report: dict[str, Any], markdown: str
) -> str:
    """Move the claimed entry into quarantine with its report; return the quarantine URI."""
    qdir = ws.root.quarantine_path(study)
    ws.root.fs.makedirs(qdir, exist_ok=True)
    src_fs = ws.landing.fs
    src = ws.landing.to_path(claim.path) if "://" in claim.path else claim.path
    if src_fs.exists(src) or os.path.islink(src):
        move(src_fs, src, ws.root.fs, posixpath.join(qdir, posixpath.basename(src.rstrip("/"))))
    ws.root.write_json(posixpath.join(qdir, "report.json"), report)
    with ws.root.fs.open(posixpath.join(qdir, "report.md"), "w") as f:
        f.write(markdown)
    _drop_intake(ws, claim)
    return ws.root.to_url(qdir)


def archive(ws: Workspace, study: str, claim: Claim) -> None:
    """Move a processed claimed entry out of the intake (kept under archive/)."""
    src = ws.landing.to_path(claim.path) if "://" in claim.path else claim.path
    if ws.landing.fs.exists(src):
        dst = ws.root.path(
            "archive", study, uuid.uuid4().hex[:16], posixpath.basename(src.rstrip("/"))
        )
        move(ws.landing.fs, src, ws.root.fs, dst)
    _drop_intake(ws, claim)


def release_claim(ws: Workspace, claim: Claim) -> None:
    """Give a claimed entry back to the landing zone (a run that failed for another reason
    than the file: it is announced again and retried), unless its name was taken since."""
    fs = ws.landing.fs
    src = ws.landing.to_path(claim.path) if "://" in claim.path else claim.path
    dst = ws.landing.to_path(claim.landed) if "://" in claim.landed else claim.landed
    if (fs.exists(src) or os.path.islink(src)) and not fs.exists(dst):
        if "://" in claim.path:
            move(fs, src, fs, dst)
        else:
            os.rename(src, dst)
        _drop_intake(ws, claim)


def find_identical_landing(
    ws: Workspace, *, study: str, digest: str, identity: dict[str, Any], dataset: str | None
) -> VersionInfo | None:
    """The published (or superseded) version these bytes with these options already made.

    ``dataset`` is the name given explicitly (``None``: any dataset of the study, so a file
    delivered again under another name is still recognised). A check before any work;
    publication checks again under the study's lock (another ingest of the same bytes
    may be running now).
    """
    return ws.catalog.find_identical(study, digest=digest, landing=identity, dataset=dataset)


def _drop_intake(ws: Workspace, claim: Claim) -> None:
    """Remove the (now empty) intake directory of a claim."""
    if claim.directory and ws.landing.fs.exists(claim.directory):
        ws.landing.fs.rm(claim.directory, recursive=True)


def digest_landed(ws: Workspace, fs_path: str) -> str:
    from resistomics.storage import digest_path

    return digest_path(ws.landing.fs, fs_path)
