"""What every command prints and how it fails: shared by the generic CLI and the
command groups of the modalities (which sit below the CLI and may not import it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from resistomics.config import Settings, load_settings
from resistomics.errors import ResistomicsError, error_line, printable

__all__ = [
    "check_output",
    "console",
    "err",
    "fail",
    "handled",
    "open_workspace",
    "print_table",
    "print_top",
    "progress_bar",
]

# User text (study, file and sample names, messages) is never rich markup or emoji codes:
# markup and emoji are off for every print and table cell; styles are given explicitly.
console = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line to stderr and exit non-zero.

    The message is printed as it is: rule tags such as ``[validation]`` and user text such
    as a study named ``[/i]`` or ``:x:`` are not rich markup or emoji codes, and control
    characters (a newline in a file name) are escaped so the line stays one line.
    """
    err.print(Text.assemble(("error:", "bold red"), " ", printable(message)), soft_wrap=True)
    raise typer.Exit(code)


def handled[F: Callable[..., Any]](fn: F) -> F:
    """Turn platform errors into one line on stderr and a non-zero exit.

    Only :class:`ResistomicsError` is caught (registry look-ups raise its
    ``UnknownNameError``): any other exception is a bug and shows its traceback.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ResistomicsError as exc:
            fail(error_line(exc))

    return wrapper  # type: ignore[return-value]


def open_workspace(settings: Settings | None = None) -> Any:
    from resistomics.publishing import Workspace

    return Workspace.open(settings or load_settings())


def check_output(path: Any) -> None:
    """Refuse, before any work, an output file whose folder is missing or that is a
    folder (the line names the path and the rule)."""
    from pathlib import Path

    out = Path(path)
    if out.is_dir():
        fail(f"{out}: [output-file] is a folder; give a file name")
    if not out.absolute().parent.is_dir():
        fail(f"{out}: [output-folder] the folder {out.absolute().parent} does not exist")


def progress_bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def print_table(table: Table) -> None:
    """A table on stdout: fitted to a terminal; piped, every value in full (no wrapping)."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=100_000, no_color=True, highlight=False, markup=False, emoji=False).print(
            table
        )


def print_top(frame: Any, sort: str | None, columns: list[str], n: int) -> None:
    """The first ``n`` rows of ``frame`` (sorted by ``sort``, descending) as a table."""
    top = frame.sort_values(sort, ascending=False) if sort else frame
    table = Table()
    for c in columns:
        table.add_column(c)
    for _, row in top.head(n).iterrows():
        table.add_row(
            *[f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        )
    print_table(table)
