"""``resistomics spatial ...``: the spatial modality's commands."""

from __future__ import annotations

from typing import Annotated

import typer

from resistomics.terminal import console, handled, open_workspace, print_top, progress_bar

__all__ = ["spatial_app"]

spatial_app = typer.Typer(
    name="spatial",
    help="Spatial omics: neighbourhood enrichment, Moran's I, co-occurrence and neighbour "
    "graphs per section (squidpy's statistics, Dask-parallel over sections).",
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


@spatial_app.command("autocorr")
@handled
def spatial_autocorr_command(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of a spatial.cells dataset.")],
    genes: Annotated[
        str | None,
        typer.Option(help="Comma-separated panel genes (G1,G2). Default: every panel gene."),
    ] = None,
    programs: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated built-in resistance programs whose per-cell score "
            "(score_genes) is tested too, as rows program:NAME."
        ),
    ] = None,
    k: Annotated[int, typer.Option(min=1, help="Neighbours per cell of the kNN graph.")] = 6,
    n_perms: Annotated[
        int,
        typer.Option(min=0, help="Permutations for a permutation p-value (0: analytic p only)."),
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the permutation stream.")] = 0,
) -> None:
    """Moran's I of log-normalised genes in every section (kNN graph, row-normalised
    weights; analytic variance, z, p and BH FDR within the section, as squidpy
    spatial_autocorr); publishes <dataset>.autocorr.knn<k>. Plot the top genes with
    'resistomics plot RESULT -o autocorr.png'.

    Example: resistomics spatial autocorr sp/S0 --genes EPCAM,COL1A1 --programs
    HYPOXIA_GLYCOLYSIS --n-perms 100
    """
    from resistomics.modalities.spatial._stats_analyses import autocorr_analysis, autocorr_summary

    ws = open_workspace()
    try:
        ws.catalog.resolve(dataset)
        with progress_bar() as bar:
            bar.add_task(f"Moran's I of {dataset}", total=None)
            outcome = autocorr_analysis(
                ws, dataset, genes=genes, programs=programs, k=k, n_perms=n_perms, seed=seed
            )
    finally:
        ws.close()
    console.print(outcome.message)
    if outcome.tables:
        sections = outcome.tables["sections"]
        console.print(
            f"{len(sections)} section(s), {int(sections['n_cells'].sum())} cells, "
            f"{outcome.tables['autocorr']['gene'].nunique()} genes"
        )
        print_top(
            autocorr_summary(outcome.tables["autocorr"]),
            None,
            ["gene", "mean_I", "mean_z", "n_significant", "n_sections"],
            15,
        )


@spatial_app.command("cooccurrence")
@handled
def spatial_cooccurrence_command(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of a spatial.cells dataset.")],
    labels: Annotated[
        str | None,
        typer.Option(
            help="Cell-metadata column of cell-type labels. Default: the ingest's "
            "--labels-column, else cell_type."
        ),
    ] = None,
    interval: Annotated[
        str,
        typer.Option(
            help="A count of distances (squidpy's default interval of each section) or the "
            "distances themselves, comma-separated (0,20,50,100)."
        ),
    ] = "50",
) -> None:
    """Co-occurrence ratio of every pair of cell types by distance in every section
    (p(a | near b) / p(a), as squidpy co_occurrence); publishes
    <dataset>.cooccurrence.<labels>. Plot one type's pairs with
    'resistomics plot RESULT -o cooc.png --cell-type tumour'.

    Example: resistomics spatial cooccurrence sp/S0 --labels cell_type --interval 0,25,50,100
    """
    from resistomics.modalities.spatial._stats_analyses import cooccurrence_analysis

    ws = open_workspace()
    try:
        ws.catalog.resolve(dataset)
        with progress_bar() as bar:
            bar.add_task(f"co-occurrence of {dataset}", total=None)
            outcome = cooccurrence_analysis(ws, dataset, labels=labels, interval=interval)
    finally:
        ws.close()
    console.print(outcome.message)
    if outcome.tables:
        sections = outcome.tables["sections"]
        table = outcome.tables["cooccurrence"]
        console.print(
            f"{len(sections)} section(s), {int(sections['n_cells'].sum())} cells, "
            f"{table['label_a'].nunique()} types, {int(sections['n_distances'].max())} distances"
        )
        nearest = table[table["distance"] == table.groupby("section")["distance"].transform("min")]
        mean = (
            nearest[nearest["label_a"] <= nearest["label_b"]]
            .groupby(["label_a", "label_b"], sort=False)["ratio"]
            .mean()
            .rename("ratio_nearest")
            .reset_index()
        )
        print_top(mean, "ratio_nearest", ["label_a", "label_b", "ratio_nearest"], 15)


@spatial_app.command("neighbors")
@handled
def spatial_neighbors_command(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of a spatial.cells dataset.")],
    method: Annotated[
        str, typer.Option(help="Graph: knn (k nearest other cells), radius or delaunay.")
    ] = "knn",
    k: Annotated[
        int | None, typer.Option(help="Neighbours per cell (--method knn; default 6).")
    ] = None,
    radius: Annotated[
        float | None,
        typer.Option(help="Largest edge length, coordinate units (--method radius; required)."),
    ] = None,
) -> None:
    """The neighbour graph of every section (as squidpy spatial_neighbors): a per-section
    summary (cells, edges, degrees, isolated cells, median edge length) and the edge list
    (section, cell_a, cell_b, distance); publishes <dataset>.neighbors.<graph>. Export the
    edges with 'resistomics export RESULT --table edges -o edges.tsv'; plot the degree and
    edge-length histograms with 'resistomics plot RESULT -o graph.png'.

    Example: resistomics spatial neighbors sp/S0 --method radius --radius 30
    """
    from resistomics.modalities.spatial._stats_analyses import neighbors_analysis

    ws = open_workspace()
    try:
        ws.catalog.resolve(dataset)
        with progress_bar() as bar:
            bar.add_task(f"neighbour graphs of {dataset}", total=None)
            outcome = neighbors_analysis(ws, dataset, method=method, k=k, radius=radius)
    finally:
        ws.close()
    console.print(outcome.message)
    if outcome.tables:
        graph = outcome.tables["graph"]
        console.print(
            f"{len(graph)} section(s), {int(graph['n_cells'].sum())} cells, "
            f"{int(graph['n_edges'].sum())} edges"
        )
        print_top(
            graph,
            None,
            ["section", "n_cells", "n_edges", "mean_degree", "max_degree", "isolated_cells"],
            15,
        )


@spatial_app.command("niches")
@handled
def spatial_niches_command(
    dataset: Annotated[
        str,
        typer.Argument(
            help="study/dataset[@vN] of a spatial.cells dataset; with --cohort (default) "
            "every current spatial dataset of its study is analysed."
        ),
    ],
    contrast: Annotated[
        str,
        typer.Option(
            help="Sample attribute and arms, 'COLUMN:A vs B'; the change is A minus B per "
            "subject (e.g. 'phase:progression vs baseline')."
        ),
    ],
    program: Annotated[
        list[str] | None,
        typer.Option(
            help="Resistance program of --gene-sets scored per cell (repeatable). Default: "
            "every program with 3 genes in the panel."
        ),
    ] = None,
    gene_sets: Annotated[
        str, typer.Option(help="'builtin' (the curated catalogue) or a GMT file.")
    ] = "builtin",
    tumour: Annotated[
        list[str] | None,
        typer.Option(
            help="Tumour cell type(s) of the labels (repeatable). Default: the types named "
            "like tumour / tumor / malignant / cancer / carcinoma."
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Cell-type column. Default: the ingest's --labels-column, else cell_type."
        ),
    ] = None,
    where: Annotated[
        list[str] | None, typer.Option(help="Keep only samples with COLUMN=VALUE (repeatable).")
    ] = None,
    cohort: Annotated[
        bool,
        typer.Option(help="Analyse every current spatial dataset of the study, not only DATASET."),
    ] = True,
    method: Annotated[str, typer.Option(help="Neighbour graph: knn, radius or delaunay.")] = "knn",
    k: Annotated[int, typer.Option(min=1, help="Neighbours per cell of the kNN graph.")] = 6,
    radius: Annotated[
        float | None, typer.Option(help="Radius of the radius graph (coordinate units).")
    ] = None,
    quantile: Annotated[
        float,
        typer.Option(help="Share of a section's tumour cells called program-high (and -low)."),
    ] = 1 / 3,
) -> None:
    """Resistance niches: the fraction of each cell type among the neighbours of
    program-high against program-low tumour cells in every section, its change between
    the contrast's arms per subject, and paired tests across subjects (t-test, Wilcoxon
    signed-rank; BH FDR). Publishes niches.<program>.<contrast> in the study; plot the
    change per subject with 'resistomics plot RESULT -o niches.png'.

    Example: resistomics spatial niches sp/P01-baseline --program DRUG_TOLERANT_PERSISTER
    --contrast "phase:progression vs baseline"
    """
    from resistomics.contrasts import parse_contrast
    from resistomics.modalities.spatial._niche_analysis import niches_analysis

    parsed = parse_contrast(contrast, where or ())
    ws = open_workspace()
    try:
        ws.catalog.resolve(dataset)
        with progress_bar() as bar:
            bar.add_task(f"resistance niches around {dataset}", total=None)
            outcome = niches_analysis(
                ws,
                dataset,
                contrast=parsed,
                program=program or None,
                gene_sets=gene_sets,
                tumour=tumour or None,
                labels=labels,
                cohort=cohort,
                method=method,
                k=k,
                radius=radius,
                quantile=quantile,
            )
        if not outcome.tables:
            import dataclasses

            from resistomics.publishing import result_table

            tables = {t: result_table(ws, outcome.version, t) for t in ("cohort", "sections")}
            outcome = dataclasses.replace(outcome, tables=tables)
    finally:
        ws.close()
    console.print(outcome.message)
    sections = outcome.tables["sections"]
    console.print(
        f"{len(sections)} section(s) of {sections['subject'].nunique()} subject(s), "
        f"{int(sections['n_cells'].sum())} cells"
    )
    tests = outcome.tables["cohort"]
    tests = tests[(tests["effect"] == "difference") & (tests["test"] == "paired_t")]
    print_top(
        tests.sort_values("pvalue", na_position="last"),
        None,
        ["program", "neighbour_type", "n_subjects", "n_increased", "mean_change", "pvalue", "fdr"],
        15,
    )


@spatial_app.command("subcellular")
@handled
def spatial_subcellular_command(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of a spatial.cells dataset.")],
    genes: Annotated[
        str | None,
        typer.Option(help="Comma-separated genes (G1,G2). Default: every gene with transcripts."),
    ] = None,
    confidence: Annotated[
        float, typer.Option(help="Confidence of the Wilson score intervals.")
    ] = 0.95,
) -> None:
    """Nuclear fraction of each gene: the share of its cell-assigned transcripts flagged
    in the nucleus (overlaps_nucleus), per section and over the dataset, with Wilson
    intervals; publishes <dataset>.subcellular.

    Example: resistomics spatial subcellular u2os/merfish_sample --genes MALAT1,TLN1
    """
    from resistomics.modalities.spatial._subcellular_analysis import subcellular_analysis

    ws = open_workspace()
    try:
        ws.catalog.resolve(dataset)
        with progress_bar() as bar:
            bar.add_task(f"nuclear fractions of {dataset}", total=None)
            outcome = subcellular_analysis(ws, dataset, genes=genes, confidence=confidence)
    finally:
        ws.close()
    console.print(outcome.message)
    if outcome.tables:
        per_gene = outcome.tables["per_gene"].sort_values("nuclear_fraction", ascending=False)
        print_top(
            per_gene,
            None,
            ["gene", "n_transcripts", "n_nuclear", "nuclear_fraction", "ci_low", "ci_high"],
            15,
        )
