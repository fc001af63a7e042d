"""``resistomics accessibility ...``: the accessibility modality's commands.

Each command resolves its dataset first (an unknown one fails at once), runs its
analysis under a progress line on the configured Dask cluster and prints the outcome.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

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


# -- deviations and gene activity (acc-dev) ---------------------------------------------


@accessibility_app.command("deviations")
@handled
def accessibility_deviations_command(
    dataset: Annotated[
        str, typer.Argument(help="study/dataset[@vN] of an accessibility.counts dataset.")
    ],
    sets: Annotated[
        str,
        typer.Option(
            help="builtin (the resistance programs expression scores, mapped to peaks through "
            "each gene's body + promoter: needs --genes or the genes_bed setting), or a BED "
            "whose name column names the sets (peak sets, motif hits)."
        ),
    ] = "builtin",
    genes: Annotated[
        str | None,
        typer.Option(help="Genes BED with names (chrom, start, end, gene[, score, strand])."),
    ] = None,
    fasta: Annotated[
        str | None,
        typer.Option(
            help="Genome FASTA: background peaks matched on GC content too (without it the "
            "result says GC was not matched)."
        ),
    ] = None,
    n_background: Annotated[
        int, typer.Option(min=2, help="Background iterations (chromVAR's niterations).")
    ] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the background and bootstrap draws.")] = 0,
) -> None:
    """chromVAR peak-set deviations (Schep et al. 2017) in every cell; publishes
    <counts>.deviations.<sets> (per cell deviation and z, variability with bootstrap CI,
    mean z per sample joined to the design). Plot: 'resistomics plot RESULT -o z.png'.

    Examples: resistomics accessibility deviations atac/pbmc --sets peaks_by_cell_type.bed;
    resistomics accessibility deviations atac/pbmc --sets builtin --genes genes.bed --fasta hg38.fa
    """
    from resistomics.modalities.accessibility._deviations_analysis import (
        accessibility_deviations,
    )

    outcome = _run(
        dataset,
        f"peak-set deviations of {dataset}",
        lambda ws: accessibility_deviations(
            ws, dataset, sets=sets, genes=genes, fasta=fasta, n_background=n_background, seed=seed
        ),
    )
    if outcome.tables:
        table = outcome.tables["variability"]
        console.print(str(table["note"].iloc[0]))
        print_top(table, "variability", ["set", "n_peaks", "variability", "p_adj"], 15)


@accessibility_app.command("activity")
@handled
def accessibility_activity_command(
    dataset: Annotated[
        str, typer.Argument(help="study/dataset[@vN] of an accessibility.counts dataset.")
    ],
    genes: Annotated[
        str | None,
        typer.Option(
            help="Genes BED with names (chrom, start, end, gene symbol[, score, strand]); "
            "default: the genes_bed setting."
        ),
    ] = None,
    gene_sets: Annotated[
        str, typer.Option(help="builtin (the resistance programs) or a GMT file.")
    ] = "builtin",
    features: Annotated[
        str,
        typer.Option(
            help="auto (the 500-bp tile matrix a fragments ingest keeps with TILE_SIZE set, "
            "ArchR's input; else the peaks), tiles or peaks."
        ),
    ] = "auto",
) -> None:
    """ArchR gene activity scores (tiles or peaks) and the gene programs scored on them
    (score_genes, singscore, as expression); publishes <counts>.activity.<gene_sets>
    (activity.zarr, per-cell and per-sample program scores joined to the design).

    Example: resistomics accessibility activity atac/pbmc --genes genes.bed
    """
    from resistomics.modalities.accessibility._activity_analysis import accessibility_activity

    outcome = _run(
        dataset,
        f"gene activity of {dataset}",
        lambda ws: accessibility_activity(
            ws, dataset, genes=genes, gene_sets=gene_sets, features=features
        ),
    )
    if outcome.tables:
        samples = outcome.tables["samples"]
        first = samples[samples["method"] == samples["method"].iloc[0]]
        summary = first.groupby("gene_set")["mean_score"].median().reset_index()
        print_top(summary, "mean_score", ["gene_set", "mean_score"], 15)


# -- qc (acc-qc) ------------------------------------------------------------------------


@accessibility_app.command("qc")
@handled
def accessibility_qc_command(
    dataset: Annotated[
        str,
        typer.Argument(
            help="study/dataset[@vN] of an accessibility.counts or accessibility.fragments dataset."
        ),
    ],
) -> None:
    """Per-cell QC (unique fragments, TSS enrichment, FRiP, nucleosome signal, counts in
    peaks; pass/fail against the configured bounds), per-sample medians, the TSS profile
    and the fragment-size histogram; publishes <dataset>.qc (the analyse deployment runs
    it on every new dataset). Plot: resistomics plot <dataset>.qc -o qc.png [--kind tss].
    Example: resistomics accessibility qc atac/pbmc
    """
    from resistomics.modalities.accessibility._qc_analysis import SAMPLE_COLUMNS, accessibility_qc

    outcome = _run(dataset, f"QC of {dataset}", lambda ws: accessibility_qc(ws, dataset))
    if outcome.tables:
        print_top(outcome.tables["samples"], None, list(SAMPLE_COLUMNS[:8]), 20)


# -- end qc -----------------------------------------------------------------------------
