"""deploy/production/slurm.py without starting SLURM: what it writes and what it stops."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "production" / "slurm.py"


@pytest.fixture(scope="module")
def slurm() -> ModuleType:
    spec = importlib.util.spec_from_file_location("production_slurm_state", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_importing_it_runs_nothing() -> None:
    """profile.py imports it by path: no SLURM, no third-party module at import."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import slurm, tls; "
        "mods = set(sys.modules); "
        "print(sorted(m for m in ('cryptography', 'distributed', 'dask', 'resistomics') if m in mods))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(SCRIPT.parent)],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert out.stdout.strip() == "[]"


def test_stop_signals_only_the_daemon_named_in_a_pid_file(slurm, tmp_path: Path) -> None:
    # a pid file that names some other live process (a recycled pid): left alone
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for name in ("slurmd.pid", "slurmctld.pid"):
            (tmp_path / name).write_text(f"{bystander.pid}\n")
        (tmp_path / "munge").mkdir()
        (tmp_path / "munge" / "munged.pid").write_text(f"{os.getpid()}\n")
        slurm.stop(tmp_path)
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    slurm.stop(tmp_path / "never-started")  # nothing there: nothing to do


def test_slurm_conf_keeps_everything_in_the_state_folder(slurm, tmp_path: Path) -> None:
    lay = slurm._Layout(tmp_path)
    conf = slurm._slurm_conf(lay, "node1", 2, 4000)
    settings = dict(
        line.split("=", 1) for line in conf.splitlines() if "=" in line and line[0] != "#"
    )
    for key in (
        "StateSaveLocation",
        "SlurmdSpoolDir",
        "SlurmctldPidFile",
        "SlurmdPidFile",
        "SlurmctldLogFile",
        "SlurmdLogFile",
    ):
        assert settings[key].startswith(f"{tmp_path}/"), key
    assert settings["AuthInfo"] == f"socket={tmp_path}/munge/munge.socket"
    assert settings["SlurmctldHost"] == "node1(127.0.0.1)"
    ports = {int(settings["SlurmctldPort"]), int(settings["SlurmdPort"])}
    assert len(ports) == 2 and not ports & {6817, 6818}
    assert "NodeName=node1 NodeAddr=127.0.0.1 CPUs=2 RealMemory=4000" in conf


def test_a_state_path_too_long_for_unix_sockets_is_refused(slurm, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("start() refuses non-root first")
    long = tmp_path / ("x" * 80)
    with pytest.raises(ValueError, match="unix sockets"):
        slurm.start(long)
    assert not long.exists()
