"""``resistomics accessibility ...``: the accessibility modality's commands.

Each command resolves its dataset first (an unknown one fails at once), runs its
analysis under a progress line on the configured Dask cluster and prints the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from resistomics.terminal import console, open_workspace, progress_bar

if TYPE_CHECKING:
    from collections.abc import Callable

    from resistomics.publishing import ResultOutcome, Workspace

__all__ = ["accessibility_app"]

accessibility_app = typer.Typer(
    name="accessibility",
    help="Chromatin accessibility (ATAC-seq): per-cell QC, differential accessibility per "
    "contrast, gene activity scores and chromVAR-style peak-set deviations.",
    no_args_is_help=True,
)


def _run(ref: str, label: str, run: Callable[[Workspace], ResultOutcome]) -> ResultOutcome:
    """Open the workspace, resolve ``ref``, run ``run`` on the configured Dask cluster
    under a progress line, print its message."""
    from resistomics.cluster import dask_client

    ws = open_workspace()
    try:
        ws.catalog.resolve(ref)
        with dask_client(ws.settings.cluster), progress_bar() as bar:
            bar.add_task(label, total=None)
            outcome = run(ws)
    finally:
        ws.close()
    console.print(outcome.message)
    return outcome
