"""The command line: --help everywhere, one clear line and a non-zero exit on bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from flows.cli import app
from shared_data import T47D

runner = CliRunner()


def _all_commands() -> list[list[str]]:
    root = get_command(app)
    out: list[list[str]] = [[]]

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "commands"):
            for name, sub in cmd.commands.items():
                out.append([*path, name])
                walk(sub, [*path, name])

    walk(root, [])
    return out


@pytest.mark.parametrize("command", _all_commands(), ids=lambda c: " ".join(c) or "resistomics")
def test_help_everywhere(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_start_up_imports_no_reader_or_compute_stack() -> None:
    """``resistomics <typo>`` and ``--help`` load the registry, every modality's option
    model and command group, but none of the readers' or analyses' libraries."""
    import subprocess
    import sys

    heavy = ["anndata", "cyvcf2", "scipy", "pandas", "dask", "zarr", "h5py", "numpy"]
    code = (
        "import sys, flows.cli\n"
        "from resistomics.modalities import modalities\n"
        "for m in modalities().values():\n"
        "    m.options.model_json_schema(); m.commands(); [r.name for r in m.readers]\n"
        f"print(sorted(set({heavy!r}) & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    # and a typo exits at once with typer's usage error, still without them
    typo = subprocess.run(
        [sys.executable, "-m", "flows.cli", "nosuchcommand"], capture_output=True, text=True
    )
    assert typo.returncode == 2 and "No such command" in typo.stderr, typo.stderr


def test_expected_commands_exist() -> None:
    names = {" ".join(c) for c in _all_commands()}
    for expected in (
        "init",
        "study register",
        "ingest",
        "validate",
        "signatures score",
        "signatures de",
        "catalog ls",
        "export",
        "serve",
        "demo",
        "plot",
        "variants clonal",
        "variants recurrent",
    ):
        assert expected in names


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "root"
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(root))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("COLUMNS", "250")
    return root


def test_t47d_through_the_cli(env: Path, tmp_path: Path) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    r = runner.invoke(app, ["study", "register", str(T47D / "samples.tsv"), "--study", "t47d"])
    assert r.exit_code == 0 and "24 added" in r.output, r.output
    r = runner.invoke(app, ["ingest", str(T47D / "counts.tsv.gz"), "--study", "t47d"])
    assert r.exit_code == 0, r.output
    assert "published t47d/counts@v1" in r.output
    # the source outside the landing zone was copied, never moved
    assert (T47D / "counts.tsv.gz").exists()
    r = runner.invoke(
        app,
        [
            "signatures",
            "de",
            "t47d/counts",
            "--contrast",
            "esr1_genotype:Y537S vs WT",
            "--where",
            "treatment=veh",
            "--method",
            "welch",
        ],
    )
    assert r.exit_code == 0, r.output
    out = tmp_path / "de.tsv"
    r = runner.invoke(
        app,
        [
            "export",
            "t47d/counts.de.t-test.esr1_genotype_Y537S_vs_WT_treatment-veh",
            "--format",
            "tsv",
            "-o",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    header = out.read_text().splitlines()[0].split("\t")
    assert header[:3] == ["gene_id", "gene_symbol", "rank"]
    png = tmp_path / "volcano.png"
    r = runner.invoke(
        app,
        ["plot", "t47d/counts.de.t-test.esr1_genotype_Y537S_vs_WT_treatment-veh", "-o", str(png)],
    )
    assert r.exit_code == 0 and png.stat().st_size > 10_000, r.output
    r = runner.invoke(app, ["catalog", "ls", "--study", "t47d"])
    assert r.exit_code == 0 and "t47d/counts@v1" in r.output
    r = runner.invoke(app, ["validate", "t47d/counts"])
    assert r.exit_code == 0 and "integer-counts" in r.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--modality", "expresion"],
            "--modality 'expresion': [option] choose accessibility, expression, metabolomics, methylation, spatial or variants; did you mean 'expression'?",
        ),
        (
            ["--format", "h5da"],
            "--format 'h5da': [option] choose 10x-mtx, bulk-table or h5ad; did you mean 'h5ad'?",
        ),
        (
            ["--valuse", "counts"],
            "--valuse: [option] not an option of expression ingest; did you mean --values?",
        ),
        (["--values", "count"], "--values 'count': [option] choose counts, normalized or auto"),
    ],
    ids=["modality", "format", "option", "option-value"],
)
def test_ingest_typos_fail_at_once_with_did_you_mean(
    env: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    """Choices come from the registry and are checked before anything is copied or a
    Dask cluster starts (which takes seconds): the typo costs well under a second."""
    import time

    counts = tmp_path / "counts.tsv"
    counts.write_text("gene_id\tS0\nG1\t1\n")
    runner.invoke(app, ["modalities"])  # warm the registry: time only the check
    started = time.perf_counter()
    r = runner.invoke(app, ["ingest", str(counts), "--study", "s", *args])
    elapsed = time.perf_counter() - started
    assert r.exit_code == 1, r.output
    assert expected in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert elapsed < 1.0, elapsed
    assert not (env / "landing").exists() or not list((env / "landing").rglob("counts.tsv"))


def test_other_typos_fail_with_did_you_mean(env: Path, tmp_path: Path) -> None:
    r = runner.invoke(app, ["export", "s/d", "--format", "tvs", "-o", str(tmp_path / "x")])
    assert r.exit_code == 1 and "did you mean 'tsv'?" in r.stderr, r.stderr
    r = runner.invoke(app, ["signatures", "score", "s/d", "--method", "singscor"])
    assert r.exit_code == 1 and "singscore" in r.stderr, r.stderr


_ERROR_LINE = re.compile(r"^error: (?P<place>\S.*?): \[(?P<rule>[a-z0-9-]+)\] \S")


def _one_error_line(r: Any, place: str, rule: str) -> str:
    assert r.exit_code == 1, r.output
    line = r.stderr.strip()
    assert "\n" not in line, line
    m = _ERROR_LINE.match(line)
    assert m is not None and (m["place"], m["rule"]) == (place, rule), line
    return line


@pytest.mark.parametrize(
    ("args", "place", "rule"),
    [
        (["study", "show", "nope"], "study 'nope'", "unknown-study"),
        (["catalog", "ls", "--study", "nope"], "study 'nope'", "unknown-study"),
        (["validate", "s/nothing"], "'s/nothing'", "unknown-dataset"),
        (["validate", "nothing"], "'nothing'", "dataset-ref"),
        (["plot", "s/nothing", "-o", "{tmp}/x.png"], "'s/nothing'", "unknown-dataset"),
        (["export", "s/d", "--format", "tvs", "-o", "{tmp}/x"], "--format 'tvs'", "option"),
        (["export", "s/d", "-o", "{tmp}/no/x.tsv"], "{tmp}/no/x.tsv", "output-folder"),
        (["export", "s/d", "-o", "{tmp}"], "{tmp}", "output-file"),
        (["plot", "s/d", "-o", "{tmp}/no/x.png"], "{tmp}/no/x.png", "output-folder"),
        (["signatures", "score", "s/d", "--method", "singscor"], "--method 'singscor'", "option"),
        (["signatures", "score", "s/d", "--threshold", "x"], "--threshold 'x'", "option"),
        (["signatures", "score", "s/d", "--threshold", "=1"], "--threshold '=1'", "option"),
        (["signatures", "score", "s/d", "--threshold", "inf"], "--threshold 'inf'", "option"),
        (
            ["signatures", "de", "s/d", "--contrast", "a:b vs c", "--method", "welsh"],
            "--method 'welsh'",
            "option",
        ),
        (
            ["signatures", "de", "s/d", "--contrast", "a:b vs c", "--scale", "lg"],
            "--scale 'lg'",
            "option",
        ),
        (["variants", "clonal", "s/nothing"], "'s/nothing'", "unknown-dataset"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_command_errors_name_place_and_rule(
    env: Path, tmp_path: Path, args: list[str], place: str, rule: str
) -> None:
    """Every command's error is one line ``<place>: [<rule>] ...`` (not only ingest's)."""
    sheet = tmp_path / "s.tsv"
    sheet.write_text("sample_id\tphase\nA\tbaseline\n")
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", "s"]).exit_code == 0
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    _one_error_line(runner.invoke(app, args), place.replace("{tmp}", str(tmp_path)), rule)


def test_errors_about_stored_data_name_place_and_rule(env: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "s.tsv"
    sheet.write_text("sample_id\tsubject_id\nA\tP1\nB\tP2\n")
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", "s"]).exit_code == 0
    counts = tmp_path / "counts.tsv"
    counts.write_text("gene_id\tA\tB\nG1\t3\t4\nG2\t5\t6\n")
    r = runner.invoke(app, ["ingest", str(counts), "--study", "s"])
    assert r.exit_code == 0, r.output
    out = str(tmp_path / "x.tsv")
    line = _one_error_line(
        runner.invoke(app, ["export", "s/counts", "-o", out]), "s/counts@v1", "export-table"
    )
    assert "--format h5ad" in line and "--table obs|var" in line
    line = _one_error_line(
        runner.invoke(app, ["export", "s/counts", "--table", "obz", "-o", out]),
        "--table 'obz'",
        "option",
    )
    assert "did you mean 'obs'?" in line
    _one_error_line(
        runner.invoke(app, ["export", "s/counts@vx", "-o", out]), "'s/counts@vx'", "dataset-ref"
    )
    _one_error_line(
        runner.invoke(app, ["export", "s/counts@v7", "-o", out]), "'s/counts@v7'", "not-published"
    )
    _one_error_line(
        runner.invoke(app, ["variants", "clonal", "s/counts"]), "s/counts@v1", "dataset-type"
    )
    moved = tmp_path / "moved.tsv"
    moved.write_text("sample_id\tsubject_id\nA\tP9\n")
    _one_error_line(
        runner.invoke(app, ["study", "register", str(moved), "--study", "s"]),
        "study s",
        "design-change",
    )


def test_errors_raised_without_a_rule_still_print_one() -> None:
    from resistomics.errors import MethodInputError, StorageError, error_line

    assert error_line(MethodInputError("purity must lie in (0, 1]")) == (
        "[method-input] purity must lie in (0, 1]"
    )
    tagged = StorageError("cannot write\nthere", place="s3://b/x", rule="storage-write")
    assert str(tagged) == "s3://b/x: [storage-write] cannot write\\nthere"
    assert error_line(tagged) == str(tagged) and isinstance(tagged, OSError)


def test_modalities_lists_formats_options_and_analyses(env: Path) -> None:
    r = runner.invoke(app, ["modalities"])
    assert r.exit_code == 0, r.output
    for text in ("expression", "bulk-table", "--values", "signatures*", "variants", "clonal*"):
        assert text in r.output, r.output


def test_bad_file_one_line_and_nonzero_exit(env: Path, tmp_path: Path) -> None:
    runner.invoke(app, ["study", "register", str(T47D / "samples.tsv"), "--study", "t47d"])
    bad = tmp_path / "bad.tsv"
    bad.write_text("gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t-1\nG2\t4\t5\n")
    r = runner.invoke(app, ["ingest", str(bad), "--study", "t47d"])
    assert r.exit_code == 1
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    assert (
        "bad.tsv" in lines[0]
        and "non-negative-counts" in lines[0]
        and "veh_WT_rep2/G1=-1" in lines[0]
    )


def test_bad_sample_sheet_exit(env: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "s.tsv"
    sheet.write_text("sample_id\tphase\nA\tbasline\n")
    r = runner.invoke(app, ["study", "register", str(sheet), "--study", "x"])
    assert r.exit_code == 1
    assert "did you mean 'baseline'" in r.stderr and "\n" not in r.stderr.strip()


def test_unknown_dataset_is_one_line(env: Path) -> None:
    runner.invoke(app, ["init"])
    r = runner.invoke(app, ["signatures", "score", "nope/nothing"])
    assert r.exit_code == 1 and "no study named 'nope'" in r.stderr


def test_copy_keeps_source(tmp_path: Path) -> None:
    # sanity for the helper used above: the shared data folder is read-only input
    assert shutil.disk_usage(T47D).total > 0


def test_apl_recurrence_through_the_cli(env: Path, tmp_path: Path) -> None:
    from shared_data import APL

    barcodes = {"APL_primary.maf.gz": "baseline", "APL_relapse.maf.gz": "relapse"}
    import gzip

    rows = ["sample_id\tsubject_id\tphase"]
    for name, phase in barcodes.items():
        text = gzip.decompress((APL / name).read_bytes()).decode().replace("\r", "\n")
        lines = [line.split("\t") for line in text.splitlines() if line]
        col = lines[0].index("Tumor_Sample_Barcode")
        rows += [f"{b}\t{b[:-1]}\t{phase}" for b in sorted({r[col] for r in lines[1:]})]
    sheet = tmp_path / "apl.tsv"
    sheet.write_text("\n".join(rows) + "\n")
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", "apl"]).exit_code == 0
    for name in barcodes:
        r = runner.invoke(
            app, ["ingest", str(APL / name), "--study", "apl", "--modality", "variants"]
        )
        assert r.exit_code == 0, r.output
    r = runner.invoke(
        app,
        [
            "variants",
            "recurrent",
            "apl/APL_primary",
            "apl/APL_relapse",
            "--contrast",
            "phase:relapse vs baseline",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "PML" in r.output and "RARA" in r.output


def test_clonal_through_the_cli(env: Path, tmp_path: Path) -> None:
    import numpy as np

    from pipeline.variant_cohort import planted_cohort

    sheet, maf = planted_cohort(tmp_path, np.random.default_rng(11))
    r = runner.invoke(app, ["study", "register", str(sheet), "--study", "evo"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", str(maf), "--study", "evo", "--modality", "variants"])
    assert r.exit_code == 0 and "published evo/cohort@v1" in r.output, r.output
    r = runner.invoke(app, ["variants", "clonal", "evo/cohort"])
    assert r.exit_code == 0, r.output
    assert "published evo/cohort.clonal@v1" in r.output
    assert "emergent catalogued resistance mutations: 3" in r.output
    assert r.output.count("Y537S") == 3  # one row per subject
    # other parameters (over-dispersed reads) make a new version, the same finding
    r = runner.invoke(app, ["variants", "clonal", "evo/cohort", "--precision", "100"])
    assert r.exit_code == 0, r.output
    assert "published evo/cohort.clonal@v2" in r.output and r.output.count("Y537S") == 3
    r = runner.invoke(
        app, ["variants", "recurrent", "evo/cohort", "--contrast", "phase:progression vs baseline"]
    )
    assert r.exit_code == 0, r.output
    assert "published" in r.output and "ESR1" in r.output
    # A dataset that is not variant calls: one line, non-zero exit.
    r = runner.invoke(app, ["variants", "clonal", "evo/cohort.clonal"])
    assert r.exit_code == 1
    assert "evo/cohort.clonal@v2: [dataset-type] is signatures.clonal, not variant calls" in (
        r.stderr
    )


@pytest.mark.parametrize("kind", ["directory", "utf16", "xlsx", "nul"])
def test_unreadable_sample_sheet_is_one_line(env: Path, tmp_path: Path, kind: str) -> None:
    from modalities.bad_files import as_utf16, with_nul, xlsx_like

    good = tmp_path / "good.tsv"
    good.write_text("sample_id\tphase\nA\tbaseline\nB\trelapse\n")
    sheet = tmp_path / "s.tsv"
    if kind == "directory":
        sheet.mkdir()
    else:
        {"utf16": as_utf16, "xlsx": xlsx_like, "nul": with_nul}[kind](good, sheet)
    r = runner.invoke(app, ["study", "register", str(sheet), "--study", "x"])
    assert r.exit_code == 1, r.output
    line = r.stderr.strip()
    assert "\n" not in line and str(sheet) in line
    says = {"directory": "is a directory", "utf16": "UTF-16", "xlsx": "Excel", "nul": "NUL"}
    assert says[kind] in line, line


def test_threshold_and_scale_options_are_checked_first(env: Path) -> None:
    from resistomics.modalities.expression._commands import _thresholds

    assert _thresholds([]) == "auto" and _thresholds(["auto"]) == "auto"
    assert _thresholds(["0.25"]) == 0.25
    assert _thresholds(["EMT=0.3", "DRUG_TOLERANT_PERSISTER=-1"]) == {
        "EMT": 0.3,
        "DRUG_TOLERANT_PERSISTER": -1.0,
    }
    r = runner.invoke(app, ["signatures", "score", "s/d", "--threshold", "EMT=high"])
    assert r.exit_code == 1 and "--threshold 'high': [option] not a number" in r.stderr, r.output
    r = runner.invoke(
        app, ["signatures", "de", "s/d", "--contrast", "phase:a vs b", "--scale", "log10"]
    )
    assert r.exit_code == 1 and "--scale 'log10': [option] choose auto, log1p" in r.stderr, r.output
