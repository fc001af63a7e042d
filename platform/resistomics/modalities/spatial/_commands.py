"""``resistomics spatial ...``: the spatial modality's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

__all__ = ["spatial_app"]

spatial_app = typer.Typer(
    name="spatial",
    help="Spatial omics: neighbourhood enrichment of cell types per section (squidpy "
    "nhood_enrichment statistics, Dask-parallel over sections).",
    no_args_is_help=True,
)


@spatial_app.command("nhood")
@handled
def spatial_nhood_command(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of a spatial.cells dataset.")],
    labels: Annotated[
        str | None,
        typer.Option(
            help="Cell-metadata column of cell-type labels. Default: the ingest's "
            "--labels-column, else cell_type."
        ),
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="Neighbours per cell of the kNN graph.")] = 6,
    n_perms: Annotated[
        int, typer.Option(min=1, help="Label permutations per section for the z-scores.")
    ] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the permutation stream.")] = 0,
) -> None:
    """Neighbourhood enrichment of cell types in every section (kNN graph; z-scores of the
    edges between types against label permutations, as squidpy nhood_enrichment);
    publishes <dataset>.nhood.<labels>.knn<k>. Plot the heat map with
    'resistomics plot RESULT -o nhood.png'.

    Example: resistomics spatial nhood sp/S0 --labels cell_type
    """
    from resistomics.modalities.spatial._analyses import nhood_analysis, nhood_matrix

    ws = open_workspace()
    try:
        ws.catalog.resolve(dataset)
        with progress_bar() as bar:
            bar.add_task(f"neighbourhood enrichment of {dataset}", total=None)
            outcome = nhood_analysis(ws, dataset, labels=labels, k=k, n_perms=n_perms, seed=seed)
    finally:
        ws.close()
    console.print(outcome.message)
    if outcome.tables:
        sections = outcome.tables["sections"]
        console.print(
            f"{len(sections)} section(s), {int(sections['n_cells'].sum())} cells, "
            f"{int(sections['n_edges'].sum())} edges"
        )
        mean = nhood_matrix(outcome.tables["nhood"]).stack().rename("mean_zscore").reset_index()
        mean = mean.reindex(mean["mean_zscore"].abs().sort_values(ascending=False).index)
        print_top(mean, None, ["label_a", "label_b", "mean_zscore"], 15)
