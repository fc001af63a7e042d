"""One error hierarchy for the whole platform.

Every error the platform raises on purpose derives from :class:`ResistomicsError`;
subclasses also inherit the matching builtin so callers can catch either. Input errors
carry the file, the place in it and the rule that was broken, so the message a user sees
is one line that says exactly what is wrong.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "AnalysisNotApplicableError",
    "CatalogError",
    "CatalogUnavailableError",
    "ClusterConfigError",
    "ConfigError",
    "ContrastNotApplicableError",
    "DatasetNotFoundError",
    "InputError",
    "MethodInputError",
    "PrivacyError",
    "ResistomicsError",
    "SampleSheetError",
    "StorageError",
    "UnknownNameError",
    "UnregisteredSampleError",
    "ValidationFailedError",
    "error_line",
    "printable",
]


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``), so one line stays one.

    File names and user arguments may hold newlines, carriage returns, terminal escapes or
    bidirectional overrides; every error line passes through here before it is printed.
    """
    return "".join(
        c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _ESCAPED else c
        for c in text
    )


# control, format (bidi overrides, zero-width), line and paragraph separators
_ESCAPED = frozenset({"Cc", "Cf", "Zl", "Zp"})

# An error line quotes values from the file (a gene ID, a sample name): a hostile value
# of a megabyte must not make the line a megabyte. Longer than this, a line has each
# long run of non-blanks shortened to its start and end.
_MAX_ERROR_CHARS = 2000
_LONG_RUN = re.compile(r"\S{241,}")


def clip_long_values(text: str) -> str:
    """``text`` with runs of over 240 non-blank characters shortened (only when the
    whole text is longer than 2,000 characters)."""
    if len(text) <= _MAX_ERROR_CHARS:
        return text
    return _LONG_RUN.sub(
        lambda m: f"{m.group()[:120]}...[{len(m.group()):,} characters]...{m.group()[-40:]}", text
    )


_TAG = re.compile(r"\[[a-z0-9][a-z0-9_.-]*\]")


class ResistomicsError(Exception):
    """Root of every error the platform raises on purpose.

    Every error a user sees is one line ``<place>: [<rule>] <what is wrong>``. Raise
    with ``place=`` (the file, argument or dataset it is about) and ``rule=`` (a short
    name) to get that line as the message; an error raised without them gets its
    class's :attr:`rule` from :func:`error_line` when the CLI prints it.
    """

    #: The rule a user-facing line names when the raise site gives none.
    rule: str = "error"
    #: What the error is about (file, argument, dataset), when known.
    place: str | None = None

    def __init__(self, *args: object, place: str | None = None, rule: str | None = None) -> None:
        if rule is not None:
            self.rule = rule
        if place is not None:
            self.place = place
        if args and (place is not None or rule is not None):
            where = f"{place}: " if place is not None else ""
            args = (printable(f"{where}[{self.rule}] {args[0]}"), *args[1:])
        super().__init__(*args)


def error_line(exc: ResistomicsError) -> str:
    """The one line a user sees for ``exc``: its message when that names a ``[rule]``
    already, else ``[<class rule>] <message>``; control characters escaped."""
    text = str(exc)
    if _TAG.search(text):
        return printable(text)
    return printable(f"[{exc.rule}] {text}")


class ConfigError(ResistomicsError, ValueError):
    """The configuration is invalid."""

    rule = "config"


class ClusterConfigError(ConfigError):
    """The Dask cluster section of the configuration cannot be honoured."""

    rule = "cluster-config"


class PrivacyError(ConfigError):
    """Pseudonymisation cannot be done safely: the key or mapping file is misplaced or
    readable by others, a key does not match the study's, or a study would mix raw and
    pseudonymised subject IDs."""


@dataclass(frozen=True)
class Location:
    """Where in a file a problem is: any of line, column, row/column names."""

    line: int | None = None
    column: str | None = None
    row: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row!r}")
        if self.column is not None:
            parts.append(f"column {self.column!r}")
        return ", ".join(parts)


class InputError(ResistomicsError, ValueError):
    """A user-supplied file breaks a rule.

    Parameters
    ----------
    file
        The file (or directory) that is wrong.
    rule
        The short name of the rule that was broken, e.g. ``"non-negative-integer-counts"``.
    message
        What is wrong and, where possible, how to fix it.
    line, column, row
        Where in the file, when known.
    """

    def __init__(
        self,
        file: str,
        rule: str,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        row: str | None = None,
    ) -> None:
        self.file = str(file)
        self.rule = rule
        self.detail = message
        self.location = Location(line=line, column=column, row=row)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = str(self.location)
        at = f" ({where})" if where else ""
        return clip_long_values(printable(f"{self.file}{at}: [{self.rule}] {self.detail}"))


class ContrastNotApplicableError(InputError):
    """A contrast names a column or an arm that a dataset's samples do not have.

    Asked for by hand (``--contrast``) it is an input error like any other; for a contrast
    registered for the whole study, the ``analyse`` deployment notes that it does not apply
    to this dataset (a study's expression samples may carry a column its methylation
    samples lack) instead of failing the run.
    """


class SampleSheetError(InputError):
    """A sample sheet breaks a design rule (duplicate IDs, bad phase, misspelt column)."""


class UnregisteredSampleError(InputError, KeyError):
    """A data file names samples that are not registered in the study."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.one_line()


class MethodInputError(ResistomicsError, ValueError):
    """A computation was asked to run on data it cannot use (e.g. counts required)."""

    rule = "method-input"


class AnalysisNotApplicableError(MethodInputError):
    """A default analysis does not apply to this dataset (a spatial dataset without
    cell-type labels has no neighbourhood enrichment to compute).

    Asked for by hand it fails like any ``MethodInputError``; run by the ``analyse``
    deployment on a newly published dataset it is noted, not a failure of the run.
    """

    rule = "not-applicable"


class ValidationFailedError(ResistomicsError):
    """A staged dataset failed its expectations and was quarantined."""

    def __init__(self, file: str, failures: list[str], report_uri: str) -> None:
        self.file = file
        self.failures = failures
        self.report_uri = report_uri
        first = failures[0] if failures else "unknown failure"
        more = f" (+{len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(
            clip_long_values(
                printable(
                    f"{file}: [validation] {first}{more}; quarantined, report at {report_uri}"
                )
            )
        )


class CatalogError(ResistomicsError):
    """The catalog refused an operation (e.g. a conflicting registration)."""

    rule = "catalog"


class DesignChangeError(CatalogError):
    """A sample sheet would change the design of data already published (not explicit)."""

    rule = "design-change"


class CatalogUnavailableError(CatalogError, ConnectionError):
    """The catalog database could not be reached (or stayed locked) for longer than the
    retry window; nothing was changed. A :class:`ConnectionError`, so flows retry it."""

    rule = "catalog-unavailable"


class DatasetNotFoundError(CatalogError, KeyError):
    """No dataset, version or study by that name."""

    rule = "not-found"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "dataset not found"


class StorageError(ResistomicsError, OSError):
    """The data root could not be read or written."""

    rule = "storage"


class RootMismatchError(ResistomicsError):
    """The catalog and the data root do not describe the same data (a moved or wrong
    root): refused at once, not retried as an I/O error would be."""

    rule = "root-mismatch"


class UnknownNameError(ResistomicsError, KeyError):
    """A registry has nothing by that name (modality, reader format, dataset type,
    layout, analysis); the message lists what it has and the closest match.

    Parameters
    ----------
    what
        What was looked up, e.g. ``"modality"`` or ``"expression reader format"``.
    name
        The name asked for.
    known
        The names the registry knows.
    """

    rule = "unknown-name"

    def __init__(self, what: str, name: str, known: Iterable[str]) -> None:
        self.what = what
        self.name = name
        self.known = sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.6)
        #: The closest known name, if any is close.
        self.suggestion: str | None = close[0] if close else None
        hint = f"; did you mean {close[0]!r}?" if close else ""
        listed = ", ".join(self.known) or "none"
        super().__init__(f"unknown {what} {name!r}{hint} (known: {listed})")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
