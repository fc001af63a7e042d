"""``resistomics demo``: the folder it wipes, and its start-up (one Prefect server, the
triggers live before the first event)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.demo import MARKER, prepare_root
from resistomics.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_a_folder_not_made_by_the_demo_is_refused_and_kept(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("three years of work\n")
    with pytest.raises(ConfigError, match="not made by `resistomics demo`"):
        prepare_root(tmp_path)
    assert (tmp_path / "thesis.tex").read_text() == "three years of work\n"


def test_the_cli_refuses_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = CliRunner().invoke(app, ["demo", "--root", str(tmp_path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--force" in lines[0] and str(tmp_path) in lines[0], lines
    assert (tmp_path / "keep.txt").exists()


def test_an_earlier_demo_folder_is_wiped_and_marked(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    prepare_root(root)  # new folder: made and marked
    assert (root / MARKER).is_file()
    (root / "data").mkdir()
    (root / "data" / "old.zarr").write_text("from the last run")
    prepare_root(root)
    assert sorted(p.name for p in root.iterdir()) == [MARKER]


def test_force_wipes_any_folder_and_an_empty_one_is_taken(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_root(empty)
    assert (empty / MARKER).is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "x").write_text("x")
    prepare_root(other, force=True)
    assert sorted(p.name for p in other.iterdir()) == [MARKER]


def test_the_cli_and_the_demo_do_not_import_prefect_at_import() -> None:
    # Prefect reads its settings once, when first imported: `resistomics demo/serve`
    # set PREFECT_API_URL & co. first, which works only while nothing imports it early.
    code = (
        "import sys, flows.cli, flows.demo, flows._server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout


# The demo's start-up path in a fresh process (this one has imported Prefect already):
# demo_services() then one resistomics.file.landed for a file nobody will ever sweep.
_STARTUP = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path

    from flows.demo import DemoLayout, demo_services, prepare_root

    assert not [m for m in sys.modules if m.startswith("prefect")], "prefect imported early"
    layout = DemoLayout(Path(sys.argv[1]))
    prepare_root(layout.root)
    with demo_services(layout, n_workers=1):
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

        from flows.events import emit_file_landed

        path = str(layout.data / "landing" / "nobody" / "expression" / "never-swept.tsv")
        emitted = time.monotonic()
        emit_file_landed(path, study="nobody", modality="expression", detected_by="test")
        only_ingest = DeploymentFilter(name=DeploymentFilterName(any_=["on-file-landed"]))
        while time.monotonic() - emitted < 90:
            with get_client(sync_client=True) as client:
                runs = client.read_flow_runs(deployment_filter=only_ingest)
            if runs:
                print("TRIGGERED", runs[0].parameters["path"] == path, flush=True)
                print(f"AFTER {time.monotonic() - emitted:.1f} s", flush=True)
                break
            time.sleep(0.5)
        else:
            print("NOT TRIGGERED", flush=True)
    """
)


@pytest.mark.integration
def test_startup_uses_one_server_and_the_first_event_triggers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RESISTOMICS_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "PREFECT_LOGGING_LEVEL": "INFO",  # "Starting temporary server" is INFO
            "RESISTOMICS_CLUSTER__N_WORKERS": "1",
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", _STARTUP, str(tmp_path / "demo")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Starting temporary server" not in out
    assert "TRIGGERED True" in out, out  # by the trigger, not the 15-minute sweep
    server_log = (tmp_path / "demo" / "prefect" / "server.log").read_text()
    assert "database is locked" not in server_log


@pytest.mark.integration
def test_the_demo_calls_dss_dmrs_on_the_rrbs_cohort(tmp_path: Path) -> None:
    """The whole demo in a fresh process: among its results, the metabolomics study's
    line (limma on Su 2020: kynurenine and quinolinate up, tryptophan and citrulline down)
    and the methylation study's
    line, from what the analyse deployment published after the landed Bismark folder's
    events (markers, the smoothed DML test, callDMR p 0.01): DSS 2.46's 43 DMRs and its
    top DMR (largest |areaStat|, ``dss_callDMR_smoothed_p0.01.tsv.gz``)."""
    import pandas as pd

    from shared_data import SHARED_DATA

    reference = (
        SHARED_DATA / "methylation_rrbs" / "dss_2.46.0" / "dss_callDMR_smoothed_p0.01.tsv.gz"
    )
    if not reference.is_file():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    dss = pd.read_csv(reference, sep="\t")
    best = dss.loc[dss["areaStat"].abs().idxmax()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RESISTOMICS_"))}
    env.update(
        {
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            "COLUMNS": "400",  # one result a line
            # serve's runner looks for scheduled runs every second, not every 10 s (as
            # test_flow_chain's serve): the chain's ~14 runs each wait less for a slot
            "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo", "--root", str(tmp_path / "demo")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    (line,) = [line for line in out.splitlines() if line.startswith("methylation rrbs")]
    assert f"; {len(dss)} DMRs; " in line and len(dss) == 43, line
    assert f"top {best['chr']}:{best['start']}-{best['end']} ({best['nCG']} CpGs" in line, line
    assert "done rrbs/rrbs.dml.smoothed-span500.case_SLE_vs_HC.dmr published" in out, out
    # Su 2020 through the event chain: the tryptophan-kynurenine shift of COVID-19
    (line,) = [line for line in out.splitlines() if line.startswith("metabolomics su2020")]
    shift = dict(re.findall(r"(kynurenine|quinolinate|tryptophan|citrulline) ([+-]\d+\.\d+)", line))
    assert set(shift) == {"kynurenine", "quinolinate", "tryptophan", "citrulline"}, line
    assert float(shift["kynurenine"]) > 0 and float(shift["quinolinate"]) > 0, line
    assert float(shift["tryptophan"]) < 0 and float(shift["citrulline"]) < 0, line
    # ... and the analyse deployment's default enrichment (fry on the built-in metabolic
    # programs) puts tryptophan-kynurenine first
    (line,) = [line for line in out.splitlines() if "metabolic programs (fry):" in line]
    assert line.split("(fry):")[1].strip().startswith("TRYPTOPHAN_KYNURENINE (FDR "), line
