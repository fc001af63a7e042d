"""``resistomics methylation ...``: the methylation modality's commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

if TYPE_CHECKING:
    from resistomics.publishing import ResultOutcome, Workspace

__all__ = ["methylation_app"]

methylation_app = typer.Typer(
    name="methylation",
    help="DNA methylation: differentially methylated CpGs and regions (DSS), region summaries, catalogued marker calls.",
    no_args_is_help=True,
)


def _on_cluster(ref: str, label: str, run: Callable[[Workspace], ResultOutcome]) -> ResultOutcome:
    """Open the workspace, resolve ``ref`` (an unknown one fails before a cluster starts),
    run ``run`` on the configured Dask cluster under a progress line, print its message."""
    from resistomics.cluster import dask_client

    ws = open_workspace()
    ws.catalog.resolve(ref)
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        bar.add_task(label, total=None)
        outcome = run(ws)
    console.print(outcome.message)
    return outcome


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
    from resistomics.modalities.methylation._analyses import methylation_regions

    outcome = _on_cluster(
        dataset,
        f"regions of {dataset}",
        lambda ws: methylation_regions(ws, dataset, regions=bed, contrast=c, min_cpgs=min_cpgs),
    )
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
    from resistomics.modalities.methylation._analyses import methylation_markers

    outcome = _on_cluster(
        dataset,
        f"markers of {dataset}",
        lambda ws: methylation_markers(ws, dataset, baseline_phase=baseline_phase),
    )
    if outcome.tables:
        flagged = outcome.tables["flagged"]
        if len(flagged):
            print_top(flagged, None, ["subject_id", "sample_id", "gene", "change", "flag"], 20)
        else:
            console.print("no marker changed its call under treatment")


@methylation_app.command("dml")
@handled
def methylation_dml_command(
    dataset: Annotated[
        str, typer.Argument(help="study/dataset[@vN] of a methylation.counts dataset.")
    ],
    contrast: Annotated[
        str | None,
        typer.Option(
            help="'COLUMN:A vs B' over sample attributes; A is DSS's group1 (diff = A - B). "
            "With --design: the coefficient COLUMN+A, B the reference level."
        ),
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="COLUMN=VALUE filter of the contrast (repeatable).")
    ] = None,
    smoothing: Annotated[
        bool,
        typer.Option(
            "--smoothing/--no-smoothing",
            help="Smooth the arms' means over --span bp within a contig (DSS smoothing=TRUE).",
        ),
    ] = False,
    span: Annotated[
        int, typer.Option(min=2, help="Smoothing window in bp (DSS smoothing.span).")
    ] = 500,
    equal_disp: Annotated[
        bool,
        typer.Option(
            "--equal-disp/--no-equal-disp",
            help="One dispersion per CpG for both arms (DSS equal.disp=TRUE).",
        ),
    ] = False,
    design: Annotated[
        str | None,
        typer.Option(
            help="A general design, an R formula on sample attributes, e.g. "
            "'~ phase + subject_id' (DSS DMLfit.multiFactor / DMLtest.multiFactor).",
        ),
    ] = None,
    coef: Annotated[
        str | None,
        typer.Option(
            help="The design coefficient to test, by R's name (e.g. caseSLE); or give --contrast.",
        ),
    ] = None,
) -> None:
    """Differentially methylated CpGs between two arms (DSS DMLtest: beta-binomial,
    dispersion shrinkage, Wald test); publishes <dataset>.dml[.smoothed-spanN].<contrast>.

    With --design, DSS's general-design test (DMLtest.multiFactor, Park & Wu 2016) of one
    coefficient: publishes <dataset>.dml.design-<terms>.<contrast or coef>.

    Examples: resistomics methylation dml rrbs/rrbs --contrast "case:SLE vs HC" --smoothing;
    resistomics methylation dml rrbs/rrbs --contrast "case:SLE vs HC" --design "~ case + cell"
    """
    from resistomics.contrasts import parse_contrast
    from resistomics.errors import InputError

    if contrast is None and (design is None or coef is None):
        raise InputError(
            "--contrast", "option", "give --contrast 'COLUMN:A vs B' (or --design with --coef)"
        )
    c = parse_contrast(contrast, where or []) if contrast is not None else None
    from resistomics.modalities.methylation._dml_analysis import (
        differential_methylation,
        dml_overview,
    )

    outcome = _on_cluster(
        dataset,
        f"DML test of {dataset}",
        lambda ws: differential_methylation(
            ws,
            dataset,
            c,
            smoothing=smoothing,
            span=span,
            equal_disp=equal_disp,
            design=design,
            coef=coef,
        ),
    )
    if outcome.status == "published":
        seen = dml_overview(open_workspace(), outcome.version, top=15)
        console.print(f"{seen.n_tested} CpGs tested, {seen.n_significant} at FDR < 0.05")
        print_top(seen.top, None, ["contig", "position", "mu1", "mu2", "diff", "pval", "fdr"], 15)


@methylation_app.command("dmr")
@handled
def methylation_dmr_command(
    result: Annotated[str, typer.Argument(help="study/dataset[@vN] of a methylation.dml result.")],
    p_threshold: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="A CpG is significant below this p-value (DSS p.threshold)."
        ),
    ] = 1e-5,
    delta: Annotated[
        float,
        typer.Option(
            min=0,
            help="Minimum |methylation difference|: score CpGs by 1 - P(|diff| > delta) "
            "instead of p (DSS delta; two-group results).",
        ),
    ] = 0.0,
    min_len: Annotated[
        int, typer.Option(min=0, help="A DMR is longer than this many bp (DSS minlen).")
    ] = 50,
    min_cpg: Annotated[
        int, typer.Option(min=1, help="A DMR has more than this many CpGs (DSS minCG).")
    ] = 3,
    dis_merge: Annotated[
        int,
        typer.Option(
            min=0,
            help="Merge significant runs at most this many bp apart, capped at --min-len "
            "(DSS dis.merge).",
        ),
    ] = 100,
    pct_sig: Annotated[
        float,
        typer.Option(min=0, max=1, help="A DMR has more than this fraction of significant CpGs."),
    ] = 0.5,
) -> None:
    """Differentially methylated regions of a DML result (DSS callDMR); publishes
    <dml result>.dmr. Plot its DMR tracks with 'resistomics plot RESULT.dmr -o F.png'.

    Example: resistomics methylation dmr rrbs/rrbs.dml.smoothed-span500.case_SLE_vs_HC --p-threshold 0.01
    """
    from resistomics.modalities.methylation._dmr_analysis import differential_regions

    outcome = _on_cluster(
        result,
        f"DMRs of {result}",
        lambda ws: differential_regions(
            ws,
            result,
            delta=delta,
            p_threshold=p_threshold,
            min_len=min_len,
            min_cpg=min_cpg,
            dis_merge=dis_merge,
            pct_sig=pct_sig,
        ),
    )
    if outcome.tables:
        table = outcome.tables["dmr"]
        console.print(f"{len(table)} DMRs")
        columns = ["contig", "start", "end", "length", "n_cpg", "diff_methylation", "area_stat"]
        print_top(table, None, columns, 15)
