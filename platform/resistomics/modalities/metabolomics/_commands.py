"""``resistomics metabolomics ...``: the metabolomics modality's commands."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Annotated

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

if TYPE_CHECKING:
    from collections.abc import Callable

    from resistomics.publishing import ResultOutcome, Workspace

__all__ = ["metabolomics_app"]

metabolomics_app = typer.Typer(
    name="metabolomics",
    help="Metabolomics: normalisation (MetaboAnalyst's steps, QC-RLSC) and differential "
    "abundance (limma, Welch, Wilcoxon; paired), metabolite-set enrichment and per-sample "
    "program scores.",
    no_args_is_help=True,
)


def _run(
    ref: str, label: str, run: Callable[[Workspace], ResultOutcome], *, cluster: bool = False
) -> ResultOutcome:
    """Open the workspace, resolve ``ref`` (an unknown one fails at once), run ``run``
    under a progress line (on the configured Dask cluster when ``cluster``: the
    blockwise ``normalize`` and ``da``), print its message."""
    from resistomics.cluster import dask_client

    ws = open_workspace()
    try:
        ws.catalog.resolve(ref)
        on_cluster = dask_client(ws.settings.cluster) if cluster else contextlib.nullcontext()
        with on_cluster, progress_bar() as bar:
            bar.add_task(label, total=None)
            outcome = run(ws)
    finally:
        ws.close()
    console.print(outcome.message)
    return outcome


@metabolomics_app.command("normalize")
@handled
def metabolomics_normalize_command(
    dataset: Annotated[
        str, typer.Argument(help="study/dataset[@vN] of a metabolomics.abundance dataset.")
    ],
    method: Annotated[
        str | None,
        typer.Option(
            help="Per-sample normalisation: PQN (Dieterle 2006; pooled-QC reference when "
            "there are QCs), sum, median, none. Default: pqn (none on log-scaled data)."
        ),
    ] = None,
    transform: Annotated[
        str,
        typer.Option(help="log2, generalised log (base 2) or none; skipped on log-scaled data."),
    ] = "log",
    scale: Annotated[
        str,
        typer.Option(
            help="Per-feature scaling, stored beside the unscaled values (PCA reads it; the "
            "tests read the unscaled values)."
        ),
    ] = "none",
    impute: Annotated[
        str | None,
        typer.Option(help="Imputation. Default: half-min (none on log-scaled data)."),
    ] = None,
    knn_k: Annotated[int, typer.Option(min=1, help="Neighbours of --impute knn.")] = 10,
    max_missing: Annotated[
        float,
        typer.Option(
            min=0, max=1, help="Drop features missing in more than this fraction of study samples."
        ),
    ] = 0.5,
    missing_by: Annotated[
        str | None,
        typer.Option(help="Apply --max-missing per group of this sample column (keep if any)."),
    ] = None,
    drift: Annotated[
        str,
        typer.Option(
            help="QC-RLSC drift correction (Dunn 2011) on the samples' injection_order "
            "(per batch): auto runs it when there are >= 4 pooled QCs per batch."
        ),
    ] = "auto",
) -> None:
    """Process a metabolomics dataset for statistics; publishes
    <dataset>.normalized.<method>-<transform>-<scale> (a feature matrix and QC tables).
    Plot its PCA with 'resistomics plot RESULT -o pca.png'.

    Example: resistomics metabolomics normalize su/Su_metab_data_raw --method pqn --transform log --scale pareto
    """
    from resistomics.modalities.metabolomics._analyses import normalize_abundance

    outcome = _run(
        dataset,
        f"normalising {dataset}",
        lambda ws: normalize_abundance(
            ws,
            dataset,
            max_missing=max_missing,
            missing_by=missing_by,
            impute=impute,
            knn_k=knn_k,
            method=method,
            drift=drift,
            transform=transform,
            scale=scale,
        ),
        cluster=True,
    )
    if outcome.tables:
        qc = outcome.tables["feature_qc"]
        kept = qc[qc["kept"]]
        line = f"{len(kept)} of {len(qc)} features kept"
        if kept["qc_rsd_before"].notna().any():
            line += f"; median QC RSD {kept['qc_rsd_before'].median():.1f} %"
            if kept["qc_rsd_after"].notna().any():
                line += f" -> {kept['qc_rsd_after'].median():.1f} % after drift correction"
        console.print(line)


@metabolomics_app.command("da")
@handled
def metabolomics_da_command(
    dataset: Annotated[
        str,
        typer.Argument(
            help="study/dataset[@vN] of a metabolomics.normalized result, or of a "
            "metabolomics.abundance dataset (normalised first: half-min, PQN, log2)."
        ),
    ],
    contrast: Annotated[
        str | None,
        typer.Option(help="'COLUMN:A vs B' over sample attributes (log2fc is A over B)."),
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="COLUMN=VALUE filter of the contrast (repeatable).")
    ] = None,
    method: Annotated[
        str,
        typer.Option(
            help="limma moderated t (default), Welch t, Wilcoxon rank-sum; with --pair-by "
            "limma with the subject in the design, paired t, Wilcoxon signed-rank."
        ),
    ] = "limma",
    pair_by: Annotated[
        str | None,
        typer.Option(help="Sample column pairing the arms' samples (e.g. subject_id)."),
    ] = None,
) -> None:
    """Differential abundance between two arms, study samples only (QC and blanks never);
    publishes <normalized>.da.<method>[.paired-<column>].<contrast>.
    Plot its volcano with 'resistomics plot RESULT -o volcano.png'.

    Example: resistomics metabolomics da su/Su_metab_data_raw --contrast "group:COVID19 vs Healthy Donor" --method limma
    """
    from resistomics.contrasts import parse_contrast
    from resistomics.errors import InputError

    if contrast is None:
        raise InputError("--contrast", "option", "give --contrast 'COLUMN:A vs B'")
    c = parse_contrast(contrast, where or [])
    from resistomics.modalities.metabolomics._analyses import differential_abundance

    outcome = _run(
        dataset,
        f"differential abundance of {dataset}",
        lambda ws: differential_abundance(ws, dataset, c, method=method, pair_by=pair_by),
        cluster=True,
    )
    if outcome.tables:
        table = outcome.tables["da"]
        sig = table["p_adj"] < 0.05
        console.print(
            f"{len(table)} features tested, {int(sig.sum())} at FDR < 0.05 "
            f"({int((sig & (table['log2fc'] > 0)).sum())} up in {c.group_a}, "
            f"{int((sig & (table['log2fc'] < 0)).sum())} down)"
        )
        columns = [x for x in ("feature_id", "log2fc", "statistic", "p", "p_adj") if x in table]
        print_top(table.nsmallest(15, "p"), None, columns, 15)


@metabolomics_app.command("enrich")
@handled
def metabolomics_enrich_command(
    result: Annotated[str, typer.Argument(help="study/dataset[@vN] of a metabolomics.da result.")],
    sets: Annotated[
        str,
        typer.Option(
            help="builtin (the metabolic resistance programs of "
            "schemas/metabolomics/resistance_programs.yaml), reactome (with --reactome), or "
            "a file: GMT of ChEBI IDs or a programs YAML."
        ),
    ] = "builtin",
    method: Annotated[
        str,
        typer.Option(
            help="fry (limma; self-contained: is the set changed; default), rank (limma "
            "geneSetTest; competitive, |t|) or ora (hypergeometric of the features at FDR < --fdr)."
        ),
    ] = "fry",
    reactome: Annotated[
        str | None,
        typer.Option(
            help="Reactome ChEBI2Reactome[_All_Levels] file (no download; default: the "
            "setting RESISTOMICS_MODALITIES__METABOLOMICS__REACTOME_FILE)."
        ),
    ] = None,
    names: Annotated[
        str | None,
        typer.Option(
            help="Name -> identifier TSV (name, chebi, ...; synonyms) tried before the "
            "catalogue's names when the features have no ChEBI column."
        ),
    ] = None,
    fdr: Annotated[float, typer.Option(help="FDR of the features --method ora selects.")] = 0.05,
    min_size: Annotated[int, typer.Option(min=1, help="Fewest measured members tested.")] = 3,
    max_size: Annotated[int, typer.Option(min=1, help="Most measured members tested.")] = 500,
) -> None:
    """Metabolite-set enrichment of a differential-abundance result; publishes
    <da>.enrich.<method>.<sets> (the sets table, and every feature's ChEBI ID or why it has
    none). Plot its bar chart with 'resistomics plot RESULT -o enrichment.png'.

    Example: resistomics metabolomics enrich su/Su_metab_data_raw.normalized.pqn-log-none.da.limma.group_COVID19_vs_Healthy-Donor --sets reactome --reactome ChEBI2Reactome_All_Levels.tsv.gz
    """
    from resistomics.modalities.metabolomics._enrich_analysis import enrich_sets

    outcome = _run(
        result,
        f"enrichment of {result}",
        lambda ws: enrich_sets(
            ws,
            result,
            sets=sets,
            method=method,
            reactome=reactome,
            names=names,
            fdr=fdr,
            min_size=min_size,
            max_size=max_size,
        ),
    )
    if outcome.tables:
        table, features = outcome.tables["enrichment"], outcome.tables["features"]
        tested = table[table["tested"]]
        console.print(
            f"{int(features['chebi'].notna().sum())} of {len(features)} features with a ChEBI "
            f"ID; {len(tested)} sets tested, {int((tested['q'] < 0.05).sum())} at FDR < 0.05"
        )
        columns = [c for c in ("name", "n_measured", "direction", "p", "q") if c in table]
        print_top(tested.sort_values("p"), None, columns, 15)


@metabolomics_app.command("programs")
@handled
def metabolomics_programs_command(
    dataset: Annotated[
        str,
        typer.Argument(
            help="study/dataset[@vN] of a metabolomics.normalized result or a "
            "metabolomics.abundance dataset (normalised first)."
        ),
    ],
    programs: Annotated[
        str, typer.Option(help="builtin, or a programs YAML / GMT file of ChEBI IDs.")
    ] = "builtin",
    names: Annotated[
        str | None, typer.Option(help="Name -> identifier TSV tried before the catalogue's names.")
    ] = None,
    min_measured: Annotated[
        int, typer.Option(min=1, help="Fewest measured members for a sample's score.")
    ] = 2,
) -> None:
    """Per-sample scores of metabolic programs (combined z, Lee et al. 2008); publishes
    <normalized>.programs.<programs>. Plot them with 'resistomics plot RESULT -o p.png'.

    Example: resistomics metabolomics programs su/Su_metab_data_raw
    """
    from resistomics.modalities.metabolomics._enrich_analysis import score_programs

    outcome = _run(
        dataset,
        f"program scores of {dataset}",
        lambda ws: score_programs(
            ws, dataset, programs=programs, names=names, min_measured=min_measured
        ),
    )
    if outcome.tables:
        scores = outcome.tables["scores"]
        summary = (
            scores.groupby("program")
            .agg(members=("n_members", "max"), median_score=("score", "median"))
            .reset_index()
        )
        print_top(summary, None, ["program", "members", "median_score"], 20)
