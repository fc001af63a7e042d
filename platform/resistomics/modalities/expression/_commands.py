"""``resistomics signatures ...``: the expression modality's commands."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import typer

from resistomics.terminal import console, fail, handled, open_workspace, print_top, progress_bar

__all__ = ["signatures_app"]

signatures_app = typer.Typer(
    name="signatures",
    help="Resistance signatures: gene-program scores and differential expression.",
    no_args_is_help=True,
)

SCORE_METHODS = ("score_genes", "singscore")
DE_SCALES = ("auto", "log1p", "log2", "log", "linear", "zscore")
DE_METHODS: dict[str, Literal["t-test", "wilcoxon", "deseq2"]] = {
    "welch": "t-test",
    "t-test": "t-test",
    "wilcoxon": "wilcoxon",
    "deseq2": "deseq2",
}


@signatures_app.command("score")
@handled
def signatures_score(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of an expression dataset.")],
    gene_sets: Annotated[
        str,
        typer.Option("--gene-sets", help="'builtin' (curated resistance programs) or a GMT file."),
    ] = "builtin",
    method: Annotated[
        list[str] | None, typer.Option(help="score_genes and/or singscore (repeatable).")
    ] = None,
    random_state: Annotated[int, typer.Option(help="Seed of score_genes' control-gene draw.")] = 0,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            help="Score above which a cell counts as program-high in the resistant-fraction "
            "tables: 'auto' (default: 95th percentile of baseline cells, per program), one "
            "number for every program, or PROGRAM=NUMBER (repeatable; others stay auto)."
        ),
    ] = None,
) -> None:
    """Score gene programs in every cell/sample; publishes <dataset>.signatures.

    Example: resistomics signatures score t47d/counts --gene-sets h.all.v7.0.symbols.gmt
    """
    methods = tuple(method or SCORE_METHODS)
    for m in methods:
        if m not in SCORE_METHODS:
            fail(f"--method {m!r}: [option] choose {' or '.join(SCORE_METHODS)}")
    cut_offs = _thresholds(threshold or [])
    from resistomics.cluster import dask_client
    from resistomics.modalities.expression._analyses import score_signatures

    ws = open_workspace()
    ws.catalog.resolve(dataset)  # an unknown dataset fails before a cluster starts
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        bar.add_task(f"scoring {dataset}", total=None)
        outcome = score_signatures(
            ws,
            dataset,
            gene_sets=gene_sets,
            methods=methods,  # type: ignore[arg-type]
            random_state=random_state,
            threshold=cut_offs,
        )
    console.print(outcome.message)
    if outcome.tables:
        print_top(
            outcome.tables["sample_scores"],
            "mean_score",
            ["sample_id", "method", "gene_set", "mean_score"],
            15,
        )


def _thresholds(texts: list[str]) -> float | Literal["auto"] | dict[str, float]:
    """``--threshold`` values: [] or ['auto'] -> 'auto'; ['0.3'] -> 0.3; ['P=0.3', ...] -> a map."""
    if not texts or texts == ["auto"]:
        return "auto"
    if len(texts) == 1 and "=" not in texts[0]:
        return _number("--threshold", texts[0])
    per_program: dict[str, float] = {}
    for text in texts:
        name, eq, value = text.partition("=")
        if not eq or not name.strip():
            fail(
                f"--threshold {text!r}: [option] give 'auto', one number, or PROGRAM=NUMBER "
                "per program"
            )
        per_program[name.strip()] = _number("--threshold", value)
    return per_program


def _number(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        fail(f"{option} {text!r}: [option] not a number")
    if not math.isfinite(value):
        fail(f"{option} {text!r}: [option] not a finite number")
    return value


@signatures_app.command("de")
@handled
def signatures_de(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of an expression dataset.")],
    contrast: Annotated[
        str, typer.Option(help="'COLUMN:A vs B' over sample (or cell) attributes.")
    ],
    where: Annotated[
        list[str] | None, typer.Option(help="COLUMN=VALUE filter (repeatable).")
    ] = None,
    method: Annotated[str, typer.Option(help="welch, wilcoxon or deseq2 (counts only).")] = "welch",
    tie_correct: Annotated[
        bool,
        typer.Option(
            help="Tie-corrected Wilcoxon variance (published as <dataset>.de.wilcoxon-tie-corrected...)."
        ),
    ] = False,
    scale: Annotated[
        str,
        typer.Option(
            help="Scale of normalised values, which decides the fold change: log1p (scanpy's "
            "rule), log2 (difference of means = log2FC), log or zscore (difference of means), "
            "linear (log2 ratio of means), or auto (recorded at ingest, else guessed from "
            "the value range). Counts are always log1p-normalised."
        ),
    ] = "auto",
) -> None:
    """Differential expression between two arms; publishes <dataset>.de.<method>.<contrast>.

    Example: resistomics signatures de t47d/counts --contrast "esr1_genotype:Y537S vs WT" --where treatment=veh
    """
    from resistomics.contrasts import parse_contrast

    if method not in DE_METHODS:
        fail(f"--method {method!r}: [option] choose welch, wilcoxon or deseq2")
    if scale not in DE_SCALES:
        fail(f"--scale {scale!r}: [option] choose {', '.join(DE_SCALES)}")
    c = parse_contrast(contrast, where or [])
    from resistomics.cluster import dask_client
    from resistomics.modalities.expression._analyses import differential_expression

    ws = open_workspace()
    ws.catalog.resolve(dataset)  # an unknown dataset fails before a cluster starts
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        bar.add_task(f"DE {dataset}", total=None)
        outcome = differential_expression(
            ws,
            dataset,
            c,
            method=DE_METHODS[method],
            tie_correct=tie_correct,
            scale=scale,  # type: ignore[arg-type]
        )
    console.print(outcome.message)
    if outcome.tables:
        de = outcome.tables["de"]
        effect = "log2_fold_change" if "log2_fold_change" in de.columns else "mean_difference"
        console.print(f"fold change: {de['fold_change_rule'].iloc[0]}" if len(de) else "")
        print_top(de, None, ["gene_id", "gene_symbol", effect, "pval", "pval_adj"], 15)
