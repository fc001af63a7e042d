"""Shared reading of the YAML catalogue form (a mapping with an ``entries`` list).

Used by the mutation and the methylation-marker catalogues: YAML syntax errors,
the top-level layout and each entry's line number are handled the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from resistomics.errors import InputError


def read_yaml_entries(
    path: Path, text: str
) -> tuple[Mapping[str, Any], Iterator[tuple[int | None, Mapping[str, Any]]]]:
    """Parse a YAML catalogue into its document and its entries with their lines.

    Parameters
    ----------
    path : Path
        The file, named in errors.
    text : str
        Its content.

    Returns
    -------
    tuple
        The top-level mapping, and an iterator of ``(line, entry)`` for each entry
        (1-based line of the entry in the file, ``None`` where it cannot be located);
        an entry that is not a mapping raises when the iterator reaches it, so a caller
        validating entry by entry reports errors in file order.

    Raises
    ------
    InputError
        ``yaml-syntax`` on unparsable YAML; ``catalogue-layout`` when the document is not
        a mapping with an ``entries`` list or an entry is not a mapping.
    """
    try:
        doc = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise InputError(str(path), "yaml-syntax", str(err).splitlines()[0], line=line) from None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("entries"), list):
        raise InputError(str(path), "catalogue-layout", "expected a mapping with an 'entries' list")
    lines: list[int | None] = [None] * len(doc["entries"])
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if key.value == "entries" and isinstance(value, yaml.SequenceNode):
                lines = [item.start_mark.line + 1 for item in value.value]

    def located() -> Iterator[tuple[int | None, Mapping[str, Any]]]:
        for line, raw in zip(lines, doc["entries"], strict=True):
            if not isinstance(raw, Mapping):
                raise InputError(
                    str(path), "catalogue-layout", "each entry is a mapping", line=line
                )
            yield line, raw

    return doc, located()


def file_version(text: str) -> str:
    """Content version of a catalogue without a ``version`` field (SHA-256, 16 hex digits)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
