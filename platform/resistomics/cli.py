"""The ``resistomics`` command line (library commands).

``flows/cli.py`` adds the commands that need Prefect (``serve``, ``demo``) and is what
the installed ``resistomics`` script runs; every command here works without Prefect.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

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
from resistomics.errors import ResistomicsError, printable

__all__ = ["app", "fail", "run_cli"]

# User text (study, file and sample names, messages) is never rich markup or emoji codes:
# markup and emoji are off for every print and table cell; styles are given explicitly.
console = Console(markup=False, emoji=False, highlight=False)
err = Console(stderr=True, markup=False, emoji=False, highlight=False)

app = typer.Typer(
    name="resistomics",
    help="Multiomic cancer treatment-resistance platform: ingest, validate, store, and compute resistance signatures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
study_app = typer.Typer(
    help="Register and inspect study designs (sample sheets).", no_args_is_help=True
)
signatures_app = typer.Typer(
    help="Resistance signatures: gene-program scores and differential expression.",
    no_args_is_help=True,
)
catalog_app = typer.Typer(
    help="What the catalog holds: datasets, versions, lineage.", no_args_is_help=True
)
app.add_typer(study_app, name="study")
app.add_typer(signatures_app, name="signatures")
variants_app = typer.Typer(
    help="Genetic resistance: clonal evolution and recurrent mutations from variant calls.",
    no_args_is_help=True,
)
app.add_typer(catalog_app, name="catalog")
app.add_typer(variants_app, name="variants")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one clear line to stderr and exit non-zero.

    The message is printed as it is: rule tags such as ``[validation]`` and user text such
    as a study named ``[/i]`` or ``:x:`` are not rich markup or emoji codes, and control
    characters (a newline in a file name) are escaped so the line stays one line.
    """
    err.print(Text.assemble(("error:", "bold red"), " ", printable(message)), soft_wrap=True)
    raise typer.Exit(code)


def handled[F: Callable[..., Any]](fn: F) -> F:
    """Turn platform errors into one line on stderr and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ResistomicsError as exc:
            fail(str(exc))
        except KeyError as exc:  # dataset-type / reader look-ups
            fail(str(exc).strip("'\""))

    return wrapper  # type: ignore[return-value]


def _workspace(settings: Settings | None = None) -> Any:
    from resistomics.pipeline import Workspace

    return Workspace.open(settings or load_settings())


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


@app.command()
@handled
def init() -> None:
    """Create the data root, catalog and landing zone, or upgrade an existing catalog.

    An existing catalog is brought to this release's schema revision (its data kept);
    the line ``catalog ...`` says whether it was created, upgraded or already current.

    Example: RESISTOMICS_DATA_ROOT=/data/resistomics resistomics init
    """
    ws = _workspace()
    console.print(f"data root     {ws.settings.data_root}")
    console.print(f"catalog       {ws.settings.resolved_catalog_url}")
    console.print(f"              {ws.catalog.schema.describe()}")
    console.print(f"landing zone  {ws.settings.resolved_landing_zone}")


@study_app.command("register")
@handled
def study_register(
    samplesheet: Annotated[Path, typer.Argument(help="CSV/TSV sample sheet, one row per sample.")],
    study: Annotated[str, typer.Option("--study", "-s", help="Study name.")],
    description: Annotated[str, typer.Option(help="Free-text description.")] = "",
    allow_design_change: Annotated[
        bool,
        typer.Option(
            "--allow-design-change",
            help="Allow moving samples to other subjects after the study published data "
            "(the change is recorded).",
        ),
    ] = False,
) -> None:
    """Register (or extend) a study from a sample sheet.

    Reserved columns: sample_id (required), subject_id, timepoint, phase
    (baseline/on-treatment/progression/relapse), treatment, response
    (sensitive/resistant/partial/unknown), batch, site, subject_kind; any other column is
    kept as a sample annotation. Once the study has published data, changed values are
    recorded as design changes (``study show --json`` lists them), and a sample moving
    to another subject is refused unless --allow-design-change.

    Example: resistomics study register samples.tsv --study t47d
    """
    from resistomics.catalog import parse_sample_sheet

    rows = parse_sample_sheet(samplesheet)
    summary = _workspace().catalog.register_study(
        study, rows, description=description, allow_design_change=allow_design_change
    )
    recorded = (
        f"; {summary.design_changes} design change(s) recorded" if summary.design_changes else ""
    )
    console.print(
        f"study {summary.study}: {summary.added} added, {summary.updated} updated, "
        f"{summary.unchanged} unchanged{recorded}",
        markup=False,
        soft_wrap=True,
    )


def print_table(table: Table) -> None:
    """A table on stdout: fitted to a terminal; piped, every value in full (no wrapping)."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=100_000, no_color=True, highlight=False, markup=False, emoji=False).print(
            table
        )


def print_json(document: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


json_option = typer.Option("--json", help="Print JSON (machine-readable) instead of a table.")


@study_app.command("show")
@handled
def study_show(
    study: Annotated[str, typer.Argument(help="Study name.")],
    as_json: Annotated[bool, json_option] = False,
) -> None:
    """Show a study's samples and their design attributes.

    With --json: {"study", "samples": [one object per sample], "design_changes": [...]}.
    """
    ws = _workspace()
    frame = ws.catalog.samples(study)
    if as_json:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        changes = [
            {k: v for k, v in asdict(c).items() if k != "study"}
            for c in ws.catalog.design_changes(study)
        ]
        print_json({"study": study, "samples": records, "design_changes": changes})
        return
    table = Table(title=f"study {study}: {len(frame)} samples")
    for c in frame.columns:
        table.add_column(str(c))
    for _, row in frame.iterrows():
        table.add_row(*["" if v is None or v != v else str(v) for v in row.to_list()])
    print_table(table)


@app.command()
@handled
def ingest(
    path: Annotated[Path, typer.Argument(help="File or 10x directory to ingest.")],
    study: Annotated[str, typer.Option("--study", "-s", help="Study the data belongs to.")],
    modality: Annotated[str, typer.Option(help="Data modality.")] = "expression",
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (default: from the file name).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="bulk-table, 10x-mtx or h5ad (default: detected)."),
    ] = None,
    sample: Annotated[
        str | None, typer.Option(help="Sample of every cell (10x directory of one sample).")
    ] = None,
    values: Annotated[
        str | None, typer.Option(help="counts, normalized or auto (default per format).")
    ] = None,
) -> None:
    """Land a file in the landing zone, validate it and publish it (or quarantine it).

    A file outside the landing zone is copied to <landing>/<study>/<modality>/ first.
    Exits non-zero with one line naming the file, place and rule when the file is bad.

    Example: resistomics ingest counts.tsv.gz --study t47d --modality expression
    """
    from resistomics.cluster import dask_client
    from resistomics.modalities import known_modalities
    from resistomics.names import check_name
    from resistomics.pipeline import ingest as run_ingest
    from resistomics.pipeline import land
    from resistomics.pipeline._landing import inside

    # Everything that becomes a path or decides where the file goes is checked before a
    # byte is copied: nothing is left in the landing zone by a refused command.
    check_name("study", study)
    check_name("modality", modality)
    if dataset is not None:
        check_name("dataset", dataset)
    if values not in (None, "auto", "counts", "normalized"):
        fail(f"--values {values!r}: [option] choose counts, normalized or auto")
    if modality not in known_modalities():
        fail(f"--modality {modality!r}: [option] choose {', '.join(known_modalities())}")
    if not path.exists() and not path.is_symlink():
        fail(f"{path}: [file-exists] no such file or directory")
    ws = _workspace()
    ws.catalog.samples(study)  # an unknown study: DatasetNotFoundError, nothing copied
    src = str(path.absolute())
    zone = ws.settings.resolved_landing_zone
    if not inside(src, zone, follow=False):
        target = land(path, Path(zone) / study / modality)
        if not inside(str(target), zone):  # names are checked above; this cannot happen
            fail(f"{target}: [landing-zone] outside the landing zone {zone}")
        console.print(f"landed {path} -> {target}")
        src = str(target)
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        task = bar.add_task(f"ingest {path.name}", total=None)
        outcome = run_ingest(
            ws,
            src,
            study=study,
            modality=modality,
            dataset=dataset,
            fmt=fmt,
            sample=sample,
            values=values,  # type: ignore[arg-type]
            progress=lambda n: bar.advance(task, n),
        )
    if outcome.status == "quarantined":
        fail(outcome.message)
    console.print(outcome.message)


@app.command()
@handled
def validate(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN]")],
) -> None:
    """Re-run a published dataset's expectations and print the report.

    Example: resistomics validate t47d/counts
    """
    from resistomics.cluster import dask_client
    from resistomics.pipeline import validate_version

    ws = _workspace()
    version = ws.catalog.resolve(dataset)
    with dask_client(ws.settings.cluster):
        report = validate_version(ws, version)
    table = Table(title=f"{version.ref} ({version.dataset_type})")
    for c in ("table", "rule", "result", "failing", "examples"):
        table.add_column(c)
    for o in report.outcomes:
        table.add_row(
            o.table,
            o.rule,
            "pass" if o.success else ("error" if o.errored else "FAIL"),
            str(o.unexpected_count),
            ", ".join(o.examples[:3]),
        )
    console.print(table)
    if not report.success:
        fail(f"{version.ref}: {len(report.failures)} expectation(s) failed")


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
    from resistomics.cluster import dask_client
    from resistomics.pipeline import score_signatures

    cut_offs = _thresholds(threshold or [])
    ws = _workspace()
    methods = tuple(method or ("score_genes", "singscore"))
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
        _print_top(
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
            fail(f"--threshold {text!r}: give 'auto', one number, or PROGRAM=NUMBER per program")
        per_program[name.strip()] = _number("--threshold", value)
    return per_program


def _number(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        fail(f"{option} {text!r}: not a number")
    if not math.isfinite(value):
        fail(f"{option} {text!r}: not a finite number")
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
    from resistomics.cluster import dask_client
    from resistomics.pipeline import differential_expression, parse_contrast

    methods: dict[str, Literal["t-test", "wilcoxon", "deseq2"]] = {
        "welch": "t-test",
        "t-test": "t-test",
        "wilcoxon": "wilcoxon",
        "deseq2": "deseq2",
    }
    if method not in methods:
        fail(f"--method {method!r}: choose welch, wilcoxon or deseq2")
    scales = ("auto", "log1p", "log2", "log", "linear", "zscore")
    if scale not in scales:
        fail(f"--scale {scale!r}: choose {', '.join(scales)}")
    ws = _workspace()
    c = parse_contrast(contrast, where or [])
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        bar.add_task(f"DE {dataset}", total=None)
        outcome = differential_expression(
            ws,
            dataset,
            c,
            method=methods[method],
            tie_correct=tie_correct,
            scale=scale,  # type: ignore[arg-type]
        )
    console.print(outcome.message)
    if outcome.tables:
        de = outcome.tables["de"]
        effect = "log2_fold_change" if "log2_fold_change" in de.columns else "mean_difference"
        console.print(f"fold change: {de['fold_change_rule'].iloc[0]}" if len(de) else "")
        _print_top(de, None, ["gene_id", "gene_symbol", effect, "pval", "pval_adj"], 15)


def _print_top(frame: Any, sort: str | None, columns: list[str], n: int) -> None:
    top = frame.sort_values(sort, ascending=False) if sort else frame
    table = Table()
    for c in columns:
        table.add_column(c)
    for _, row in top.head(n).iterrows():
        table.add_row(
            *[f"{row[c]:.4g}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        )
    console.print(table)


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
    from resistomics.cluster import dask_client
    from resistomics.pipeline import clonal_evolution

    ws = _workspace()
    with dask_client(ws.settings.cluster), progress_bar() as bar:
        task = bar.add_task(f"clonal evolution of {dataset} (subjects)", total=None)
        outcome = clonal_evolution(
            ws,
            dataset,
            max_clones=max_clones,
            patience=patience or None,
            precision=_precision(precision),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    console.print(outcome.message)
    if outcome.tables:
        emergent = outcome.tables["emergent_resistance"]
        console.print(f"emergent catalogued resistance mutations: {len(emergent)}")
        if len(emergent):
            _print_top(
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
    from resistomics.cluster import dask_client
    from resistomics.pipeline import parse_contrast, recurrent_mutations

    ws = _workspace()
    with dask_client(ws.settings.cluster):
        outcome = recurrent_mutations(
            ws, datasets, parse_contrast(contrast, where or []), paired=paired
        )
    console.print(outcome.message)
    if outcome.tables:
        _print_top(
            outcome.tables["recurrent"],
            None,
            ["gene", "mutated_a", "mutated_b", "test", "pvalue_adj", "catalogue_gene"],
            15,
        )


@catalog_app.command("ls")
@handled
def catalog_ls(
    study: Annotated[str | None, typer.Option("--study", "-s", help="Only this study.")] = None,
    all_versions: Annotated[
        bool, typer.Option("--all", help="Also staged, quarantined and superseded versions.")
    ] = False,
    as_json: Annotated[bool, json_option] = False,
) -> None:
    """List datasets and versions (an unknown --study is an error).

    With --json: one object per version (ref, study, dataset, number, kind, modality,
    dataset_type, status, shape, layout, layout_version, uri, digest, manifest_digest,
    parents, created_at).

    Example: resistomics catalog ls --study t47d --all
    """
    from resistomics.catalog import VersionStatus

    ws = _workspace()
    versions = ws.catalog.versions(
        study=study, status=None if all_versions else VersionStatus.PUBLISHED
    )
    by_id = {v.id: v for v in ws.catalog.versions()}

    def parents(v: Any) -> list[str]:
        return [by_id[p].ref for p in v.parent_ids if p in by_id]

    if as_json:
        print_json(
            [
                {
                    "ref": v.ref,
                    "study": v.study,
                    "dataset": v.dataset,
                    "number": v.number,
                    "kind": v.kind.value,
                    "modality": v.modality,
                    "dataset_type": v.dataset_type,
                    "status": v.status.value,
                    "shape": list(v.shape),
                    "layout": v.layout,
                    "layout_version": v.layout_version,
                    "uri": v.uri,
                    "digest": v.digest,
                    "manifest_digest": v.manifest_digest,
                    "parents": parents(v),
                    "created_at": v.created_at,
                }
                for v in versions
            ]
        )
        return
    table = Table(title="catalog")
    for c in ("dataset", "type", "status", "shape", "parents", "uri"):
        table.add_column(c, overflow="fold")
    for v in versions:
        table.add_row(
            v.ref,
            v.dataset_type,
            v.status.value,
            "x".join(map(str, v.shape)),
            ", ".join(parents(v)),
            v.uri,
        )
    print_table(table)


@catalog_app.command("verify")
@handled
def catalog_verify(
    all_files: Annotated[
        bool, typer.Option("--all", help="Re-hash every stored file (default: a sample).")
    ] = False,
    sample: Annotated[
        int, typer.Option(min=0, help="Files re-hashed per version without --all.")
    ] = 16,
    sources: Annotated[bool, typer.Option(help="Also re-hash the archived landed files.")] = True,
) -> None:
    """Check that published versions exist, open and match their per-file digests.

    Exits non-zero when any check finds a problem (a changed, missing or extra file
    is named); versions published before manifests existed are warnings.

    Example: resistomics catalog verify --all
    """
    from resistomics.pipeline import check_integrity

    ws = _workspace()
    checks = check_integrity(ws, verify_sources=sources, sample=None if all_files else sample)
    problems = [c for c in checks if c.result == "problem"]
    warnings = [c for c in checks if c.result == "warning"]
    for c in [*problems, *warnings]:
        console.print(f"{c.result}: {c.ref} [{c.check}] {c.detail}", markup=False, soft_wrap=True)
    console.print(
        f"{len(checks)} checks, {len(problems)} problem(s), {len(warnings)} warning(s)"
        + ("" if all_files else f" (sampled: {sample} file(s) per version; --all for every file)"),
        markup=False,
        soft_wrap=True,
    )
    if problems:
        raise typer.Exit(1)


@app.command()
@handled
def export(
    result: Annotated[
        str,
        typer.Argument(help="study/dataset[@vN] of a result table, or of an expression dataset."),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write.")],
    fmt: Annotated[
        str, typer.Option("--format", help="tsv or parquet (tables); h5ad (expression).")
    ] = "tsv",
    table: Annotated[
        str | None, typer.Option(help="Which table of the result (default: the first).")
    ] = None,
) -> None:
    """Export a result table as TSV or Parquet, or an expression dataset as .h5ad.

    Example: resistomics export t47d/counts.signatures --table sample_scores --format tsv -o scores.tsv

    Example: resistomics export t47d/counts --format h5ad -o t47d.h5ad
    """
    from resistomics.storage import export_h5ad, read_table

    if fmt not in ("tsv", "parquet", "h5ad"):
        fail(f"--format {fmt!r}: choose tsv, parquet or h5ad")
    ws = _workspace()
    version = ws.catalog.resolve(result)
    base = ws.root.to_path(version.uri)
    if version.dataset_type.startswith("expression."):
        if fmt != "h5ad":
            fail(
                f"{version.ref} is a {version.dataset_type} store, not a table: export it with "
                f"--format h5ad, or open {ws.root.to_url(base)}/expression.zarr with "
                "anndata.read_zarr"
            )
        summary = export_h5ad(ws.root, base, output)
        console.print(
            f"wrote {version.ref} ({summary.n_obs} x {summary.n_vars}, {summary.nnz} non-zeros, "
            f"design in obs) to {output}"
        )
        return
    if fmt == "h5ad":
        fail(f"--format h5ad exports expression datasets; {version.ref} is {version.dataset_type}")
    names = sorted(
        p.rsplit("/", 1)[-1][: -len(".parquet")]
        for p in ws.root.fs.ls(base)
        if str(p).endswith(".parquet")
    )
    if not names:
        fail(f"{version.ref} ({version.dataset_type}) has no tables to export")
    name = table or names[0]
    if name not in names:
        fail(f"{version.ref} has no table {name!r} (tables: {', '.join(names)})")
    frame = read_table(ws.root, f"{base}/{name}.parquet")
    if fmt == "tsv":
        frame.to_csv(output, sep="\t", index=False)
    else:
        frame.to_parquet(output, index=False)
    console.print(f"wrote {len(frame)} rows of {version.ref}:{name} to {output}")


@app.command()
@handled
def plot(
    result: Annotated[str, typer.Argument(help="study/dataset[@vN] of a signatures or DE result.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
    gene_set: Annotated[
        str | None, typer.Option(help="Program to plot (signatures; default: all).")
    ] = None,
) -> None:
    """Plot a result: program scores by sample and phase, or a volcano plot for DE.

    Example: resistomics plot t47d/counts.signatures -o scores.png
    """
    from resistomics.plots import plot_result

    ws = _workspace()
    version = ws.catalog.resolve(result)
    plot_result(ws, version, output, gene_set=gene_set)
    console.print(f"wrote {output}")


def run_cli() -> None:
    """Entry point used when Prefect-backed commands are not needed."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
