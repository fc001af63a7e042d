"""`resistomics ingest` has the flow's time limit (``RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS``).

Past it the command exits 1 with one ``[ingest-timeout]`` line, what the run staged is
removed, nothing is published and the file is quarantined with rule ``ingest-timeout``
(as the flow's ingest task does, see ``tests/flows/test_ingest_timeout.py``).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from resistomics.catalog import Catalog, VersionStatus
from resistomics.config import load_settings
from resistomics.pipeline import check_integrity
from resistomics.publishing import Staging, Workspace
from shared_data import T47D

runner = CliRunner()

GOOD = "gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t4\nG2\t5\t6\n"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(root))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("COLUMNS", "250")
    r = runner.invoke(app, ["study", "register", str(T47D / "samples.tsv"), "--study", "t47d"])
    assert r.exit_code == 0, r.output
    return root


def _timed_out(r: Any, landed: Path, limit: str) -> Path:
    """The one error line's checks; the quarantine folder it names."""
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # a clean exit, no traceback
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert f"{landed}: [ingest-timeout] the ingest did not finish within {limit} s" in line
    assert "; quarantined, report at " in line
    qdir = Path(line.rsplit("report at ", 1)[1])
    assert (qdir / landed.name).read_text() == GOOD
    assert json.loads((qdir / "report.json").read_text())["rule"] == "ingest-timeout"
    assert not landed.exists()  # not left in the landing zone to be announced again
    return qdir


def _nothing_kept(root: Path) -> None:
    ws = Workspace.open(load_settings())
    assert not ws.catalog.versions(study="t47d")  # nothing published, nothing staged
    assert not ws.catalog.versions(study="t47d", status=VersionStatus.STAGED)
    datasets = root / "datasets"
    assert not datasets.exists() or not any(datasets.rglob("v-*"))


def test_an_ingest_past_its_timeout_exits_with_one_line_and_quarantines_the_file(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    # no ingest (Dask client, staging, Great Expectations) finishes in 0.3 s
    monkeypatch.setenv("RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS", "0.3")

    started = time.monotonic()
    r = runner.invoke(app, ["ingest", str(src), "--study", "t47d"])

    assert time.monotonic() - started < 30
    _timed_out(r, env / "landing" / "t47d" / "expression" / "expr.tsv", "0.3")
    _nothing_kept(env)

    # the same bytes without the limit publish: the file was not the problem
    monkeypatch.delenv("RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS")
    r = runner.invoke(app, ["ingest", str(src), "--study", "t47d"])
    assert r.exit_code == 0, r.output


def test_a_timeout_while_staged_removes_the_staged_version(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alarm lands after the writer staged the version (held at ``set_shape`` until
    interrupted): the staged store and its catalog row are gone afterwards."""
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    monkeypatch.setenv("RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS", "10")
    seen: list[tuple[str, bool]] = []

    def stuck(self: Staging, shape: Any) -> Any:
        assert self.version is not None
        seen.append((self.version.status, Path(self.ws.root.to_path(self.version.uri)).exists()))
        time.sleep(600)  # a stuck file system: only the alarm ends it

    monkeypatch.setattr(Staging, "set_shape", stuck)
    started = time.monotonic()
    r = runner.invoke(app, ["ingest", str(src), "--study", "t47d"])

    assert time.monotonic() - started < 60
    assert seen == [("staged", True)], (
        seen,
        r.exception,
    )  # interrupted with a staged version on disk
    _timed_out(r, env / "landing" / "t47d" / "expression" / "expr.tsv", "10")
    _nothing_kept(env)


def test_a_timeout_after_the_publication_committed_reports_the_version_published(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit runs out just after the publish transaction committed (the real alarm,
    re-armed to fire 0.2 s later, while the command is held there): the command says
    published and exits 0; the version, its files and the archived file stay."""
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    monkeypatch.setenv("RESISTOMICS_LIMITS__INGEST_TIMEOUT_SECONDS", "300")
    publish = Catalog.publish_version
    interrupted: list[bool] = []

    def committed_then_stuck(self: Catalog, *args: Any, **kwargs: Any) -> Any:
        published = publish(self, *args, **kwargs)
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # the time limit runs out now
        try:
            time.sleep(120)  # e.g. a slow answer: only the alarm ends it
        except BaseException:
            interrupted.append(True)
            raise
        return published

    monkeypatch.setattr(Catalog, "publish_version", committed_then_stuck)
    started = time.monotonic()
    r = runner.invoke(app, ["ingest", str(src), "--study", "t47d"])

    assert time.monotonic() - started < 100
    assert interrupted == [True]
    assert r.exit_code == 0, r.output
    said = " ".join(r.stdout.split())
    assert "published t47d/expr@v1" in said, said
    assert "passed after the publication committed" in said
    ws = Workspace.open(load_settings())
    try:
        (v,) = ws.catalog.versions(study="t47d")
        assert v.status is VersionStatus.PUBLISHED
        assert Path(ws.root.to_path(v.uri)).is_dir()  # not removed as a staged leftover
        assert [c for c in check_integrity(ws) if c.result == "problem"] == []
    finally:
        ws.close()
    assert not (env / "landing" / "t47d" / "expression" / "expr.tsv").exists()
    assert [p.name for p in (env / "archive" / "t47d").rglob("*") if p.is_file()] == ["expr.tsv"]
    assert not (env / "quarantine").exists() or not any((env / "quarantine").rglob("*.tsv"))
