"""Checks every reader makes the same way, with the same one-line messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

from resistomics.errors import UnregisteredSampleError

__all__ = ["DESIGN_COLUMNS", "check_registered"]

# The sample sheet's reserved design columns but ``sample_id`` (the same names as
# ``resistomics.catalog.RESERVED_COLUMNS``, which this layer may not import; a test
# keeps the two equal). A reader never takes these from a data file: a data file's
# column of that name (scanpy's cell-cycle ``phase``) is kept under a prefixed name.
DESIGN_COLUMNS = frozenset(
    {"subject_id", "timepoint", "phase", "treatment", "response", "batch", "site", "subject_kind"}
)


def check_registered(
    path: str | Path,
    names: Sequence[str],
    registered: Iterable[str],
    *,
    kind: str = "sample",
    line: int | None = None,
) -> None:
    """Refuse names that are not registered samples of the study.

    ``kind`` says what the name is in the file (``"sample"``, or ``"column"`` for a
    count-table column, which is then also named as the place). The message names the
    first unknown sample, how many more there are, and the closest registered name.
    """
    known = set(registered)
    unknown = [n for n in names if n not in known]
    if not unknown:
        return
    first = unknown[0]
    guess = difflib.get_close_matches(first, sorted(known), n=1)
    hint = f"; did you mean {guess[0]!r}?" if guess else "; register it in the sample sheet first"
    more = (
        f" (and {len(unknown) - 1} more: {', '.join(unknown[1:4])}{'...' if len(unknown) > 4 else ''})"
        if len(unknown) > 1
        else ""
    )
    raise UnregisteredSampleError(
        str(path),
        "registered-samples",
        f"{kind} {first!r} is not a registered sample of this study{more}{hint}",
        line=line,
        column=first if kind == "column" else None,
    )
