"""The landing zone: which files may be taken, how they are read, archived or quarantined.

Every path that reaches the pipeline from a user, an event or the sweep passes through
here: it must lie inside the landing zone, and a processed file leaves the landing zone
for ``archive/`` (taken) or ``quarantine/`` (refused) under the data root.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import tempfile
from pathlib import Path
from typing import Any

from resistomics.errors import InputError
from resistomics.pipeline._workspace import Workspace

__all__ = ["archive", "check_landing", "digest_landed", "inside", "localize", "move", "quarantine"]


def inside(path: str, zone: str) -> bool:
    if "://" in zone or "://" in path:
        return path.rstrip("/").startswith(zone.rstrip("/") + "/")
    real, base = os.path.realpath(path), os.path.realpath(zone)
    return real == base or real.startswith(base + os.sep)


def check_landing(ws: Workspace, path: str) -> None:
    zone = ws.settings.resolved_landing_zone
    if not inside(path, zone):
        raise InputError(
            path,
            "landing-zone",
            f"only files inside the landing zone {zone} are ingested; copy the file there first "
            "(`resistomics ingest` does this for you)",
        )
    fs = ws.landing.fs
    if not fs.exists(ws.landing.to_path(path) if "://" in path else path):
        raise InputError(path, "file-exists", "no such file or directory")


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
        dst_fs.makedirs(posixpath.dirname(dst), exist_ok=True)
        src_fs.mv(src, dst, recursive=True)
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


def quarantine(ws: Workspace, study: str, path: str, report: dict[str, Any], markdown: str) -> str:
    """Move the landed file into quarantine with its report; return the quarantine URI."""
    qdir = ws.root.quarantine_path(study)
    ws.root.fs.makedirs(qdir, exist_ok=True)
    name = posixpath.basename(path.rstrip("/"))
    src_fs = ws.landing.fs
    src = ws.landing.to_path(path) if "://" in path else path
    if src_fs.exists(src):
        move(src_fs, src, ws.root.fs, posixpath.join(qdir, name))
    ws.root.write_json(posixpath.join(qdir, "report.json"), report)
    with ws.root.fs.open(posixpath.join(qdir, "report.md"), "w") as f:
        f.write(markdown)
    return ws.root.to_url(qdir)


def archive(ws: Workspace, study: str, path: str) -> None:
    """Move a processed landed file out of the landing zone (kept under archive/)."""
    src = ws.landing.to_path(path) if "://" in path else path
    if not ws.landing.fs.exists(src):
        return
    dst = ws.root.path(
        "archive", study, Path(tempfile.mktemp(dir="")).name, posixpath.basename(src.rstrip("/"))
    )
    move(ws.landing.fs, src, ws.root.fs, dst)


def digest_landed(ws: Workspace, fs_path: str) -> str:
    from resistomics.storage import digest_path

    return digest_path(ws.landing.fs, fs_path)
