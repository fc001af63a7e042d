"""The ``resistomics`` command line (library commands).

``flows/cli.py`` adds the commands that need Prefect (``serve``, ``demo``) and is what
the installed ``resistomics`` script runs; every command here works without Prefect.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperCommand

from resistomics.terminal import check_output, console, fail, handled, print_table, progress_bar
from resistomics.terminal import open_workspace as _workspace

__all__ = ["app", "fail", "run_cli"]

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
catalog_app = typer.Typer(
    help="What the catalog holds: datasets, versions, lineage.", no_args_is_help=True
)
app.add_typer(study_app, name="study")
app.add_typer(catalog_app, name="catalog")


def _add_modality_commands() -> None:
    """Each registered modality's own command group (``signatures``, ``variants``, ...)."""
    from resistomics.modalities import modalities

    for m in modalities().values():
        group = m.commands()
        if group is not None:
            app.add_typer(group)


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
    pseudonymise: Annotated[
        bool,
        typer.Option(
            "--pseudonymise",
            help="Register subject IDs as keyed-hash pseudonyms (subj-<12 hex>); the key "
            "and the pseudonym -> ID map stay outside the data root "
            "(RESISTOMICS_PRIVACY__KEY_FILE). A pseudonymised study stays so.",
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

    With --pseudonymise (or RESISTOMICS_PRIVACY__PSEUDONYMISE=true for every new study)
    no raw subject ID reaches the catalog or anything made from it; a sample ID or other
    field that contains a subject ID is refused.

    Example: resistomics study register samples.tsv --study t47d
    """
    from resistomics.catalog import parse_sample_sheet

    rows = parse_sample_sheet(samplesheet)
    ws = _workspace()
    exists = study in ws.catalog.studies()
    wanted = (
        ws.catalog.pseudonym_key(study) is not None
        if exists and not pseudonymise
        else pseudonymise or ws.settings.privacy.pseudonymise
    )
    summary = ws.catalog.register_study(
        study,
        rows,
        description=description,
        allow_design_change=allow_design_change,
        pseudonyms=ws.pseudonyms() if wanted else None,
    )
    recorded = (
        f"; {summary.design_changes} design change(s) recorded" if summary.design_changes else ""
    )
    if wanted:
        recorded += "; subject IDs pseudonymised"
    console.print(
        f"study {summary.study}: {summary.added} added, {summary.updated} updated, "
        f"{summary.unchanged} unchanged{recorded}",
        markup=False,
        soft_wrap=True,
    )


def print_json(document: Any) -> None:
    """Machine-readable output: JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@study_app.command("contrast")
@handled
def study_contrast(
    contrast: Annotated[str, typer.Argument(help="'COLUMN:A vs B' over the sample attributes.")],
    study: Annotated[str, typer.Option("--study", "-s", help="Study name.")],
    where: Annotated[
        list[str] | None, typer.Option("--where", help="Filter COLUMN=VALUE (repeatable).")
    ] = None,
) -> None:
    """Register a contrast of a study: the analyse deployment runs every per-contrast
    analysis (methylation's DML test and its DMRs, ...) on each registered contrast of a
    new dataset of the study.

    Example: resistomics study contrast 'case:SLE vs HC' --study rrbs
    """
    from resistomics.contrasts import parse_contrast, unknown_attribute, unknown_value
    from resistomics.errors import InputError

    parsed = parse_contrast(contrast, where or [])
    ws = _workspace()
    samples = ws.catalog.samples(study)
    if parsed.column not in samples.columns:
        raise InputError(contrast, "contrast-column", unknown_attribute(parsed.column, samples))
    values = samples[parsed.column].astype(str).to_numpy()
    keep = parsed.selected(samples)
    for arm in (parsed.group_a, parsed.group_b):
        if not (keep & (values == arm)).any():
            raise InputError(contrast, "contrast-arm", unknown_value(parsed.column, arm, samples))
    info = ws.catalog.save_contrast(
        study,
        column=parsed.column,
        group_a=parsed.group_a,
        group_b=parsed.group_b,
        where=dict(parsed.where),
    )
    n_a = int((keep & (values == parsed.group_a)).sum())
    n_b = int((keep & (values == parsed.group_b)).sum())
    console.print(
        f"study {study}: contrast {info.name!r} registered ({n_a} vs {n_b} samples)",
        markup=False,
        soft_wrap=True,
    )


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


def _choices(exc: Any) -> str:
    """``a, b or c`` from a registry's UnknownNameError, with its did-you-mean."""
    known = list(exc.known)
    listed = (
        ", ".join(known[:-1]) + (" or " if len(known) > 1 else "") + (known[-1] if known else "")
    )
    return listed + (f"; did you mean {exc.suggestion!r}?" if exc.suggestion else "")


def _extra_options(extra: list[str]) -> dict[str, str]:
    """The command line's extra ``--name value`` (or ``--name=value``) pairs, names with
    underscores: the options a modality or a plot declares, validated by their owner."""
    from resistomics.errors import InputError

    values: dict[str, str] = {}
    args = list(extra)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--"):
            raise InputError(repr(arg), "option", "an unexpected argument")
        name, eq, value = arg[2:].partition("=")
        if not eq:
            if not args or args[0].startswith("--"):
                raise InputError(f"--{name}", "option", "needs a value")
            value = args.pop(0)
        values[name.replace("-", "_")] = value
    return values


def _modality_options(plugin: Any, extra: list[str], *, file: str) -> Any:
    """The modality's ingest options from the command line's extra ``--name value`` pairs."""
    return plugin.parse_options(_extra_options(extra), file=file)


class _IngestTimedOut(BaseException):
    """Raised in the main thread when ``resistomics ingest`` runs out of time.

    A ``BaseException``: no ``except Exception`` on the way swallows it, and the ingest's
    own clean-up (its staged version removed, the file given back) runs as for any abort.
    """


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[Callable[[], None]]:
    """Interrupt the block with :class:`_IngestTimedOut` after ``seconds`` of wall time.

    A ``SIGALRM`` timer, as Prefect interrupts a timed-out task running in the main
    thread; the same limit (``RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS``) as the
    flow's ingest task. Yields a function that stops the clock (called once the ingest
    has returned, so a late alarm cannot undo a finished ingest). No limit when
    ``seconds`` is None or off the main thread (signals are delivered there only).
    """
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    stopped = False

    def on_alarm(signum: int, frame: Any) -> None:
        if not stopped:
            raise _IngestTimedOut

    def stop() -> None:
        nonlocal stopped
        stopped = True
        signal.setitimer(signal.ITIMER_REAL, 0)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield stop
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handled
def ingest(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="File or 10x directory to ingest.")],
    study: Annotated[str, typer.Option("--study", "-s", help="Study the data belongs to.")],
    modality: Annotated[
        str | None,
        typer.Option(help="Data modality (default: the one whose reader recognises the file)."),
    ] = None,
    dataset: Annotated[
        str | None, typer.Option(help="Dataset name (default: from the file name).")
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="One of the modality's formats (default: detected)."),
    ] = None,
) -> None:
    """Land a file in the landing zone, validate it and publish it (or quarantine it).

    A file outside the landing zone is copied to <landing>/<study>/<modality>/ first.
    The modality's own options follow as --NAME VALUE (expression: --values
    counts|normalized|auto, --sample NAME; `resistomics modalities` lists them all).
    Exits non-zero with one line naming the file, place and rule when the file is bad.

    Example: resistomics ingest counts.tsv.gz --study t47d --modality expression
    """
    from resistomics.errors import UnknownNameError
    from resistomics.modalities import guess_modality
    from resistomics.modalities import modality as find_modality
    from resistomics.names import check_name

    # Everything that becomes a path or decides where the file goes, and every choice,
    # is checked before a byte is copied or a cluster starts: nothing is left in the
    # landing zone by a refused command, and a typo costs no cluster start-up.
    check_name("study", study)
    if modality is not None:
        check_name("modality", modality)
    if dataset is not None:
        check_name("dataset", dataset)
    if not path.exists() and not path.is_symlink():
        fail(f"{path}: [file-exists] no such file or directory")
    try:
        plugin = find_modality(modality) if modality else guess_modality(str(path))
    except UnknownNameError as exc:
        fail(f"--modality {modality!r}: [option] choose {_choices(exc)}")
    if fmt is not None:
        try:
            plugin.reader(fmt)
        except UnknownNameError as exc:
            fail(f"--format {fmt!r}: [option] choose {_choices(exc)}")
    options = _modality_options(plugin, ctx.args, file=str(path))
    from resistomics.cluster import dask_client
    from resistomics.pipeline import ingest as run_ingest
    from resistomics.pipeline import (
        ingest_timeout_error,
        land,
        land_remote,
        published_by_run,
        quarantine_unread,
    )
    from resistomics.pipeline._landing import inside

    ws = _workspace()
    ws.catalog.samples(study)  # an unknown study: DatasetNotFoundError, nothing copied
    src = str(path.absolute())
    zone = ws.settings.resolved_landing_zone
    if not inside(src, zone, follow=False):
        if "://" in zone and not zone.startswith("file://"):
            target = land_remote(path, ws.landing, study, plugin.name)
        else:
            target = str(land(path, Path(zone.removeprefix("file://")) / study / plugin.name))
        if not inside(target, zone):  # names are checked above; this cannot happen
            fail(f"{target}: [landing-zone] outside the landing zone {zone}")
        console.print(f"landed {path} -> {target}")
        src = target
    # the flow's limit: a file that keeps a reader busy fails with [ingest-timeout], what
    # this run staged is removed and the file is quarantined (not left to be retried)
    timeout = ws.settings.limits.ingest_timeout_seconds
    run_id = f"cli-{uuid.uuid4().hex}"
    try:
        with (
            _time_limit(timeout) as stop_clock,
            dask_client(ws.settings.cluster),
            progress_bar() as bar,
        ):
            task = bar.add_task(f"ingest {path.name}", total=None)
            outcome = run_ingest(
                ws,
                src,
                study=study,
                modality=plugin.name,
                dataset=dataset,
                fmt=fmt,
                options=options,
                run_id=run_id,
                progress=lambda n: bar.advance(task, n),
            )
            stop_clock()
    except _IngestTimedOut:
        fresh = _workspace()  # the interrupted run's may be mid-transaction
        published = published_by_run(fresh, src, study=study, run_id=run_id, timeout=timeout)
        if published is not None:  # the alarm came after the publication committed
            console.print(published.message)
            return
        late = quarantine_unread(
            fresh,
            src,
            ingest_timeout_error(src, timeout),
            study=study,
            modality=plugin.name,
            dataset=dataset,
            run_id=run_id,
        )
        if late is None:
            fail(f"{src}: [ingest-timeout] the ingest did not finish within {timeout:g} s")
        fail(late.message)
    if outcome.status == "quarantined":
        fail(outcome.message)
    console.print(outcome.message)


@app.command("modalities")
@handled
def list_modalities() -> None:
    """The registered modalities: their formats, ingest options and analyses (with the
    options of each analysis's plot, see `resistomics plot --help`)."""
    from resistomics.modalities import modalities
    from resistomics.modalities._plugin import option_flags

    def shown(a: Any) -> str:
        plot = option_flags(a.plot_options)
        return a.name + ("*" if a.default else "") + (f" (plot {' '.join(plot)})" if plot else "")

    table = Table(title="modalities")
    for c in ("modality", "formats", "ingest options", "analyses (* = run on publish)"):
        table.add_column(c, overflow="fold")
    for m in modalities().values():
        formats = ", ".join(r.name for r in m.readers)
        options = ", ".join(option_flags(m.options)) or "-"
        analyses = ", ".join(shown(a) for a in m.analyses) or "-"
        table.add_row(m.name, formats, options, analyses)
    print_table(table)


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
        fail(f"{version.ref}: [validation] {len(report.failures)} expectation(s) failed")


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


def _export_formats() -> tuple[str, ...]:
    """tsv and parquet (one table), then every whole-store format a layout offers."""
    from resistomics.storage import layouts

    stores = sorted({f for x in layouts() for f in x.exports})
    return ("tsv", "parquet", *stores)


@app.command()
@handled
def export(
    dataset: Annotated[str, typer.Argument(help="study/dataset[@vN] of any dataset or result.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="tsv or parquet (one table); h5ad (a matrix); spatialdata (a spatial store).",
        ),
    ] = "tsv",
    table: Annotated[
        str | None, typer.Option(help="Which table of the dataset (default: the first).")
    ] = None,
) -> None:
    """Export one table of a dataset as TSV or Parquet (result tables, variant calls, a
    matrix's obs/var), or a whole store in a format its layout offers (expression: .h5ad).

    Example: resistomics export t47d/counts.signatures --table sample_scores --format tsv -o scores.tsv

    Example: resistomics export t47d/counts --format h5ad -o t47d.h5ad

    Example: resistomics export u2os/merfish_sample --format spatialdata -o merfish.zarr
    """
    from resistomics.errors import UnknownNameError
    from resistomics.publishing import layout_of

    formats = _export_formats()
    if fmt not in formats:
        fail(f"--format {fmt!r}: [option] choose {_choices(UnknownNameError('', fmt, formats))}")
    check_output(output)
    ws = _workspace()
    version = ws.catalog.resolve(dataset)
    spec = layout_of(version)
    base = ws.root.to_path(version.uri)
    if fmt in spec.exports:
        detail = spec.exports[fmt](ws.root, base, output)
        console.print(f"wrote {version.ref} ({detail}) to {output}")
        return
    if fmt not in ("tsv", "parquet"):
        offered = ", ".join(spec.exports) or "none"
        fail(
            f"--format {fmt}: [export-format] {version.ref} ({spec.spec}) offers tsv, parquet "
            f"and {offered}"
        )
    names = spec.tables(ws.root, base) if spec.tables is not None else []
    if spec.read_table is None or not names:
        fail(f"{version.ref}: [export-table] {spec.spec} has no tables to export")
    if table is None and spec.exports:
        # a store, not a table: say how to get all of it
        fail(
            f"{version.ref}: [export-table] {version.dataset_type} is a store, not a table: "
            "export it with "
            f"--format {' or --format '.join(spec.exports)}, one of its tables with --table "
            f"{'|'.join(names)}, or open {ws.root.to_url(base)}/{spec.opens} with "
            f"{spec.opened_by}"
        )
    name = table or names[0]
    if name not in names:
        fail(f"--table {name!r}: [option] choose {_choices(UnknownNameError('', name, names))}")
    frame = spec.read_table(ws.root, base, name)
    if fmt == "tsv":
        frame.to_csv(output, sep="\t", index=False)
    else:
        frame.to_parquet(output, index=False)
    console.print(f"wrote {len(frame)} rows of {version.ref}:{name} to {output}")


def _plot_options_help() -> str:
    """The ``plot --help`` epilog: every plot the registry offers and its options."""
    from rich.markup import escape

    from resistomics.modalities import plot_options, plots_available
    from resistomics.modalities._plugin import option_flags

    drawn = plots_available()
    paragraphs = ["Plots and their options (--NAME VALUE after the dataset):"]
    for key, model in plot_options().items():
        flags = [
            f"{flag} ({field.description or 'no description'})"
            for flag, field in zip(option_flags(model), model.model_fields.values(), strict=True)
        ]
        paragraphs.append(f"{key}: {drawn[key]}; " + ("; ".join(flags) or "no options"))
    return "\n\n".join(escape(p) for p in paragraphs)


class _PlotCommand(TyperCommand):
    """``plot``, whose help lists the options each registered plot declares (read from
    the registry when the help is shown, so a plugin's plots and options appear too)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:  # typer vendors its click
        self.epilog = _plot_options_help()
        super().format_help(ctx, formatter)


@app.command(
    cls=_PlotCommand,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handled
def plot(
    ctx: typer.Context,
    result: Annotated[str, typer.Argument(help="study/dataset[@vN] of a result or a dataset.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG file to write.")],
) -> None:
    """Plot a dataset: a result with its analysis's plot (program scores by sample and
    phase, a volcano plot for DE, clone prevalence), a source dataset's QC plot.

    Each plot's own options follow the dataset as --NAME VALUE (listed below).
    A misspelt option fails before anything is read, naming the closest one.

    Example: resistomics plot t47d/counts.signatures -o persisters.png --gene-set DRUG_TOLERANT_PERSISTER
    """
    from resistomics.modalities import plot_dataset

    options = _extra_options(ctx.args)
    check_output(output)
    ws = _workspace()
    version = ws.catalog.resolve(result)
    plot_dataset(ws, version, output, **options)
    console.print(f"wrote {output}")


_add_modality_commands()


def run_cli() -> None:
    """Entry point used when Prefect-backed commands are not needed."""
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
