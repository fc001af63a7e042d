"""Faults during ingest: SIGKILL at 20 points, a PostgreSQL restart mid-transaction.

``kill -9``: a calibration run of ``resistomics ingest`` counts its calls of functions
of the ``resistomics`` package; 20 runs are then each SIGKILLed by themselves at a
call drawn at random from that range (15 before the publish transaction, 5 from it on) (``forked_cli``: a real SIGKILL of a real process,
no hook in the code under test), from landing the file to archiving it. After each:
the catalog is consistent (at most one published version, nothing else visible,
``catalog verify --all`` clean), and running the same command again publishes the file
exactly once (or finds the version the killed run already published); garbage
collection then removes every staged leftover.

PostgreSQL restarted (``pg_ctl restart -m fast``) while an ingest's publish transaction
is open: that transaction aborts, the catalog retries it on a new connection, and the
ingest publishes once.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from forked_cli import ForkedCli, Job
from resistomics.catalog import Catalog, SampleRow, VersionStatus
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import DatasetNotFoundError
from resistomics.pipeline import Workspace, check_integrity, collect_garbage

pytestmark = pytest.mark.integration

SAMPLES = [f"S{i}" for i in range(6)]
KILLS = 20
REPO = Path(__file__).resolve().parents[2]


def _table(path: Path, n_genes: int = 3000) -> Path:
    rng = np.random.default_rng(3)
    values = rng.negative_binomial(5, 0.1, size=(n_genes, len(SAMPLES)))
    lines = ["gene_id\t" + "\t".join(SAMPLES)]
    lines += [f"G{i:05d}\t" + "\t".join(map(str, row)) for i, row in enumerate(values)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _env(root: Path, catalog_url: str | None = None) -> dict[str, str]:
    env = {
        "RESISTOMICS_DATA_ROOT": str(root),
        "RESISTOMICS_CLUSTER__PROCESSES": "false",
        "RESISTOMICS_CLUSTER__N_WORKERS": "1",
        "COLUMNS": "400",
    }
    if catalog_url:
        env["RESISTOMICS_CATALOG_URL"] = catalog_url
    return env


def _workspace(root: Path, catalog_url: str | None = None) -> Workspace:
    return Workspace.open(
        Settings(
            data_root=str(root),
            catalog_url=catalog_url,
            cluster=ClusterSettings(processes=False, n_workers=1),
        )
    )


def _check_consistent(ws: Workspace) -> list[VersionStatus]:
    """What a reader may see after a crash: nothing half-published."""
    versions = ws.catalog.versions()
    statuses = [v.status for v in versions]
    assert set(statuses) <= {VersionStatus.STAGED, VersionStatus.PUBLISHED}, versions
    assert statuses.count(VersionStatus.PUBLISHED) <= 1, versions
    if VersionStatus.PUBLISHED not in statuses:
        with pytest.raises(DatasetNotFoundError):
            ws.catalog.resolve("s/counts")
    problems = [c for c in check_integrity(ws) if c.result == "problem"]
    assert problems == [], problems
    return statuses


def _published_once(ws: Workspace) -> None:
    """After the re-run and garbage collection: one version, published, verified."""
    collect_garbage(ws, older_than=timedelta(0))
    versions = ws.catalog.versions()
    assert [(v.dataset, v.status) for v in versions] == [("counts", VersionStatus.PUBLISHED)]
    checks = check_integrity(ws)
    assert [c for c in checks if c.result == "problem"] == [], checks
    assert any(c.check == "files" and c.result == "ok" for c in checks), checks
    datasets = Path(ws.settings.data_root) / "datasets" / "s" / "counts"
    assert len(list(datasets.glob("v-*"))) == 1  # the staged leftovers' files are gone too
    landing = Path(ws.settings.resolved_landing_zone)
    visible = [p for p in landing.rglob("*") if p.is_file() and ".intake" not in p.parts]
    assert [p for p in visible if not p.name.startswith(".")] == []  # nothing to re-announce


def test_kill_9_at_20_random_points_then_a_rerun_publishes_once(tmp_path: Path) -> None:
    src = _table(tmp_path / "counts.tsv")
    template = tmp_path / "template"
    ws = _workspace(template)
    ws.catalog.register_study("s", [SampleRow(s, f"P{i // 2}") for i, s in enumerate(SAMPLES)])
    ws.close()
    cli = ForkedCli({**os.environ, "PYTHONWARNINGS": "ignore"})
    args = ["ingest", str(src), "--study", "s"]
    try:
        calibration_root = tmp_path / "calibration"
        shutil.copytree(template, calibration_root)
        (counted,) = cli.run(
            [Job(args, tmp_path / "count.log", env=_env(calibration_root), kill_at=0)]
        )
        assert counted.code == 0 and "published s/counts@v1" in counted.output, counted.output
        total = counted.calls["n"]
        assert total > 200, counted.calls

        # random calls all along the run; a quarter of them after the publish transaction
        # began (publication, archiving, the end of the command), a short stretch of it
        publish = counted.calls["first"]["Catalog.publish_version"]
        rng = random.Random(8)
        late = KILLS // 4
        points = sorted(
            rng.sample(range(1, publish), KILLS - late) + rng.sample(range(publish, total), late)
        )
        roots = [tmp_path / f"kill-{i:02d}" for i in range(KILLS)]
        jobs = []
        for i, (root, point) in enumerate(zip(roots, points, strict=True)):
            shutil.copytree(template, root)
            jobs.append(Job(args, tmp_path / f"kill-{i:02d}.log", env=_env(root), kill_at=point))
        killed_in: Counter[str] = Counter()
        after_kill: Counter[str] = Counter()
        # a few at a time: each child is a whole ingest (its own catalog and cluster)
        for batch in range(0, KILLS, 4):
            for job, outcome in zip(
                jobs[batch : batch + 4], cli.run(jobs[batch : batch + 4]), strict=True
            ):
                assert outcome.code == -9, outcome.output  # SIGKILL: no clean-up ran
                assert "Traceback" not in outcome.output, outcome.output
                killed_in[outcome.output.rsplit(": ", 1)[-1].strip()] += 1
                root = Path(job.env["RESISTOMICS_DATA_ROOT"])
                ws = _workspace(root)
                try:
                    statuses = _check_consistent(ws)
                    after_kill["published" if VersionStatus.PUBLISHED in statuses else "not"] += 1
                finally:
                    ws.close()
        # the same command again, in every killed root
        reruns = [
            Job(args, tmp_path / f"rerun-{i:02d}.log", env=_env(r)) for i, r in enumerate(roots)
        ]
        outcomes = []
        for batch in range(0, KILLS, 4):
            outcomes += cli.run(reruns[batch : batch + 4])
    finally:
        cli.close()
    said: Counter[str] = Counter()
    for root, outcome in zip(roots, outcomes, strict=True):
        assert outcome.code == 0, outcome.output
        assert "Traceback" not in outcome.output, outcome.output
        said["published" if "published s/counts@v" in outcome.output else "unchanged"] += 1
        ws = _workspace(root)
        try:
            _published_once(ws)
        finally:
            ws.close()
    # the kills fell all along the run, before and after its publication
    assert after_kill["not"] >= KILLS - late, (after_kill, killed_in)
    assert said["unchanged"] == after_kill["published"], (said, after_kill)
    print(f"\nkills: {dict(after_kill)}; reruns: {dict(said)}; killed in: {dict(killed_in)}")


# -- PostgreSQL restarted mid-ingest --------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, str]]:
    """A PostgreSQL server of this test alone (it gets restarted): (data dir, URL)."""
    if os.geteuid() != 0 or not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        pytest.skip("needs root and Debian's postgresql (see .ci/start-postgres)")
    out = subprocess.run(
        [str(REPO / ".ci" / "start-postgres")], check=True, capture_output=True, text=True
    ).stdout.split()
    directory, url = out[0], out[1]
    yield directory, url
    subprocess.run([str(REPO / ".ci" / "start-postgres"), "stop", directory], check=False)


def _restart(directory: str) -> None:
    (pg_ctl,) = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1:]
    subprocess.run(
        # -l again: pg_ctl does not keep the log file, and a server writing to our pipe
        # would keep it open
        [
            "su",
            "postgres",
            "-c",
            f"{pg_ctl} -D {directory}/data -l {directory}/server.log -m fast -w restart",
        ],
        check=True,
        capture_output=True,
    )


def test_postgres_restart_mid_publish_aborts_the_transaction_and_the_retry_publishes(
    tmp_path: Path, own_postgres: tuple[str, str]
) -> None:
    directory, url = own_postgres
    src = _table(tmp_path / "counts.tsv")
    root = tmp_path / "root"
    ws = _workspace(root, url)
    ws.catalog.register_study("s", [SampleRow(s, f"P{i // 2}") for i, s in enumerate(SAMPLES)])
    ws.close()
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    job = Job(
        ["ingest", str(src), "--study", "s"],
        tmp_path / "ingest.log",
        env=_env(root, url),
        # inside the publish transaction (Catalog._publish, what the retry re-runs): the
        # staged row was read, the study's lock not yet taken
        pause={
            "inside": "_publish",
            "function": "_study",
            "paused": str(paused),
            "resume": str(resume),
        },
    )
    cli = ForkedCli({**os.environ, "PYTHONWARNINGS": "ignore"})
    try:
        cli.submit([job])
        for _ in range(12000):
            if paused.exists() or cli.proc.poll() is not None:
                break
            time.sleep(0.01)
        assert paused.exists(), "the ingest never reached publication"
        _restart(directory)  # terminates every connection, the open transaction's too
        resume.touch()
        (outcome,) = cli.collect([job])
    finally:
        cli.close()
    assert outcome.code == 0, outcome.output
    assert "published s/counts@v1" in outcome.output, outcome.output
    assert "Traceback" not in outcome.output
    assert outcome.calls["inside"] >= 2, outcome.calls  # the aborted attempt, then the retry
    log = (Path(directory) / "server.log").read_text()
    assert "database system is shut down" in log or "shutting down" in log
    catalog = Catalog(url)
    try:
        versions = catalog.versions()
        assert [(v.number, v.status) for v in versions] == [(1, VersionStatus.PUBLISHED)]
    finally:
        catalog.close()
    ws = _workspace(root, url)
    try:
        assert [c for c in check_integrity(ws) if c.result == "problem"] == []
    finally:
        ws.close()
