"""Landing-zone sweep: announce every waiting file, catching events that were missed.

Lists ``<landing>/<study>/<modality>/<entry>`` and emits ``resistomics.file.landed``
for each entry of a registered study that has been still for ``min_age_seconds`` (a
file still being copied is left for the next sweep). Hidden and temporary names are never
announced: ``.<name>.<uid>.partial`` is a copy in progress (``resistomics ingest`` lands
atomically under such a name, then renames), ``.intake/`` holds entries an ingest run has
claimed. Entries claimed by a run that died are given back first, so they are announced
again. Re-announcing is safe: ingest claims a file (moves it out of the landing zone)
before reading it, skips one that is already gone, quarantines one it cannot read, and
recognises bytes it already published.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import fsspec
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows._runtime import artifact_key, open_workspace
from flows.events import emit_file_landed
from resistomics.errors import InputError
from resistomics.names import check_name
from resistomics.pipeline import Workspace, in_flight, release_abandoned_claims

__all__ = ["LandedEntry", "find_landed", "sweep_flow"]

Status = Literal["announced", "settling", "unregistered-study", "bad-name"]


@dataclass(frozen=True)
class LandedEntry:
    path: str
    study: str
    modality: str
    kind: Literal["file", "directory"]
    size_bytes: int
    age_seconds: float | None
    status: Status


def _ignored(name: str) -> bool:
    return in_flight(name)


def _valid_name(kind: str, name: str) -> bool:
    try:
        check_name(kind, name)
    except InputError:
        return False
    return True


def _listdir(fs: fsspec.AbstractFileSystem, path: str) -> list[dict[str, Any]]:
    return sorted(
        (e for e in fs.ls(path, detail=True) if not _ignored(posixpath.basename(e["name"]))),
        key=lambda e: e["name"],
    )


def _mtime(info: dict[str, Any]) -> float | None:
    for key in ("mtime", "LastModified", "last_modified", "updated"):
        value = info.get(key)
        if value is None:
            continue
        return value.timestamp() if hasattr(value, "timestamp") else float(value)
    return None


def _size_and_mtime(
    fs: fsspec.AbstractFileSystem, info: dict[str, Any]
) -> tuple[int, float | None]:
    """Total size and newest modification time (a directory: over all its files)."""
    if info["type"] != "directory":
        return int(info.get("size") or 0), _mtime(info)
    files = fs.find(info["name"], detail=True).values()
    times = [t for t in (_mtime(f) for f in files) if t is not None]
    return sum(int(f.get("size") or 0) for f in files), max(times, default=_mtime(info))


def find_landed(
    ws: Workspace, *, min_age_seconds: float, now: float | None = None
) -> list[LandedEntry]:
    """Every entry waiting in the landing zone, with what the sweep will do with it."""
    now = time.time() if now is None else now
    fs = ws.landing.fs
    root = ws.landing.path()
    if not fs.exists(root):
        return []
    release_abandoned_claims(ws)
    registered = set(ws.catalog.studies())
    found: list[LandedEntry] = []
    for study_dir in _listdir(fs, root):
        if study_dir["type"] != "directory":
            continue
        study = posixpath.basename(study_dir["name"])
        for modality_dir in _listdir(fs, study_dir["name"]):
            if modality_dir["type"] != "directory":
                continue
            modality = posixpath.basename(modality_dir["name"])
            for entry in _listdir(fs, modality_dir["name"]):
                size, mtime = _size_and_mtime(fs, entry)
                age = None if mtime is None else max(0.0, now - mtime)
                if study not in registered:
                    status: Status = "unregistered-study"
                elif not _valid_name("modality", modality):
                    # ingest would refuse the argument without taking the file: announcing
                    # it would fail again every sweep
                    status = "bad-name"
                elif age is not None and age < min_age_seconds:
                    status = "settling"
                else:
                    status = "announced"
                found.append(
                    LandedEntry(
                        path=ws.landing.to_url(entry["name"]),
                        study=study,
                        modality=modality,
                        kind="directory" if entry["type"] == "directory" else "file",
                        size_bytes=size,
                        age_seconds=None if age is None else round(age, 1),
                        status=status,
                    )
                )
    return found


@task(name="list-landing-zone")
def list_landing_zone(min_age_seconds: float) -> list[LandedEntry]:
    with open_workspace() as ws:
        return find_landed(ws, min_age_seconds=min_age_seconds)


@task(name="announce-landed")
def announce(entries: list[LandedEntry]) -> int:
    n = 0
    for e in entries:
        if e.status == "announced":
            emit_file_landed(
                e.path,
                study=e.study,
                modality=e.modality,
                detected_by="sweep",
                size_bytes=e.size_bytes,
            )
            n += 1
    return n


@flow(name="landing-sweep", log_prints=False)
def sweep_flow(min_age_seconds: float = 60.0) -> list[dict[str, Any]]:
    """Announce every settled file in the landing zone.

    Parameters
    ----------
    min_age_seconds
        Leave entries modified more recently than this for the next sweep.

    Returns
    -------
    list of dict
        One record per entry found: path, study, modality, kind, size, age, status
        (``announced``, ``settling``, ``unregistered-study`` or ``bad-name``: a modality
        folder whose name is not a valid modality name).
    """
    entries = list_landing_zone(min_age_seconds)
    announced = announce(entries)
    rows = [asdict(e) for e in entries]
    if rows:
        create_table_artifact(
            table=rows,
            key=artifact_key("landing-sweep"),
            description=f"{announced} of {len(rows)} landed entries announced",
        )
    else:
        create_markdown_artifact(
            markdown="# Landing sweep\n\nThe landing zone is empty.\n",
            key=artifact_key("landing-sweep"),
            description="landing zone empty",
        )
    unregistered = sorted({e.study for e in entries if e.status == "unregistered-study"})
    if unregistered:
        get_run_logger().warning(
            "files wait for studies that are not registered: %s (register them with a "
            "sample sheet)",
            ", ".join(unregistered),
        )
    misnamed = sorted({e.modality for e in entries if e.status == "bad-name"})
    if misnamed:
        get_run_logger().warning(
            "files wait in modality folders whose names are not modality names: %s (move "
            "them to <landing>/<study>/<modality>/)",
            ", ".join(repr(m) for m in misnamed),
        )
    get_run_logger().info("announced %d of %d landed entries", announced, len(entries))
    return rows
