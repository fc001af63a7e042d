"""The names users give things that become paths: studies, modalities, datasets, files.

A study, modality or dataset name becomes one component of a path under the data root
(``landing/<study>/<modality>/``, ``datasets/<study>/<dataset>/``), so it must be one
safe component and nothing else: letters, digits, ``.``, ``_`` and ``-``, starting with
a letter or digit, at most :data:`MAX_NAME_LENGTH` characters, no ``..``. That rules out
``/``, ``..``, ``@`` (``study/dataset@v2`` names a version), spaces, markup and control
characters. A landed file keeps its own name, which only has to be a visible file name
that fits one path component.
"""

from __future__ import annotations

import re

from resistomics.errors import InputError

__all__ = ["MAX_FILE_NAME_BYTES", "MAX_NAME_LENGTH", "NAME_RULE", "check_file_name", "check_name"]

MAX_NAME_LENGTH = 128
MAX_FILE_NAME_BYTES = 255  # one path component on ext4, xfs, APFS and S3 keys alike

NAME_RULE = (
    f"1-{MAX_NAME_LENGTH} letters, digits, '.', '_' or '-', starting with a letter or digit, "
    "without '..' (no '/', '@', spaces or control characters)"
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid ``kind`` name (study, modality, dataset), else raise.

    Raises
    ------
    InputError
        Rule ``name``, naming the argument and the rule, e.g.
        ``study '../x': [name] a study name is 1-128 letters, ...``.
    """
    if len(name) > MAX_NAME_LENGTH or not _NAME.fullmatch(name) or ".." in name:
        raise InputError(f"{kind} {name!r}", "name", f"a {kind} name is {NAME_RULE}")
    return name


def check_file_name(name: str) -> str:
    """Return ``name`` if a landed file or directory may carry it, else raise.

    Raises
    ------
    InputError
        Rule ``file-name``: empty, hidden or temporary (a leading ``.`` is how the landing
        zone marks files still being copied), a control character, or too long.
    """
    problem = None
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        problem = "is not a file name"
    elif name.startswith("."):
        problem = "is hidden (a leading '.' marks a file still being copied); rename it"
    elif not name.isprintable():
        problem = "contains control characters (a newline, tab or escape); rename it"
    elif len(name.encode("utf-8", "surrogateescape")) > MAX_FILE_NAME_BYTES:
        problem = f"is longer than {MAX_FILE_NAME_BYTES} bytes"
    if problem is not None:
        raise InputError(f"file name {name!r}", "file-name", f"the name {problem}")
    return name
