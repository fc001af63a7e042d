"""Plot options are declared by each analysis and checked by the generic ``plot`` command.

The toy plugin (``tests/toy_modality``) declares ``--top`` on its summary plot: the
generic command lists it in ``--help``, passes it, and refuses a misspelt one with a
did-you-mean, although no library module names the plugin or its option.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from resistomics.catalog import SampleRow
from resistomics.errors import InputError
from resistomics.modalities import plot_dataset
from resistomics.pipeline import Workspace, analyse, ingest

STUDY = "plots"
# sample -> its values; the means are 1, 5, 3, 4, 2 (the largest two: B, D)
VALUES = {"A": [1, 1], "B": [4, 6], "C": [3, 3], "D": [2, 6], "E": [2, 2]}


@pytest.fixture
def toy_result(
    workspace: Workspace, toy_plugin: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Workspace, str]:
    """A published toy summary (through the real ingest and analyse) and the CLI's
    environment pointing at its workspace."""
    workspace.catalog.register_study(
        STUDY, [SampleRow(sample_id=s, subject_id=s, phase="baseline") for s in VALUES]
    )
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "toy"
    folder.mkdir(parents=True)
    lines = ["#toy v1"] + [
        f"{s}\tf{i}\t{v}" for s, values in VALUES.items() for i, v in enumerate(values)
    ]
    (folder / "values.toy").write_text("\n".join(lines) + "\n")
    out = ingest(workspace, str(folder / "values.toy"), study=STUDY)
    assert out.status == "published", out.message
    run = analyse(workspace, out.version.ref, "summary")
    assert run.outcome.status == "published", run.outcome.message
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", workspace.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("COLUMNS", "250")
    return workspace, run.outcome.version.ref


def _drawn(png: Path) -> list[str]:
    from PIL import Image

    with Image.open(png) as image:
        return str(image.info["Description"]).split(",")


def test_a_plugin_plot_option_is_passed_listed_and_checked(
    toy_result: tuple[Workspace, str], tmp_path: Path
) -> None:
    from flows.cli import app

    _, ref = toy_result
    runner = CliRunner()
    png = tmp_path / "top.png"
    r = runner.invoke(app, ["plot", ref, "-o", str(png), "--top", "2"])
    assert r.exit_code == 0, r.output
    assert _drawn(png) == ["B", "D"]  # the two largest means, largest first
    r = runner.invoke(app, ["plot", ref, "-o", str(png), "--top=4"])
    assert r.exit_code == 0 and _drawn(png) == ["B", "D", "C", "E"], r.output
    r = runner.invoke(app, ["plot", ref, "-o", str(png)])  # the declared default: all 5
    assert r.exit_code == 0 and sorted(_drawn(png)) == sorted(VALUES), r.output

    r = runner.invoke(app, ["plot", ref, "-o", str(tmp_path / "x.png"), "--topp", "2"])
    assert r.exit_code == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert (
        "--topp: [option] not an option of the summary plot (toy.summary); did you mean --top?"
        in r.stderr
    )
    r = runner.invoke(app, ["plot", ref, "-o", str(tmp_path / "x.png"), "--top", "0"])
    assert r.exit_code == 1 and "--top '0': [option]" in r.stderr, r.stderr
    assert "greater than or equal to 1" in r.stderr
    r = runner.invoke(app, ["plot", ref, "-o", str(tmp_path / "x.png"), "--top"])
    assert r.exit_code == 1 and "--top: [option] needs a value" in r.stderr, r.stderr
    assert not (tmp_path / "x.png").exists()

    help_text = runner.invoke(app, ["plot", "--help"]).output
    assert re.search(r"toy\.summary: summary \(toy\); --top \(draw the samples", help_text)
    assert re.search(r"signatures\.scores: signatures \(expression\); --gene-set", help_text)
    assert re.search(r"signatures\.de: de \(expression\); no options", help_text)


def _result(dataset_type: str) -> SimpleNamespace:
    return SimpleNamespace(
        kind="result", dataset_type=dataset_type, ref=f"s/d.{dataset_type}@v1", modality="x"
    )


def test_options_are_checked_before_anything_is_read(tmp_path: Path) -> None:
    """No workspace is given: a refused option never reaches the data."""
    with pytest.raises(InputError, match=r"did you mean --gene-set\?") as err:
        plot_dataset(None, _result("signatures.scores"), tmp_path / "x.png", gene_sett="X")
    assert err.value.file == "--gene-sett" and err.value.rule == "option"
    # an analysis that declares no plot options takes none (and still plots without any:
    # the DE volcano in tests/test_cli.py, the clone plot in test_vcf_clonal_oracle.py)
    with pytest.raises(InputError, match=r"\(options: none\)"):
        plot_dataset(None, _result("signatures.de"), tmp_path / "x.png", gene_set="X")
    assert not (tmp_path / "x.png").exists()
