"""``resistomics ingest PATH --modality accessibility`` through the generic CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from atac_files import break_peaks, peaks_of, write_fragments, write_peak_matrix
from flows.cli import app

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("COLUMNS", "250")
    assert runner.invoke(app, ["init"]).exit_code == 0
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tsubject_id\nS1\tP1\nS2\tP2\n")
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", "st"]).exit_code == 0
    return tmp_path


def test_peak_matrix_and_fragments_ingest_through_the_cli(env: Path) -> None:
    x = np.random.default_rng(0).poisson(1.0, (8, 6)).astype(float)
    bcs = [f"BC{i}-1" for i in range(8)]
    src = write_peak_matrix(env / "m", x, peaks_of(6), bcs, None)
    r = runner.invoke(
        app,
        [
            "ingest",
            str(src),
            "--study",
            "st",
            "--modality",
            "accessibility",
            "--format",
            "peak-matrix",
            "--sample",
            "S1",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "published st/m@v1 (8 barcodes/samples x 6 peaks, accessibility.counts)" in " ".join(
        r.output.split()
    )
    frag = write_fragments(
        env / "S2.fragments.tsv.gz", [("chr1", 100, 300, "BC0-1", 1)], index=False
    )
    r = runner.invoke(
        app, ["ingest", str(frag), "--study", "st", "--modality", "accessibility", "--sample", "S2"]
    )
    assert r.exit_code == 0, r.output
    assert "accessibility.fragments" in r.output


def test_bad_peak_matrix_exits_non_zero_with_one_line(env: Path) -> None:
    x = np.ones((4, 6))
    src = write_peak_matrix(
        env / "bad",
        x,
        break_peaks(peaks_of(6), "negative-start"),
        [f"B{i}" for i in range(4)],
        ["S1"] * 4,
    )
    r = runner.invoke(app, ["ingest", str(src), "--study", "st", "--modality", "accessibility"])
    assert r.exit_code != 0
    assert "[non-negative-coordinates]" in r.stderr and "peaks.bed (line 3)" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_accessibility_qc_command_publishes_the_qc(env: Path) -> None:
    rows = sorted(
        {
            ("chr1", 10_000 + 37 * i, 10_000 + 37 * i + 60 + i % 300, f"BC{i % 3}-1", 1)
            for i in range(900)
        }
    )
    outs = env / "outs"
    outs.mkdir()
    write_fragments(outs / "fragments.tsv.gz", rows, index=False)
    (outs / "peaks.bed").write_text("chr1\t10000\t12000\nchr1\t20000\t30000\n")
    r = runner.invoke(
        app, ["ingest", str(outs), "--study", "st", "--modality", "accessibility", "--sample", "S1"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["accessibility", "qc", "st/outs"])
    assert r.exit_code == 0, r.output
    assert "published st/outs.qc@v1" in " ".join(r.output.split()), r.output
    assert "S1" in r.output
    r = runner.invoke(app, ["accessibility", "qc", "st/nope"])
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1, r.output
