"""Per-file digests of a version directory, for every layout.

At publish time the pipeline writes ``manifest.json`` into the version directory: each
stored file's path relative to the directory, its SHA-256 and its size. The catalog
keeps the digest of the manifest's own bytes (``versions.manifest_digest``), so a
changed manifest is caught too. :func:`verify_manifest` re-reads the files (all, or a
sample) and names every one that is missing, resized, altered or unlisted.

The manifest knows nothing of layouts: a Zarr chunk and a Parquet file are both files.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import random
from dataclasses import dataclass
from typing import Literal

from resistomics.storage._root import DataRoot

__all__ = ["MANIFEST", "ManifestProblem", "verify_manifest", "write_manifest"]

MANIFEST = "manifest.json"
_FORMAT = "resistomics-manifest"
_BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class ManifestProblem:
    """One file (or the manifest itself) that does not match what was published."""

    file: str  # relative to the version directory
    kind: Literal["manifest", "missing", "size", "digest", "unlisted"]
    detail: str


def _files(root: DataRoot, version_dir: str) -> dict[str, int]:
    """Relative path -> size of every stored file but the manifest (one listing)."""
    base = posixpath.normpath(version_dir)
    found = root.fs.find(base, detail=True)
    sizes = {posixpath.relpath(p, base): int(info.get("size") or 0) for p, info in found.items()}
    sizes.pop(MANIFEST, None)
    return dict(sorted(sizes.items()))


def _sha256(root: DataRoot, path: str) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with root.fs.open(path, "rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


def write_manifest(root: DataRoot, version_dir: str) -> str:
    """Hash every file of a written version once; store ``manifest.json``; return its digest."""
    entries = {}
    for rel in _files(root, version_dir):
        digest, size = _sha256(root, posixpath.join(version_dir, rel))
        entries[rel] = {"sha256": digest, "size": size}
    raw = json.dumps({"format": _FORMAT, "version": 1, "files": entries}, indent=1).encode()
    with root.fs.open(posixpath.join(version_dir, MANIFEST), "wb") as f:
        f.write(raw)
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def verify_manifest(
    root: DataRoot,
    version_dir: str,
    manifest_digest: str,
    *,
    sample: int | None = None,
    rng: random.Random | None = None,
) -> tuple[int, list[ManifestProblem]]:
    """Check a version's files against its manifest.

    Parameters
    ----------
    root, version_dir
        Where the version is.
    manifest_digest
        The digest the catalog recorded for the manifest at publish time.
    sample
        Re-hash only this many files, drawn at random (``None``: every file). Missing,
        resized and unlisted files are found whatever the sample (they cost no reads).
    rng
        Source of the sample (tests pass a seeded one).

    Returns
    -------
    tuple
        How many files were re-hashed, and the problems found (empty when all match).
    """
    path = posixpath.join(version_dir, MANIFEST)
    if not root.fs.exists(path):
        return 0, [ManifestProblem(MANIFEST, "manifest", f"{MANIFEST} is missing")]
    with root.fs.open(path, "rb") as f:
        raw = f.read()
    if "sha256:" + hashlib.sha256(raw).hexdigest() != manifest_digest:
        return 0, [
            ManifestProblem(MANIFEST, "manifest", f"{MANIFEST} differs from the one published")
        ]
    listed: dict[str, dict[str, int | str]] = json.loads(raw)["files"]
    problems: list[ManifestProblem] = []
    present = _files(root, version_dir)
    for rel in sorted(set(present) - set(listed)):
        problems.append(ManifestProblem(rel, "unlisted", "file not in the published manifest"))
    candidates = []
    for rel, entry in sorted(listed.items()):
        if rel not in present:
            problems.append(ManifestProblem(rel, "missing", "file is missing"))
            continue
        size = present[rel]
        if size != entry["size"]:
            problems.append(
                ManifestProblem(rel, "size", f"{size} bytes, published with {entry['size']}")
            )
            continue
        candidates.append(rel)
    if sample is not None and sample < len(candidates):
        candidates = sorted((rng or random.Random()).sample(candidates, sample))
    for rel in candidates:
        digest, _ = _sha256(root, posixpath.join(version_dir, rel))
        if digest != listed[rel]["sha256"]:
            problems.append(
                ManifestProblem(
                    rel,
                    "digest",
                    f"SHA-256 differs from the published {str(listed[rel]['sha256'])[:12]}...",
                )
            )
    return len(candidates), problems
