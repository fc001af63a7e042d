"""``resistomics variants ...``: the variants modality's commands."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

__all__ = ["variants_app"]

variants_app = typer.Typer(
    name="variants",
    help="Genetic resistance: clonal evolution and recurrent mutations from variant calls.",
    no_args_is_help=True,
)


@variants_app.command("clonal")
@handled
def variants_clonal(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of variant calls.")],
    max_clones: Annotated[int, typer.Option(help="Most clones per subject.")] = 10,
    patience: Annotated[
        int,
        typer.Option(
            help="Stop trying more clones after this many without a better BIC (0: try all)."
        ),
    ] = 2,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Beta-binomial precision for over-dispersed reads: a number (e.g. 50-200) "
            "or 'auto' (chosen per subject by BIC); default: binomial."
        ),
    ] = None,
) -> None:
    """Per subject: VAF changes vs baseline (Fisher), calls, clones and emergent
    catalogued resistance mutations; publishes <dataset>.clonal.

    Example: resistomics variants clonal trial/calls
    """
    chosen = _precision(precision)
    from resistomics.cluster import dask_client
    from resistomics.modalities.variants._analyses import clonal_evolution

    ws = open_workspace()
    ws.catalog.resolve(dataset)  # an unknown dataset fails before a cluster starts
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        task = bar.add_task(f"clonal evolution of {dataset} (subjects)", total=None)
        outcome = clonal_evolution(
            ws,
            dataset,
            max_clones=max_clones,
            patience=patience or None,
            precision=chosen,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(outcome.message)
    if outcome.tables:
        emergent = outcome.tables["emergent_resistance"]
        console.print(f"emergent catalogued resistance mutations: {len(emergent)}")
        if len(emergent):
            print_top(
                emergent, None, ["subject_id", "sample_id", "gene", "protein_change", "call"], 20
            )


def _precision(text: str | None) -> float | Literal["auto"] | None:
    if text is None:
        return None
    if text == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"--precision must be a number or 'auto', not {text!r}") from None


@variants_app.command("recurrent")
@handled
def variants_recurrent(
    datasets: Annotated[
        list[str], typer.Argument(help="study/dataset[@vN] of variant calls (one or more).")
    ],
    contrast: Annotated[str, typer.Option(help="'COLUMN:A vs B' over sample attributes.")],
    where: Annotated[
        list[str] | None, typer.Option(help="COLUMN=VALUE filter (repeatable).")
    ] = None,
    paired: Annotated[
        bool | None,
        typer.Option(
            "--paired/--unpaired",
            help="McNemar on subjects sampled in both arms, or Fisher on independent arms "
            "(default: paired when every subject is sampled in both).",
        ),
    ] = None,
) -> None:
    """Genes recurrently mutated in arm A vs arm B (Fisher or paired McNemar per gene, BH),
    catalogue-flagged.

    Example: resistomics variants recurrent apl/APL_primary apl/APL_relapse --contrast "phase:relapse vs baseline"
    """
    from resistomics.contrasts import parse_contrast

    c = parse_contrast(contrast, where or [])
    from resistomics.cluster import dask_client
    from resistomics.modalities.variants._analyses import recurrent_mutations

    ws = open_workspace()
    for d in datasets:  # unknown datasets fail before a cluster starts
        ws.catalog.resolve(d)
    with dask_client(ws.settings.cluster):
        outcome = recurrent_mutations(ws, datasets, c, paired=paired)
    console.print(outcome.message)
    if outcome.tables:
        print_top(
            outcome.tables["recurrent"],
            None,
            ["gene", "mutated_a", "mutated_b", "test", "pvalue_adj", "catalogue_gene"],
            15,
        )
