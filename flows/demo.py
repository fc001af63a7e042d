"""The main job on the embedded default: ``resistomics demo``.

Starts a Prefect server, a local Dask cluster (scheduler + 2 worker processes) and the
deployments; registers two studies; drops files into the landing zone and announces
them with ``resistomics.file.landed``. From there the events drive everything: ingest
-> validation -> publish (or quarantine) -> ``dataset.published`` -> signatures ->
``signature.published`` -> report. The demo only watches the catalog, then runs two
differential-expression contrasts, draws plots and prints where to look.

Data:
* a generated single-cell cohort (6 subjects x baseline/progression) whose
  drug-tolerant-persister subpopulation expands under therapy (planted truth);
* the real T47D ESR1-mutant bulk RNA-seq counts (../shared/data/t47d_esr1), copied at
  run time;
* one deliberately bad 10x directory (fractional "counts") that must be quarantined;
* generated somatic calls (6 subjects x baseline/progression, a caller-style merged VCF)
  whose resistant clone, carrying a different catalogued resistance mutation in each
  subject, expands under therapy: ingest -> ``dataset.published`` -> clonal evolution;
* the real RRBS cohort of DSS (../shared/data/methylation_rrbs: 16 Bismark coverage
  files, SLE vs HC) with its contrast ``case:SLE vs HC`` registered: ingest ->
  ``dataset.published`` -> markers, the smoothed DML test and its DMRs (DSS's 43);
* the real plasma metabolomics of Su et al. 2020 (../shared/data/metabolomics_su2020:
  266 samples x 1,050 Metabolon metabolites, COVID-19 vs healthy donors) with its
  contrast ``group:COVID19 vs Healthy Donor``: ingest -> ``dataset.published`` ->
  normalisation (PQN, log2) and limma, whose top hits are the tryptophan-kynurenine shift,
  then the metabolic programs' per-sample scores and their enrichment (fry).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp
from rich.console import Console
from rich.table import Table

# No Prefect import at module level (nor in flows._server): Prefect reads its settings
# when first imported, so demo_services() sets PREFECT_API_URL & co. first.
from flows._server import PrefectServer, client_env, free_port, prefect_server, stop_process
from resistomics.errors import ConfigError

__all__ = ["MARKER", "DemoLayout", "DemoServices", "demo_services", "prepare_root", "run_demo"]

console = Console()
REPO = Path(__file__).resolve().parents[1]
# ../shared/data next to the checkout (a git worktree under <checkout>/../wt/NAME finds
# it one level further up, as tests/shared_data.py does)
SHARED_DATA = next(
    (b / "shared" / "data" for b in (REPO.parent, REPO.parent.parent) if (b / "shared").is_dir()),
    REPO.parent / "shared" / "data",
)
T47D_DIR = SHARED_DATA / "t47d_esr1"
RRBS_DIR = SHARED_DATA / "methylation_rrbs"
RRBS_CONTRAST = ("case", "SLE", "HC")
# What the analyse deployment publishes for it: the DML test (smoothed, 500 bp) and its DMRs
RRBS_DML = "rrbs.dml.smoothed-span500.case_SLE_vs_HC"
SU_DIR = SHARED_DATA / "metabolomics_su2020"
SU_CONTRAST = ("group", "COVID19", "Healthy Donor")
# the tryptophan-kynurenine shift of COVID-19 (Su 2020; ../shared/data/README.md)
SU_OPTIONS = (
    "files:\n  Su_metab_data_raw.csv.gz: {extra_columns: [WHO_status], keep_all_missing: true}\n"
)
SU_SHIFT = ("kynurenine", "quinolinate", "tryptophan", "citrulline")
# Written into a demo folder when it is made: only a folder holding it is wiped.
MARKER = ".resistomics-demo"
# The Prefect server's triggers service re-reads its automations at least this often
# (prefect.server.events.triggers: periodic evaluation every 5 s reconciles them).
AUTOMATIONS_RELOAD = timedelta(seconds=5)


@dataclass(frozen=True)
class DemoLayout:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def prefect_home(self) -> Path:
        return self.root / "prefect"

    @property
    def inputs(self) -> Path:
        return self.root / "inputs"

    @property
    def plots(self) -> Path:
        return self.root / "plots"


def _write_10x(
    directory: Path, counts: sp.csr_matrix, genes: list[str], barcodes: list[str], sample: str
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    scipy.io.mmwrite(directory / "matrix.mtx", counts.T.tocoo(), field="real")
    pd.DataFrame({"id": genes, "name": genes, "type": "Gene Expression"}).to_csv(
        directory / "features.tsv", sep="\t", header=False, index=False
    )
    pd.DataFrame({"barcode": barcodes, "sample": sample}).to_csv(
        directory / "barcodes.tsv", sep="\t", header=False, index=False
    )


def prepare_inputs(layout: DemoLayout, *, cells_per_sample: int, n_genes: int) -> dict[str, Any]:
    """Generate the cohort, the bad file and the sample sheets; copy T47D."""
    from resistomics.simulate import simulate_clonal_cohort, simulate_cohort

    layout.inputs.mkdir(parents=True, exist_ok=True)
    cohort = simulate_cohort(
        n_subjects=6, cells_per_sample=cells_per_sample, n_genes=n_genes, seed=7
    )
    cohort.samples.to_csv(layout.inputs / "demo_samples.tsv", sep="\t", index=False)
    cohort.to_anndata().write_h5ad(layout.inputs / "cohort.h5ad")
    # The bad file: a 10x run whose "counts" were rescaled (fractional values).
    rng = np.random.default_rng(3)
    bad = sp.random(50, n_genes, density=0.05, format="csr", random_state=rng, dtype=np.float64)
    bad.data = np.round(bad.data * 7.3, 2) + 0.5
    genes = cohort.var.index.tolist()
    _write_10x(
        layout.inputs / "P01_BL_rescaled", bad, genes, [f"bad{i:03d}" for i in range(50)], "P01_BL"
    )
    if not T47D_DIR.exists():
        raise FileNotFoundError(f"the T47D data was not found at {T47D_DIR}")
    shutil.copy(T47D_DIR / "counts.tsv.gz", layout.inputs / "t47d_counts.tsv.gz")
    shutil.copy(T47D_DIR / "samples.tsv", layout.inputs / "t47d_samples.tsv")
    calls = simulate_clonal_cohort(n_subjects=6, seed=7)
    calls.samples.to_csv(layout.inputs / "dna_samples.tsv", sep="\t", index=False)
    calls.write_vcf(layout.inputs / "cohort_calls.vcf")
    if not RRBS_DIR.exists():
        raise FileNotFoundError(f"the RRBS data was not found at {RRBS_DIR}")
    rrbs = layout.inputs / "rrbs"
    rrbs.mkdir()
    for f in sorted(RRBS_DIR.glob("*.bismark.cov.gz")):
        shutil.copy(f, rrbs / f.name)
    shutil.copy(RRBS_DIR / "samples.tsv", layout.inputs / "rrbs_samples.tsv")
    if not SU_DIR.exists():
        raise FileNotFoundError(f"the Su 2020 metabolomics data was not found at {SU_DIR}")
    shutil.copy(SU_DIR / "Su_metab_data_raw.csv.gz", layout.inputs / "Su_metab_data_raw.csv.gz")
    shutil.copy(SU_DIR / "samples.tsv", layout.inputs / "su2020_samples.tsv")
    return {"cohort": cohort, "calls": calls}


def prepare_root(root: Path, *, force: bool = False) -> None:
    """Make ``root`` an empty demo folder, wiping an earlier demo's folder.

    A non-empty folder without the :data:`MARKER` file (that is, not made by a demo) is
    refused with a :class:`ConfigError`, unless ``force``.
    """
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--root {root}: not a folder")
    if root.is_dir() and any(root.iterdir()):
        if not (root / MARKER).is_file() and not force:
            raise ConfigError(
                f"--root {root} is not empty and was not made by `resistomics demo` "
                f"(no {MARKER} file): refusing to delete what it holds; "
                "choose a new or empty folder, or pass --force"
            )
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("made by `resistomics demo`; the next demo run wipes this folder\n")


@dataclass(frozen=True)
class DemoServices:
    server: PrefectServer
    scheduler_address: str
    serving: subprocess.Popen[bytes]  # python -m flows.serve
    serve_log: Path


def _wait_for_deployments(expected: list[Any], timeout: float = 120.0) -> None:
    """Wait until every deployment is registered and its triggers are live on the server.

    ``serve`` registers a deployment, then its triggers as automations; the server's
    triggers service loads a new automation right after its commit and, failing that,
    within :data:`AUTOMATIONS_RELOAD`. An event emitted before then starts nothing
    (until the 15-minute sweep announces the file again), so this waits for the
    automations to exist and to be older than that.
    """
    from prefect.client.orchestration import get_client

    triggers = {t.name for d in expected for t in d.triggers}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            registered = len(client.read_deployments())
            loaded = {a.name for a in client.read_automations() if a.enabled}
        if registered >= len(expected) and triggers <= loaded:
            # They are in the database now; the triggers service has them by the next
            # reconciliation at the latest.
            time.sleep(AUTOMATIONS_RELOAD.total_seconds() + 1.0)
            return
        time.sleep(1)
    raise TimeoutError(
        "the deployments and their triggers did not register with the Prefect server in time"
    )


@contextlib.contextmanager
def demo_services(layout: DemoLayout, *, n_workers: int = 2) -> Iterator[DemoServices]:
    """The demo's Prefect server, local Dask cluster and ``flows.serve`` process.

    Sets the Prefect settings in this process's environment before anything imports
    Prefect (the port is chosen first, so ``PREFECT_API_URL`` is known before the server
    starts), with ephemeral mode off: nothing can start a second, temporary server.
    Returns once every deployment's triggers are live, so the first event counts.
    """
    port = free_port()
    os.environ.update(client_env(layout.prefect_home, f"http://127.0.0.1:{port}/api"))
    os.environ["RESISTOMICS_DATA_ROOT"] = str(layout.data)

    from distributed import LocalCluster

    from flows.serve import build_deployments

    with contextlib.ExitStack() as stack:
        with console.status(
            f"starting the Prefect server and a local Dask cluster ({n_workers} worker processes)"
        ):
            server = stack.enter_context(prefect_server(layout.prefect_home, port=port))
            # No dashboard: bokeh's server cannot be stopped cleanly from
            # LocalCluster.close() in this process (it logs a RuntimeError at exit);
            # `resistomics serve` has one. The HTTP port is a free one all the same: with
            # None, distributed still binds 8787 and warns when another cluster holds it.
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=n_workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit="4GiB",
                    host="127.0.0.1",
                    dashboard_address="127.0.0.1:0",  # ":0" is every interface
                    scheduler_kwargs={"dashboard": False},
                )
            )
        os.environ["RESISTOMICS_CLUSTER__KIND"] = "address"
        os.environ["RESISTOMICS_CLUSTER__ADDRESS"] = cluster.scheduler_address
        console.print(f"Prefect UI:      {server.ui_url}")
        console.print(f"Dask scheduler:  {cluster.scheduler_address}")
        serve_log = layout.prefect_home / "serve.log"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        )
        with open(serve_log, "ab") as out:
            serving = subprocess.Popen(
                [sys.executable, "-m", "flows.serve", "--limit", "2"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(REPO),
            )
        stack.callback(stop_process, serving)
        with console.status("registering deployments, triggers and schedules"):
            _wait_for_deployments(build_deployments())
        yield DemoServices(
            server=server,
            scheduler_address=cluster.scheduler_address,
            serving=serving,
            serve_log=serve_log,
        )


def _published(ws: Any, study: str, dataset: str) -> Any:
    from resistomics.errors import DatasetNotFoundError

    try:
        return ws.catalog.resolve(f"{study}/{dataset}")
    except DatasetNotFoundError:
        return None


def _result(ws: Any, study: str, dataset_type: str) -> Any:
    """The first published version of ``dataset_type`` in ``study``, or None."""
    from resistomics.catalog import VersionStatus

    found = [
        v
        for v in ws.catalog.versions(study=study, status=VersionStatus.PUBLISHED)
        if v.dataset_type == dataset_type
    ]
    return found[0] if found else None


def run_demo(
    root: Path,
    *,
    cells_per_sample: int = 500,
    n_genes: int = 3000,
    timeout: float = 540.0,
    keep_serving: bool = False,
    force: bool = False,
) -> int:
    """Run the demo; returns a process exit code.

    ``root`` must be new, empty or an earlier demo's folder (see :func:`prepare_root`;
    ``force`` wipes any folder).
    """
    started = time.monotonic()
    layout = DemoLayout(root.absolute())
    prepare_root(layout.root, force=force)
    console.rule("[bold]resistomics demo")
    console.print(f"workspace: {layout.root}")
    with console.status("generating the single-cell cohort and the bad file; copying T47D"):
        made = prepare_inputs(layout, cells_per_sample=cells_per_sample, n_genes=n_genes)

    with demo_services(layout) as services:
        code = _drive(layout, services, made, started=started, timeout=timeout)
        if code == 0 and keep_serving:
            console.print("serving until Ctrl-C ...")
            with contextlib.suppress(KeyboardInterrupt):
                while services.serving.poll() is None:
                    time.sleep(1)
        return code


def _drive(
    layout: DemoLayout,
    services: DemoServices,
    made: dict[str, Any],
    *,
    started: float,
    timeout: float,
) -> int:
    """Register the studies, land and announce the files, wait for the chain, finish."""
    from flows.events import emit_file_landed
    from resistomics.catalog import VersionStatus, parse_sample_sheet
    from resistomics.config import load_settings
    from resistomics.pipeline import Workspace

    cohort = made["cohort"]
    ws = Workspace.open(load_settings())
    ws.catalog.register_study(
        "demo-sc",
        parse_sample_sheet(layout.inputs / "demo_samples.tsv"),
        description="generated cohort with planted persister expansion",
    )
    ws.catalog.register_study(
        "t47d",
        parse_sample_sheet(layout.inputs / "t47d_samples.tsv"),
        description="T47D ESR1 WT/Y537S/D538G x vehicle/E2 (GSE89888)",
    )
    ws.catalog.register_study(
        "demo-dna",
        parse_sample_sheet(layout.inputs / "dna_samples.tsv"),
        description="generated somatic calls with planted resistant clones",
    )
    ws.catalog.register_study(
        "rrbs",
        parse_sample_sheet(layout.inputs / "rrbs_samples.tsv"),
        description="DSS's RRBS cohort: neutrophils of SLE patients and healthy controls",
    )
    column, group_a, group_b = RRBS_CONTRAST
    ws.catalog.save_contrast("rrbs", column=column, group_a=group_a, group_b=group_b)
    ws.catalog.register_study(
        "su2020",
        parse_sample_sheet(layout.inputs / "su2020_samples.tsv"),
        description="Su et al. 2020: plasma metabolomics of COVID-19 patients and donors",
    )
    column, group_a, group_b = SU_CONTRAST
    ws.catalog.save_contrast("su2020", column=column, group_a=group_a, group_b=group_b)
    landing = Path(ws.settings.resolved_landing_zone)
    drops = [
        ("demo-sc", "expression", layout.inputs / "cohort.h5ad"),
        ("demo-sc", "expression", layout.inputs / "P01_BL_rescaled"),
        ("t47d", "expression", layout.inputs / "t47d_counts.tsv.gz"),
        ("demo-dna", "variants", layout.inputs / "cohort_calls.vcf"),
        ("rrbs", "methylation", layout.inputs / "rrbs"),
        ("su2020", "metabolomics", layout.inputs / "Su_metab_data_raw.csv.gz"),
    ]
    # Files that arrive by events carry no command-line options: the folder says them.
    # Su 2020's table has a WHO_status column (sample metadata, also in the sample sheet).
    options = landing / "su2020" / "metabolomics" / ".ingest-options.yaml"
    options.parent.mkdir(parents=True, exist_ok=True)
    options.write_text(SU_OPTIONS)
    for study, modality, src in drops:
        target = landing / study / modality / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, target)
        emit_file_landed(str(target), study=study, modality=modality, detected_by="demo")
        console.print(
            f"landed {target.relative_to(layout.root)} and emitted resistomics.file.landed"
        )

    goals = {
        "demo-sc/cohort published": lambda: _published(ws, "demo-sc", "cohort"),
        "demo-sc/cohort.signatures published": lambda: _published(
            ws, "demo-sc", "cohort.signatures"
        ),
        "t47d/t47d_counts published": lambda: _published(ws, "t47d", "t47d_counts"),
        "t47d/t47d_counts.signatures published": lambda: _published(
            ws, "t47d", "t47d_counts.signatures"
        ),
        "demo-dna/cohort_calls published": lambda: _published(ws, "demo-dna", "cohort_calls"),
        "demo-dna/cohort_calls.clonal published": lambda: _published(
            ws, "demo-dna", "cohort_calls.clonal"
        ),
        "rrbs/rrbs published": lambda: _published(ws, "rrbs", "rrbs"),
        "rrbs/rrbs.markers published": lambda: _published(ws, "rrbs", "rrbs.markers"),
        f"rrbs/{RRBS_DML}.dmr published": lambda: _published(ws, "rrbs", f"{RRBS_DML}.dmr"),
        "su2020/Su_metab_data_raw published": lambda: _published(ws, "su2020", "Su_metab_data_raw"),
        "su2020 limma published": lambda: _result(ws, "su2020", "metabolomics.da"),
        "su2020 enrichment published": lambda: _result(ws, "su2020", "metabolomics.enrichment"),
        "bad 10x run quarantined": lambda: (
            bool(ws.catalog.versions(status=VersionStatus.QUARANTINED))
            or any((layout.data / "quarantine").glob("*/*/report.json"))
        ),
    }
    done: dict[str, float] = {}
    with console.status(
        "waiting for the events to drive ingest -> validation -> signatures / clonal / DMRs"
    ) as status:
        while len(done) < len(goals):
            for name, check in goals.items():
                if name not in done and check():
                    done[name] = time.monotonic() - started
                    console.print(f"  [green]done[/] {name}  (t = {done[name]:.0f} s)")
            if time.monotonic() - started > timeout:
                missing = ", ".join(n for n in goals if n not in done)
                console.print(
                    f"[red]timed out waiting for: {missing}[/]; logs: {services.serve_log}, {services.server.log}"
                )
                return 1
            status.update(f"waiting for: {', '.join(n for n in goals if n not in done)}")
            time.sleep(2)
    return _finish(
        ws,
        layout,
        cohort,
        made["calls"],
        services.scheduler_address,
        services.server.ui_url,
        started,
    )


def methylation_summary(ws: Any, study: str = "rrbs") -> str:
    """One line on the DMRs the analyse deployment called on the RRBS cohort: how many,
    and the top one (largest ``|areaStat|``)."""
    from resistomics.storage import read_table

    dmr = ws.catalog.resolve(f"{study}/{RRBS_DML}.dmr")
    dml = ws.catalog.get_version(dmr.parent_ids[0])
    dmls = read_table(ws.root, f"{ws.root.to_path(dml.uri)}/dml.parquet", columns=["fdr"])
    table = read_table(ws.root, f"{ws.root.to_path(dmr.uri)}/dmr.parquet")
    column, a, b = RRBS_CONTRAST
    line = (
        f"[bold]methylation {study}, {column} {a} vs {b}[/] (smoothed DMLtest, callDMR p 0.01): "
        f"{len(dmls)} CpGs, {int((dmls['fdr'] < 0.05).sum())} at FDR < 0.05; {len(table)} DMRs"
    )
    if len(table):
        top = table.loc[table["area_stat"].abs().idxmax()]
        line += (
            f"; top {top['contig']}:{top['start']}-{top['end']} ({top['n_cpg']} CpGs, "
            f"{a} - {b} {top['diff_methylation']:+.2f}, areaStat {top['area_stat']:.1f})"
        )
    return line


def metabolomics_summary(ws: Any, study: str = "su2020") -> str:
    """One line on the limma test the analyse deployment ran on Su 2020: features tested,
    how many at FDR < 0.05, and the tryptophan-kynurenine metabolites' fold changes."""
    from resistomics.storage import read_table

    da = _result(ws, study, "metabolomics.da")
    table = read_table(ws.root, f"{ws.root.to_path(da.uri)}/da.parquet").set_index("feature_id")
    column, a, b = SU_CONTRAST
    shifts = ", ".join(
        f"{name} {table.loc[name, 'log2fc']:+.2f}" for name in SU_SHIFT if name in table.index
    )
    line = (
        f"[bold]metabolomics {study}, {column} {a} vs {b}[/] (PQN, log2, limma): "
        f"{len(table)} metabolites, {int((table['p_adj'] < 0.05).sum())} at FDR < 0.05; "
        f"log2 fold change {shifts}"
    )
    enrichment = _result(ws, study, "metabolomics.enrichment")
    if enrichment is None:
        return line
    sets = read_table(ws.root, f"{ws.root.to_path(enrichment.uri)}/enrichment.parquet")
    top = sets[sets["tested"]].sort_values("p", kind="stable").head(3)
    named = ", ".join(f"{r.name} (FDR {r.q:.2g})" for r in top.itertuples())
    return f"{line}\n  metabolic programs (fry): {named}"


def _finish(
    ws: Any,
    layout: DemoLayout,
    cohort: Any,
    calls: Any,
    scheduler_address: str,
    ui_url: str,
    started: float,
) -> int:
    from distributed import Client

    from resistomics.modalities import modality
    from resistomics.pipeline import parse_contrast
    from resistomics.plots import plot_clone_prevalence, plot_de_volcano, plot_sample_scores
    from resistomics.storage import read_table

    differential_expression = modality("expression").analysis("de").run
    layout.plots.mkdir(exist_ok=True)
    with (
        Client(scheduler_address),
        console.status("differential expression on the cluster"),
    ):
        t47d_de = differential_expression(
            ws,
            "t47d/t47d_counts",
            parse_contrast("esr1_genotype:Y537S vs WT", ["treatment=veh"]),
            method="t-test",
        )
        sc_de = differential_expression(
            ws, "demo-sc/cohort", parse_contrast("phase:progression vs baseline"), method="wilcoxon"
        )
    sig = ws.catalog.resolve("demo-sc/cohort.signatures")
    base = ws.root.to_path(sig.uri)
    sample_scores = read_table(ws.root, f"{base}/sample_scores.parquet")
    plot_sample_scores(sample_scores, layout.plots / "cohort_program_scores.png")
    t47d_sig = ws.catalog.resolve("t47d/t47d_counts.signatures")
    plot_sample_scores(
        read_table(ws.root, f"{ws.root.to_path(t47d_sig.uri)}/sample_scores.parquet"),
        layout.plots / "t47d_program_scores.png",
        group_by="esr1_genotype",
    )
    clonal = ws.catalog.resolve("demo-dna/cohort_calls.clonal")
    clonal_dir = ws.root.to_path(clonal.uri)
    clones = read_table(ws.root, f"{clonal_dir}/clones.parquet")
    emergent = read_table(ws.root, f"{clonal_dir}/emergent_resistance.parquet")
    plot_clone_prevalence(clones, layout.plots / "dna_clone_prevalence.png")
    plot_de_volcano(
        t47d_de.tables["de"],
        layout.plots / "t47d_y537s_vs_wt_volcano.png",
        title="T47D vehicle: ESR1 Y537S vs WT (Welch)",
        arms=("Y537S", "WT"),
    )
    plot_de_volcano(
        sc_de.tables["de"],
        layout.plots / "cohort_progression_vs_baseline_volcano.png",
        title="cohort: progression vs baseline (Wilcoxon)",
        arms=("progression", "baseline"),
    )

    console.rule("[bold]what happened")
    table = Table(title="catalog")
    for c in ("dataset", "type", "status", "shape"):
        table.add_column(c)
    for v in ws.catalog.versions():
        table.add_row(v.ref, v.dataset_type, v.status.value, "x".join(map(str, v.shape)))
    console.print(table)

    shift = read_table(ws.root, f"{base}/fraction_shift.parquet")
    planted = shift[(shift["gene_set"] == cohort.program) & (shift["phase"] == "progression")]
    console.print(
        f"[bold]{cohort.program}[/] (planted): resistant fraction baseline -> progression per subject"
    )
    for _, r in planted.iterrows():
        console.print(f"  {r['subject_id']}: {r['baseline_fraction']:.2f} -> {r['fraction']:.2f}")
    cohort_test = read_table(ws.root, f"{base}/fraction_cohort.parquet")
    row = cohort_test[(cohort_test["gene_set"] == cohort.program)].iloc[0]
    console.print(
        f"  cohort: median change {row['median_change']:+.2f}, Wilcoxon signed-rank p = {row['pvalue']:.3g}"
    )
    de = t47d_de.tables["de"].set_index("gene_symbol")
    console.print("[bold]T47D vehicle, ESR1 Y537S vs WT[/] (Welch t-test, BH FDR):")
    for g in ("GREB1", "PGR", "TFF1"):
        console.print(
            f"  {g}: log2FC {de.loc[g, 'log2_fold_change']:+.2f}, FDR {de.loc[g, 'pval_adj']:.2g}"
        )
    console.print(
        "[bold]somatic calls[/]: emergent catalogued resistance mutations and their clone"
    )
    flagged = clones[clones["carries_resistance_mutation"]].pivot_table(
        index=["subject_id", "resistance_changes"], columns="phase", values="prevalence"
    )
    planted_ccf = (
        calls.calls[calls.calls["clone"] == "resistant"]
        .groupby(["subject_id", "sample_id"])["planted_ccf"]
        .first()
    )
    for subject, (gene, hgvsp) in calls.drivers.items():
        truth = " -> ".join(f"{v:.2f}" for v in planted_ccf.loc[subject])
        hits = emergent[emergent["subject_id"] == subject]
        found = ", ".join(
            f"{g} {p}" for g, p in zip(hits["gene"], hits["protein_change"], strict=True)
        )
        clone = flagged.loc[subject] if subject in flagged.index.get_level_values(0) else None
        trajectory = (
            f"clone CCF {clone['baseline'].iloc[0]:.2f} -> {clone['progression'].iloc[0]:.2f}"
            if clone is not None
            else "no flagged clone"
        )
        console.print(
            f"  {subject}: planted {gene} {hgvsp} (CCF {truth}); found {found or 'nothing'}; "
            f"{trajectory}"
        )
    console.print(methylation_summary(ws))
    console.print(metabolomics_summary(ws))
    top = sc_de.tables["de"].head(10)["gene_symbol"].tolist()
    console.print(f"[bold]cohort progression vs baseline[/] top genes (Wilcoxon): {', '.join(top)}")
    for q in sorted((layout.data / "quarantine").glob("*/*/report.md")):
        console.print(f"[bold]quarantined[/]: {q.parent} (report: {q})")
    console.rule("[bold]where to look")
    console.print(f"Prefect UI (while serving): {ui_url}  — flow runs, events, artifacts")
    console.print(
        f"  browse later: resistomics serve --prefect-home {layout.prefect_home} (same database)"
    )
    console.print(f"data root: {layout.data}   catalog: {ws.settings.resolved_catalog_url}")
    console.print(f"plots: {layout.plots}")
    console.print(f"try: RESISTOMICS_DATA_ROOT={layout.data} resistomics catalog ls --all")
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return 0
