"""`resistomics ingest` as a new user tries it: arguments that would become paths, unknown
studies, links in the landing zone, and error lines printed as they are (no rich markup)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from shared_data import T47D

runner = CliRunner()

GOOD = "gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t4\nG2\t5\t6\n"
NEGATIVE = "gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t-1\nG2\t4\t5\n"


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


def _files(directory: Path) -> list[Path]:
    """Every file below ``directory`` (the catalog's SQLite files come and go by themselves)."""
    return sorted(
        p
        for p in directory.rglob("*")
        if (p.is_file() or p.is_symlink()) and not p.name.startswith("catalog.sqlite")
    )


def _one_error_line(r) -> str:  # type: ignore[no-untyped-def]
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, SystemExit), r.exception  # a clean exit, no traceback
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_a_path_argument_cannot_overwrite_a_published_store(env: Path, tmp_path: Path) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    r = runner.invoke(app, ["ingest", str(src), "--study", "t47d"])
    assert r.exit_code == 0, r.output
    (version,) = (env / "datasets" / "t47d" / "expr").glob("v-*")
    published = {p: p.read_bytes() for p in _files(version)}
    evil = tmp_path / "zarr.json"
    evil.write_text('{"zarr_format": 3, "node_type": "array", "evil": true}')

    r = runner.invoke(
        app,
        [
            "ingest",
            str(evil),
            "--study",
            "..",
            "--modality",
            f"datasets/t47d/expr/{version.name}/expression.zarr",
        ],
    )

    line = _one_error_line(r)
    assert "study '..': [name] a study name is" in line and "'..'" in line
    assert {p: p.read_bytes() for p in _files(version)} == published
    assert not any(p.name == "zarr.json" for p in _files(env / "landing"))


def test_a_study_or_modality_cannot_escape_the_landing_zone(env: Path, tmp_path: Path) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    before = _files(tmp_path)
    for args in (
        ["--study", "../../escaped"],
        ["--study", "t47d", "--modality", "../../../escaped"],
        ["--study", "t47d", "--dataset", "../escaped"],
    ):
        line = _one_error_line(runner.invoke(app, ["ingest", str(src), *args]))
        assert "[name]" in line and "escaped" in line
    assert _files(tmp_path) == before  # nothing written anywhere, inside or outside


def test_a_dataset_name_with_a_version_pin_is_refused(env: Path, tmp_path: Path) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    line = _one_error_line(
        runner.invoke(app, ["ingest", str(src), "--study", "t47d", "--dataset", "counts@v2"])
    )
    assert line.startswith("error: dataset 'counts@v2': [name]") and "'@'" in line
    assert _files(env / "landing") == []


def test_an_unknown_study_leaves_nothing_in_the_landing_zone(env: Path, tmp_path: Path) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    line = _one_error_line(runner.invoke(app, ["ingest", str(src), "--study", "t47e"]))
    assert "t47e" in line
    assert _files(env / "landing") == []


def test_a_study_name_with_markup_is_printed_as_it_is(env: Path, tmp_path: Path) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    line = _one_error_line(runner.invoke(app, ["ingest", str(src), "--study", "[/i]"]))
    assert "study '[/i]': [name]" in line
    line = _one_error_line(
        runner.invoke(app, ["study", "register", str(T47D / "samples.tsv"), "--study", "[/i]"])
    )
    assert "study '[/i]': [name]" in line


def test_error_lines_keep_their_rule_tag_and_no_emoji(env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad:x:.tsv"
    bad.write_text(NEGATIVE)
    line = _one_error_line(runner.invoke(app, ["ingest", str(bad), "--study", "t47d"]))
    assert "bad:x:.tsv: [validation] non-negative-counts: counts must be >= 0" in line
    assert "  " not in line and "\u274c" not in line


def test_a_newline_in_a_file_name_does_not_split_the_error_line(env: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad\nname.tsv"
    bad.write_text(GOOD)
    line = _one_error_line(runner.invoke(app, ["ingest", str(bad), "--study", "t47d"]))
    assert "bad\\nname.tsv" in line and "[file-name]" in line
    assert _files(env / "landing") == []


def test_a_landing_zone_link_to_a_file_outside_is_refused(env: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.tsv"
    outside.write_text(GOOD)
    link = env / "landing" / "t47d" / "expression" / "link.tsv"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)

    line = _one_error_line(runner.invoke(app, ["ingest", str(link), "--study", "t47d"]))

    assert f"{link}: [symlink]" in line and "quarantined" in line
    assert outside.read_text() == GOOD  # the target is never moved, read or changed
    assert not os.path.lexists(link)  # quarantined, so the sweep does not announce it again
    r = runner.invoke(app, ["catalog", "ls", "--study", "t47d"])
    assert "link" not in r.output


def test_user_text_in_tables_is_printed_as_it_is(env: Path, tmp_path: Path) -> None:
    sheet = tmp_path / "design.tsv"
    sheet.write_text("sample_id\tsubject_id\tnote\nA1\tP1\t[/i] :x: [bold]\n")
    r = runner.invoke(app, ["study", "register", str(sheet), "--study", "marked"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["study", "show", "marked"])
    assert r.exit_code == 0, r.output
    assert "[/i] :x: [bold]" in r.stdout


def test_option_errors_carry_a_rule_tag(env: Path, tmp_path: Path) -> None:
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    line = _one_error_line(
        runner.invoke(app, ["ingest", str(src), "--study", "t47d", "--values", "z"])
    )
    assert line == "error: --values 'z': [option] choose counts, normalized or auto"
    line = _one_error_line(
        runner.invoke(app, ["ingest", str(src), "--study", "t47d", "--modality", "expresion"])
    )
    assert (
        line.startswith("error: --modality 'expresion': [option] choose ") and "expression" in line
    )
    assert _files(env / "landing") == []


def test_links_and_fifos_are_refused_before_anything_is_copied(env: Path, tmp_path: Path) -> None:
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:SECRET-CONTENT:/root:/bin/bash\n")
    run = tmp_path / "run1"
    run.mkdir()
    (run / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 3\n"
    )
    (run / "features.tsv").write_text("G1\tSYM1\tGene Expression\n")
    (run / "barcodes.tsv").symlink_to(secret)
    line = _one_error_line(runner.invoke(app, ["ingest", str(run), "--study", "t47d"]))
    assert f"{run}/barcodes.tsv: [symlink]" in line
    assert "SECRET" not in line and str(secret) not in line

    fifo = tmp_path / "counts.tsv"
    os.mkfifo(fifo)
    line = _one_error_line(runner.invoke(app, ["ingest", str(fifo), "--study", "t47d"]))
    assert f"{fifo}: [file-type] is not a regular file" in line
    assert _files(env / "landing") == []
