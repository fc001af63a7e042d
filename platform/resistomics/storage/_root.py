"""The data root: an fsspec file system plus the path conventions of the platform.

Layout under the root URL::

    landing/<study>/<modality>/<file>           files arrive here (hidden names: in flight)
    landing/.intake/<uid>/<file>                claimed by an ingest run, read only there
    archive/<study>/<uid>/<file>                landed files that were taken
    datasets/<study>/<dataset>/<version-uid>/   immutable version directories
    quarantine/<study>/<uid>/                   rejected files with their report
    catalog.sqlite                              embedded catalog (local roots only)

Versions are written under a fresh, never-reused directory and only become visible when
the catalog publishes them (write-then-publish).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.core import url_to_fs

from resistomics.errors import StorageError

__all__ = ["S3_RETRIES", "DataRoot", "digest_bytes", "digest_path", "with_retry_defaults"]

_BLOCK = 8 * 1024 * 1024

#: How an S3 data root retries (botocore's "standard" mode: 500, 502, 503, 504,
#: throttling such as SlowDown, and dropped or refused connections, with exponential
#: backoff and full jitter, at most 20 s between attempts). Eight attempts ride out a
#: minute of trouble; then the operation fails with the last error.
S3_RETRIES: dict[str, Any] = {"max_attempts": 8, "mode": "standard"}


def with_retry_defaults(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the platform's retry policy where they set none (S3 only).

    ``storage_options={"config_kwargs": {"retries": {...}}}`` overrides it; the rest of
    ``config_kwargs`` (timeouts, addressing style) is kept as given.
    """
    if not url.startswith(("s3://", "s3a://")):
        return dict(options)
    out = dict(options)
    config = dict(out.get("config_kwargs") or {})
    config.setdefault("retries", dict(S3_RETRIES))
    out["config_kwargs"] = config
    return out


def digest_bytes(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    return "sha256:" + h.hexdigest()


def digest_path(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Content digest (SHA-256) of a file, or of a directory's files in name order.

    A directory digest covers each file's relative name and bytes, so renaming a file
    inside changes it but the directory's own location does not.
    """
    h = hashlib.sha256()
    if fs.isdir(path):
        files = sorted(p for p in fs.find(path) if not posixpath.basename(p).startswith("."))
        for p in files:
            rel = posixpath.relpath(p, path)
            h.update(rel.encode() + b"\0")
            with fs.open(p, "rb") as f:
                while block := f.read(_BLOCK):
                    h.update(block)
            h.update(b"\0")
    else:
        with fs.open(path, "rb") as f:
            while block := f.read(_BLOCK):
                h.update(block)
    return "sha256:" + h.hexdigest()


@dataclass
class DataRoot:
    """The platform's storage root.

    Parameters
    ----------
    url
        fsspec URL or local path, e.g. ``/data/resistomics`` or ``s3://bucket/prefix``.
    storage_options
        Passed to fsspec (credentials, ``endpoint_url`` for an S3-compatible server).
    """

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.storage_options = with_retry_defaults(self.url, self.storage_options)
        self.fs, self._root = url_to_fs(self.url, **self.storage_options)
        self.protocol = (
            self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        )
        if self.protocol in ("file", "local"):
            self.fs.makedirs(self._root, exist_ok=True)

    # -- paths -----------------------------------------------------------------------

    def path(self, *parts: str) -> str:
        """A path inside the root, as the file system expects it (no protocol)."""
        return posixpath.join(self._root, *parts)

    def to_url(self, path: str) -> str:
        """The URL of a file-system path (for people and other processes to open)."""
        if self.protocol in ("file", "local"):
            return path
        return f"{self.protocol}://{path}"

    def relative_uri(self, path: str) -> str:
        """What the catalog stores for a path inside the root: the path relative to it.

        A catalog of relative URIs survives the root being moved, remounted or reached
        through a symlink: :meth:`to_path` resolves them against wherever the root is now.
        """
        rel = posixpath.relpath(posixpath.normpath(path), posixpath.normpath(self._root))
        if rel in (".", "..") or rel.startswith("../"):
            raise StorageError(f"{path} is not inside the data root {self.url}")
        return rel

    def to_path(self, url: str) -> str:
        """The file-system path of a URI stored in the catalog.

        Relative URIs are inside this root; absolute paths and URLs (catalogs written
        before URIs were relative, or data outside the root) are taken as they are.
        """
        if "://" in url:
            return str(url_to_fs(url, **self.storage_options)[1])
        if url.startswith("/"):
            return url
        return self.path(url)

    def new_version_path(self, study: str, dataset: str) -> str:
        uid = uuid.uuid4().hex[:16]
        return self.path("datasets", _safe(study), _safe(dataset), f"v-{uid}")

    def quarantine_path(self, study: str) -> str:
        return self.path("quarantine", _safe(study), uuid.uuid4().hex[:16])

    def landing_path(self, *parts: str) -> str:
        return self.path("landing", *parts)

    # -- operations --------------------------------------------------------------------

    def mapper(self, path: str) -> Any:
        """A zarr store for ``path`` on this file system."""
        import zarr.storage

        if self.protocol in ("file", "local"):
            return zarr.storage.LocalStore(path)
        return zarr.storage.FsspecStore.from_url(
            self.to_url(path), storage_options=self.storage_options
        )

    def write_json(self, path: str, obj: Any) -> None:
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(path, "w") as f:
            json.dump(obj, f, indent=2, default=str)

    def read_json(self, path: str) -> Any:
        with self.fs.open(path, "r") as f:
            return json.load(f)

    def remove(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm(path, recursive=True)
        except OSError as exc:  # pragma: no cover - depends on the backend
            raise StorageError(f"could not remove {path}: {exc}") from exc


def _safe(name: str) -> str:
    """A name usable as one path component."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return out.strip(".") or "_"
