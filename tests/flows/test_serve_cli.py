"""``resistomics serve`` as a user runs it: starts a Prefect server and a Dask cluster,
registers every deployment with its trigger or schedule, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from flows.serve import build_deployments

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(pid: int) -> list[tuple[int, str, str, int]]:
    """(pid, process name, address, port) of every listening socket of ``pid`` and
    its descendants (the Prefect server, the Dask scheduler, nannies and workers)."""
    root = psutil.Process(pid)
    found = []
    for p in [root, *root.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
            name = p.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        found += [(p.pid, name, c.laddr.ip, c.laddr.port) for c in conns if c.status == "LISTEN"]
    return found


def _wait_for_line(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return line.strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"no line starting with {prefix!r} (exit code {proc.poll()})")


def _start_serve(
    tmp_path: Path, port: int, *, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    """``resistomics serve`` in a subprocess with a fresh data root and Prefect home, a
    one-worker Dask cluster, and none of this process's Prefect/platform settings.

    ``sigint_ignored``: start it with SIGINT ignored, as a background job of a
    non-interactive shell (a script's ``cmd &``, a CI runner) is started.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RESISTOMICS_"))}
    env.update(
        {
            "RESISTOMICS_DATA_ROOT": str(tmp_path / "root"),
            "RESISTOMICS_CLUSTER__N_WORKERS": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PYTHONPATH": str(REPO),
        }
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if sigint_ignored else None
    try:
        return _popen_serve(tmp_path, port, env)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _popen_serve(tmp_path: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "serve",
            "--prefect-home",
            str(tmp_path / "prefect"),
            "--port",
            str(port),
        ],
        cwd=str(tmp_path),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.integration
def test_serve_registers_every_deployment_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    # with SIGINT ignored, as a background job gets it: Python then leaves SIGINT ignored
    # (no KeyboardInterrupt) and serve must handle it itself (it did not: 1 in 3 CI runs,
    # every run started with `&` from a script, hung after Ctrl-C)
    proc = _start_serve(tmp_path, port, sigint_ignored=True)
    try:
        _wait_for_line(proc, "Dask scheduler:", 60)
        ui = _wait_for_line(proc, "Prefect UI:", 120)
        assert f":{port}" in ui
        api = f"http://127.0.0.1:{port}/api"
        # the UI is told the API on this port, not the default 4200
        assert httpx.get(f"http://127.0.0.1:{port}/ui-settings").json()["api_url"] == api
        expected = {(d.flow_name, d.name) for d in build_deployments()}
        deadline = time.monotonic() + 120
        served: set[tuple[str, str]] = set()
        while time.monotonic() < deadline and served != expected:
            flows = {f["id"]: f["name"] for f in httpx.post(f"{api}/flows/filter", json={}).json()}
            deployments = httpx.post(f"{api}/deployments/filter", json={}).json()
            served = {(flows.get(d["flow_id"], "?"), d["name"]) for d in deployments}
            time.sleep(1)
        assert served == expected
        scheduled = {
            (flows[d["flow_id"]], d["name"]): [s["schedule"].get("cron") for s in d["schedules"]]
            for d in deployments
            if d["schedules"]
        }
        assert scheduled[("recompute", "nightly")] == ["0 2 * * *"]
        assert scheduled[("landing-sweep", "every-15-minutes")] == ["*/15 * * * *"]

        # every service it started listens on loopback only: Prefect API/UI, Dask
        # scheduler, its HTTP (dashboard) port, nannies, workers
        sockets = listening(proc.pid)
        ports = {port for *_, port in sockets}
        assert port in ports, sockets
        assert len({pid for pid, *_ in sockets}) >= 3, sockets  # server, cluster, worker
        exposed = [s for s in sockets if s[2] not in ("127.0.0.1", "::1")]
        assert exposed == [], exposed

        proc.send_signal(signal.SIGINT)  # Ctrl-C
        code = proc.wait(timeout=90)
        assert code == 0
        rest = proc.stdout.read() if proc.stdout else ""
        assert "Traceback" not in rest, rest
        try:
            httpx.get(f"{api}/health", timeout=2)
            still_up = True
        except httpx.HTTPError:
            still_up = False
        assert not still_up, "the Prefect server outlived `resistomics serve`"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.integration
def test_kill_9_of_serve_takes_its_prefect_server_down(tmp_path: Path) -> None:
    """``kill -9`` runs no cleanup in ``resistomics serve``; its Prefect server (in a
    session of its own, so a terminal's Ctrl-C does not reach it first) must still go."""
    import psutil

    port = _free_port()
    proc = _start_serve(tmp_path, port)
    api = f"http://127.0.0.1:{port}/api"
    descendants: list[psutil.Process] = []
    try:
        _wait_for_line(proc, "Prefect UI:", 180)
        assert httpx.get(f"{api}/health", timeout=5).status_code == 200
        descendants = psutil.Process(proc.pid).children(recursive=True)
        server = [p for p in descendants if "server" in p.cmdline() and "start" in p.cmdline()]
        assert server, [p.cmdline() for p in descendants]

        proc.kill()  # SIGKILL
        proc.wait(10)

        def running(p: psutil.Process) -> bool:
            try:  # a zombie has exited (its reaper is whoever adopted it)
                return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        deadline = time.monotonic() + 30
        while any(running(p) for p in server) and time.monotonic() < deadline:
            time.sleep(0.5)
        alive = [p for p in server if running(p)]
        assert not alive, f"the Prefect server outlived kill -9 of serve: {alive}"
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{api}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in descendants:  # whatever is left of this test's processes
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
