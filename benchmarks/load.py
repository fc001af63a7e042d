"""Load: N files of mixed modalities across several studies land at once.

    python benchmarks/load.py                          # embedded, 200 files
    python benchmarks/load.py --files 40 --concurrency 4
    python benchmarks/load.py --profile production --state .resistomics-production

Every file goes the event-driven way: it is put in ``<landing>/<study>/<modality>/``,
then all ``resistomics.file.landed`` events are emitted in one burst; the Prefect
server's triggers start one ``ingest/on-file-landed`` run per event, which publishes or
quarantines the file. The benchmark waits until every event has an outcome and checks:

- one ingest run per event (matched by path), none missing, none duplicated;
- every good file published as exactly one version of its own dataset, every bad file
  quarantined (and none of the good ones);
- then prints throughput (files per minute, first event to last outcome), latency from
  the event to the publication (catalog ``published_at``) p50 / p95, and peak memory.

Files (distinct bytes, generated here): bulk RNA-seq count tables (``.tsv``), single-cell
``.h5ad`` (``resistomics.simulate.simulate_cohort``), variant calls as MAF and VCF
(``simulate_clonal_cohort``), and about 10 % bad copies of bulk tables made by the
builders of ``tests/modalities/bad_files.py`` (cut mid-line, a missing field, NUL bytes,
binary garbage), each with the rule it must be quarantined for.

Profiles:

``embedded`` (default)
    A temporary Prefect server (SQLite) and ``python -m flows.serve --only ingest``
    (``--limit`` runs at once, ``RESISTOMICS_INGEST__CONCURRENCY`` = ``--concurrency``),
    local files, the SQLite catalog, one local Dask cluster shared by every run (as
    ``resistomics demo`` does). Only the ingest deployment is served: the analyses a
    publication triggers are not part of this measurement.
``production``
    ``deploy/production/profile.py start`` must be running: its ``<state>/profile.env``
    is read (PostgreSQL catalog, Prefect on PostgreSQL with auth, the process worker
    running ``deploy/prefect.yaml``'s deployments, S3 data root and landing zone); files
    are uploaded to the S3 landing zone. Every deployment is live there, so the
    analyses triggered by the publications run alongside.

Peak memory is the summed RSS of this process and all its descendants (embedded: the
Prefect server, ``serve`` and its flow-run subprocesses, the Dask workers); with
``production`` it is sampled over the profile's worker process tree (its pid file).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO / "tests" / "modalities"), str(REPO / "platform"), str(REPO)]

import _rss  # noqa: E402
import bad_files  # noqa: E402

KINDS = ("bulk", "h5ad", "maf", "vcf")
BAD = (
    bad_files.truncated_mid_line,
    bad_files.missing_field,
    bad_files.with_nul,
    bad_files.garbage_bytes,
)


@dataclass
class LandedFile:
    study: str
    modality: str
    name: str
    local: Path
    bad_rule: str | None  # the rule it must be quarantined for; None: must publish
    path: str = ""  # in the landing zone
    emitted: float = 0.0  # time.time() of its event

    @property
    def dataset(self) -> str:
        return self.name.split(".", 1)[0]


def _sheet(study_seed: int) -> tuple[Any, Any]:
    from resistomics.simulate import simulate_clonal_cohort, simulate_cohort

    cohort = simulate_cohort(n_subjects=2, cells_per_sample=60, n_genes=400, seed=study_seed)
    calls = simulate_clonal_cohort(n_subjects=2, seed=study_seed)
    sheet = cohort.samples.merge(calls.samples[["sample_id", "purity"]], on="sample_id")
    return sheet, list(sheet["sample_id"])


def _bulk(path: Path, samples: list[str], seed: int) -> Path:
    rng = np.random.default_rng(seed)
    values = rng.negative_binomial(5, 0.1, size=(800, len(samples)))
    lines = ["gene_id\t" + "\t".join(samples)]
    lines += [f"G{i:05d}\t" + "\t".join(map(str, row)) for i, row in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_files(out: Path, *, n_files: int, n_studies: int, tag: str) -> tuple[list, dict]:
    """The files to land (round-robin over studies and kinds) and each study's sheet."""
    from resistomics.simulate import simulate_clonal_cohort, simulate_cohort

    out.mkdir(parents=True, exist_ok=True)
    studies = {f"load{s}": _sheet(s) for s in range(n_studies)}
    files: list[LandedFile] = []
    n_bad = max(1, n_files // 10)
    # seeds differ from run to run: a persistent profile already holds the files of
    # earlier runs, and the same bytes would (rightly) come back unchanged
    base = int(tag.removeprefix("l"), 16) * 1000
    for i in range(n_files):
        study = f"load{i % n_studies}"
        _, samples = studies[study]
        name = f"{tag}-{i:04d}"
        if i % 10 == 9 and n_bad > 0:  # every tenth file is a bad bulk table
            n_bad -= 1
            good = _bulk(out / f"{name}.good.tsv", samples, seed=base + i)
            bad = BAD[(i // 10) % len(BAD)](good, out / f"{name}.tsv")
            files.append(LandedFile(study, "expression", f"{name}.tsv", bad.path, bad.rule))
            continue
        kind = KINDS[i % len(KINDS)]
        seed = base + 1000 + i
        if kind == "bulk":
            local = _bulk(out / f"{name}.tsv", samples, seed)
            files.append(LandedFile(study, "expression", local.name, local, None))
        elif kind == "h5ad":
            # another seed: other cells and counts, the same sample IDs (the design is
            # the study's sample sheet, not the file's)
            cohort = simulate_cohort(n_subjects=2, cells_per_sample=60, n_genes=400, seed=seed)
            local = out / f"{name}.h5ad"
            cohort.to_anndata().write_h5ad(local)
            files.append(LandedFile(study, "expression", local.name, local, None))
        else:
            calls = simulate_clonal_cohort(n_subjects=2, seed=seed)
            local = out / f"{name}.{kind}"
            calls.write_maf(local) if kind == "maf" else calls.write_vcf(local)
            files.append(LandedFile(study, "variants", local.name, local, None))
    return files, {s: sheet for s, (sheet, _) in studies.items()}


def read_profile_env(state: Path) -> dict[str, str]:
    """``export KEY=VALUE`` lines of ``<state>/profile.env`` (shell-quoted values)."""
    env: dict[str, str] = {}
    for line in (state / "profile.env").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for word in shlex.split(line.removeprefix("export ")):
            key, _, value = word.partition("=")
            env[key] = value
    return env


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def land_all(ws: Any, files: list[LandedFile]) -> None:
    """Put every file in the landing zone (local: a rename; remote: an upload)."""
    for f in files:
        target = ws.landing.path(f.study, f.modality, f.name)
        if "://" in ws.settings.resolved_landing_zone:
            ws.landing.fs.put(str(f.local), target)
            f.path = ws.landing.to_url(target)
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f.local, target + ".part")
            os.replace(target + ".part", target)
            f.path = target


def ingest_runs(since: datetime) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
    )

    runs: list[Any] = []
    with get_client(sync_client=True) as client:
        while True:
            batch = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["ingest"])),
                flow_run_filter=FlowRunFilter(
                    expected_start_time=FlowRunFilterExpectedStartTime(after_=since)
                ),
                limit=200,
                offset=len(runs),
            )
            runs += batch
            if len(batch) < 200:
                return runs


def wait_for_outcomes(files: list[LandedFile], since: datetime, timeout: float) -> dict:
    paths = {f.path for f in files}
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        runs = [r for r in ingest_runs(since) if r.parameters.get("path") in paths]
        done = [r for r in runs if r.state is not None and r.state.is_final()]
        line = f"  {len(done)}/{len(files)} outcomes ({len(runs)} runs)"
        if line != last:
            print(line, flush=True)
            last = line
        if len({r.parameters["path"] for r in done}) >= len(files) and len(done) == len(runs):
            return {"runs": runs}
        if time.monotonic() > deadline:
            return {"runs": runs, "timed_out": True}
        time.sleep(2)


def check(ws: Any, files: list[LandedFile], runs: list[Any]) -> dict[str, Any]:
    from resistomics.catalog import VersionStatus

    by_path: dict[str, list[Any]] = {}
    for r in runs:
        by_path.setdefault(r.parameters["path"], []).append(r)
    problems: list[str] = []
    missing = [f.path for f in files if f.path not in by_path]
    duplicated = [p for p, rs in by_path.items() if len(rs) > 1]
    problems += [f"no ingest run for {p}" for p in missing]
    problems += [f"{len(by_path[p])} ingest runs for {p}" for p in duplicated]
    latencies: list[float] = []
    outcome: Counter[str] = Counter()
    for f in files:
        try:
            versions = [v for v in ws.catalog.versions(study=f.study) if v.dataset == f.dataset]
        except KeyError:
            versions = []
        states = [v.status for v in versions]
        rs = by_path.get(f.path, [])
        state = rs[0].state.name if rs and rs[0].state is not None else "none"
        if f.bad_rule is None:
            if states != [VersionStatus.PUBLISHED]:
                problems.append(f"{f.path}: versions {states}, run state {state}")
                continue
            outcome["published"] += 1
            latencies.append(_published_at(ws, versions[0].id) - f.emitted)
        else:
            quarantined = [v for v in versions if v.status is VersionStatus.PUBLISHED]
            if quarantined or state != "Quarantined":
                problems.append(f"{f.path} (bad: {f.bad_rule}): versions {states}, run {state}")
                continue
            outcome["quarantined"] += 1
    end_times = [r.end_time.timestamp() for r in runs if r.end_time is not None]
    return {
        "problems": problems,
        "outcomes": dict(outcome),
        "latencies": latencies,
        "last_outcome": max(end_times) if end_times else float("nan"),
    }


def _published_at(ws: Any, version_id: int) -> float:
    from sqlalchemy import select

    from resistomics.catalog._models import Version

    with ws.catalog.session() as s:
        at = s.scalar(select(Version.published_at).where(Version.id == version_id))
    if at.tzinfo is None:  # SQLite returns naive UTC
        at = at.replace(tzinfo=UTC)
    return float(at.timestamp())


def run(args: argparse.Namespace) -> int:
    tag = f"l{uuid.uuid4().hex[:6]}"
    scratch = Path(tempfile.mkdtemp(prefix="resistomics-load-"))
    services: list[Any] = []
    sampler_pid: int | None = None
    try:
        if args.profile == "production":
            env = read_profile_env(args.state)
            os.environ.update(env)
            worker_pid = args.state / "prefect-worker" / "pid"
            sampler_pid = int(worker_pid.read_text()) if worker_pid.exists() else None
        else:
            from flows._server import client_env, free_port, prefect_server

            port = free_port()
            home = scratch / "prefect"
            os.environ.update(client_env(home, f"http://127.0.0.1:{port}/api"))
            os.environ["RESISTOMICS_DATA_ROOT"] = str(scratch / "data")
            os.environ["RESISTOMICS_INGEST__CONCURRENCY"] = str(args.concurrency)
            server_cm = prefect_server(home, port=port)
            server_cm.__enter__()
            services.append(server_cm)
            from distributed import LocalCluster

            cluster = LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                memory_limit="2GiB",
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                scheduler_kwargs={"dashboard": False},
            )
            services.append(cluster)
            os.environ["RESISTOMICS_CLUSTER__KIND"] = "address"
            os.environ["RESISTOMICS_CLUSTER__ADDRESS"] = cluster.scheduler_address
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([str(REPO / "platform"), str(REPO)])
            log = open(home / "serve.log", "ab")  # noqa: SIM115 - closed with the process
            serving = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "flows.serve",
                    "--only",
                    "ingest",
                    "--limit",
                    str(args.limit),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=str(REPO),
            )
            services.append(serving)
            from flows.demo import _wait_for_deployments
            from flows.serve import build_deployments

            _wait_for_deployments([d for d in build_deployments() if d.flow_name == "ingest"])

        from flows.events import emit_file_landed
        from resistomics.catalog import parse_sample_sheet
        from resistomics.config import load_settings
        from resistomics.pipeline import Workspace

        print(f"profile {args.profile}: generating {args.files} files ...", flush=True)
        files, sheets = make_files(
            scratch / "files", n_files=args.files, n_studies=args.studies, tag=tag
        )
        ws = Workspace.open(load_settings())
        for study, sheet in sheets.items():
            sheet_path = scratch / f"{study}.tsv"
            sheet.to_csv(sheet_path, sep="\t", index=False)
            ws.catalog.register_study(study, parse_sample_sheet(sheet_path))
        land_all(ws, files)
        kinds = Counter(f.local.suffix for f in files)
        print(f"landed {len(files)} files {dict(kinds)} in {args.studies} studies", flush=True)

        sampler = _rss.RssSampler(sampler_pid, interval=0.5)
        with sampler, sampler.window() as mem:
            since = datetime.now(UTC)
            first = time.time()
            for f in files:
                f.emitted = time.time()
                emit_file_landed(f.path, study=f.study, modality=f.modality, detected_by="load")
            print(f"emitted {len(files)} events in {time.time() - first:.1f} s", flush=True)
            waited = wait_for_outcomes(files, since, args.timeout)
        result = check(ws, files, waited["runs"])
        ws.close()
        span = result["last_outcome"] - first
        lat = result["latencies"]
        summary = {
            "profile": args.profile,
            "files": len(files),
            "studies": args.studies,
            "kinds": dict(kinds),
            "outcomes": result["outcomes"],
            "timed_out": waited.get("timed_out", False),
            "problems": result["problems"][:20],
            "n_problems": len(result["problems"]),
            "throughput_files_per_min": round(len(files) / span * 60, 1),
            "first_event_to_last_outcome_s": round(span, 1),
            "latency_p50_s": round(percentile(lat, 50), 1),
            "latency_p95_s": round(percentile(lat, 95), 1),
            "peak_rss_gib": round(mem["peak_sum"] / 2**30, 2),
            "ingest_concurrency": os.environ.get("RESISTOMICS_INGEST__CONCURRENCY", "default"),
        }
        print(json.dumps(summary, indent=2))
        return 0 if not result["problems"] and not summary["timed_out"] else 1
    finally:
        for service in reversed(services):
            if isinstance(service, subprocess.Popen):
                from flows._server import stop_process

                stop_process(service)
            elif hasattr(service, "__exit__"):
                service.__exit__(None, None, None)
            else:
                service.close()
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=["embedded", "production"], default="embedded")
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--studies", type=int, default=4)
    parser.add_argument(
        "--concurrency", type=int, default=1, help="embedded: RESISTOMICS_INGEST__CONCURRENCY"
    )
    parser.add_argument("--limit", type=int, default=4, help="embedded: serve's flow-run limit")
    parser.add_argument(
        "--state", type=Path, default=REPO / ".resistomics-production", help="production state"
    )
    parser.add_argument("--timeout", type=float, default=3600.0)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
