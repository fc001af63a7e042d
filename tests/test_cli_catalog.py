"""The catalog's commands: catalog ls / study show (--json, piped output, unknown study),
study register --allow-design-change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()
LONG = "a_study_with_a_rather_long_name_that_would_wrap"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(root))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.delenv("COLUMNS", raising=False)
    return root


@pytest.fixture
def published(env: Path, tmp_path: Path) -> Path:
    sheet = tmp_path / "s.tsv"
    sheet.write_text("sample_id\tsubject_id\tarm\nS1\tP1\tx\nS2\tP1\ty\nS3\tP2\tx\n")
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", LONG]).exit_code == 0
    counts = tmp_path / "counts_with_a_long_file_name_too.tsv"
    counts.write_text(
        "gene_id\tS1\tS2\tS3\n" + "".join(f"G{i}\t{i}\t{i + 1}\t3\n" for i in range(20))
    )
    r = runner.invoke(app, ["ingest", str(counts), "--study", LONG])
    assert r.exit_code == 0, r.output
    return sheet


def test_catalog_ls_unknown_study_exits_non_zero_with_did_you_mean(published: Path) -> None:
    r = runner.invoke(app, ["catalog", "ls", "--study", LONG[:-1]])
    assert r.exit_code == 1
    assert f"no study named {LONG[:-1]!r} (did you mean {LONG!r}?)" in r.stderr
    assert r.stdout == ""


def test_catalog_ls_json(published: Path) -> None:
    r = runner.invoke(app, ["catalog", "ls", "--study", LONG, "--json"])
    assert r.exit_code == 0, r.output
    (row,) = json.loads(r.stdout)
    assert row["ref"] == f"{LONG}/counts_with_a_long_file_name_too@v1"
    assert (row["kind"], row["layout"], row["layout_version"], row["status"]) == (
        "source",
        "sparse-matrix",
        1,
        "published",
    )
    assert row["shape"] == [3, 20] and row["manifest_digest"].startswith("sha256:")
    assert row["uri"].startswith(f"datasets/{LONG}/")


def test_study_show_json_and_design_changes(published: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["study", "show", LONG, "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [s["sample_id"] for s in doc["samples"]] == ["S1", "S2", "S3"]
    assert doc["samples"][0]["arm"] == "x" and doc["samples"][0]["timepoint"] is None
    assert doc["design_changes"] == []

    moved = tmp_path / "moved.tsv"
    moved.write_text("sample_id\tsubject_id\tarm\nS1\tP1\tx\nS2\tP2\ty\nS3\tP2\tx\n")
    r = runner.invoke(app, ["study", "register", str(moved), "--study", LONG])
    assert r.exit_code == 1
    assert "sample 'S2' would move from subject 'P1' to 'P2'" in r.stderr
    assert "--allow-design-change" in r.stderr and "\n" not in r.stderr.strip()
    r = runner.invoke(
        app, ["study", "register", str(moved), "--study", LONG, "--allow-design-change"]
    )
    assert r.exit_code == 0 and "1 design change(s) recorded" in r.stdout
    doc = json.loads(runner.invoke(app, ["study", "show", LONG, "--json"]).stdout)
    (change,) = doc["design_changes"]
    assert (change["sample"], change["field"], change["old"], change["new"]) == (
        "S2",
        "subject_id",
        "P1",
        "P2",
    )
    assert change["explicit"] is True and change["changed_at"]


def test_piped_tables_do_not_wrap(published: Path, env: Path) -> None:
    """Through a real pipe (not a terminal): every value in full on one line."""
    environ = {
        **os.environ,
        "RESISTOMICS_DATA_ROOT": str(env),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    environ.pop("COLUMNS", None)
    code = "from flows.cli import main; main()"
    ls = subprocess.run(
        [sys.executable, "-c", code, "catalog", "ls"],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    ref = f"{LONG}/counts_with_a_long_file_name_too@v1"
    line = next(line for line in ls.stdout.splitlines() if ref in line)
    assert len(line) > 80 and "datasets/" in line  # the ref and the URI on the same line
    show = subprocess.run(
        [sys.executable, "-c", code, "study", "show", LONG],
        capture_output=True,
        text=True,
        env=environ,
        check=True,
    )
    assert f"study {LONG}: 3 samples" in show.stdout
