"""``resistomics methylation ...``: the methylation modality's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

__all__ = ["methylation_app"]

methylation_app = typer.Typer(
    name="methylation",
    help="DNA methylation: region summaries, catalogued marker calls.",
    no_args_is_help=True,
)


@methylation_app.command("regions")
@handled
def methylation_regions_command(
    dataset: Annotated[
        str, typer.Argument(help="study/dataset[@vN] of a methylation.counts dataset.")
    ],
    bed: Annotated[
        str,
        typer.Option(
            "--bed",
            help="Regions: 'promoters' (RefSeq TSS +- 2 kb), 'cpg-islands', 'gene-bodies' "
            "(hg19, from RESISTOMICS_MODALITIES__METHYLATION__ANNOTATION_DIR), or a BED file "
            "(0-based half-open; an optional 4th column names the regions).",
        ),
    ] = "promoters",
    contrast: Annotated[
        str | None,
        typer.Option(
            help="'COLUMN:A vs B' over sample attributes: a Welch t-test per region on "
            "per-sample methylation, BH-adjusted."
        ),
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="COLUMN=VALUE filter of the contrast (repeatable).")
    ] = None,
    min_cpgs: Annotated[
        int,
        typer.Option(min=1, help="CpGs a sample must cover in a region for its mean (else NaN)."),
    ] = 3,
) -> None:
    """Methylation per sample over regions (and a test per region); publishes
    <dataset>.regions.<set>[.<contrast>].

    Example: resistomics methylation regions rrbs/counts --bed promoters --contrast "phase:progression vs baseline"
    """
    from resistomics.contrasts import parse_contrast

    c = parse_contrast(contrast, where or []) if contrast is not None else None
    from resistomics.cluster import dask_client
    from resistomics.modalities.methylation._analyses import methylation_regions

    ws = open_workspace()
    ws.catalog.resolve(dataset)  # an unknown dataset fails before a cluster starts
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        bar.add_task(f"regions of {dataset}", total=None)
        outcome = methylation_regions(ws, dataset, regions=bed, contrast=c, min_cpgs=min_cpgs)
    console.print(outcome.message)
    if outcome.tables:
        table = outcome.tables["regions"]
        columns = ["region_id", "n_sites", "n_samples_covered"]
        if c is not None:
            columns += ["mean_a", "mean_b", "diff", "pval", "pval_adj"]
        print_top(table, None, columns, 15)


@methylation_app.command("markers")
@handled
def methylation_markers_command(
    dataset: Annotated[
        str, typer.Argument(help="study/dataset[@vN] of a methylation.counts dataset.")
    ],
    baseline_phase: Annotated[
        str, typer.Option(help="Phase of each subject's reference sample for changes.")
    ] = "baseline",
) -> None:
    """Calls of catalogued methylation markers per sample and their change under treatment;
    publishes <dataset>.markers (the analyse deployment runs it on every new dataset).

    Example: resistomics methylation markers gbm/counts
    """
    from resistomics.cluster import dask_client
    from resistomics.modalities.methylation._analyses import methylation_markers

    ws = open_workspace()
    ws.catalog.resolve(dataset)
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        bar.add_task(f"markers of {dataset}", total=None)
        outcome = methylation_markers(ws, dataset, baseline_phase=baseline_phase)
    console.print(outcome.message)
    if outcome.tables:
        flagged = outcome.tables["flagged"]
        if len(flagged):
            print_top(flagged, None, ["subject_id", "sample_id", "gene", "change", "flag"], 20)
        else:
            console.print("no marker changed its call under treatment")
