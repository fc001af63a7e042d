"""Dask over TLS as deploy/ starts it, run for real: the scheduler and worker command
lines of compose.yaml (and the dask Helm chart's scheduler, whose certificates come as
PEM contents in the environment) with certificates from deploy/production/tls.py; the
platform's client (``resistomics.cluster`` with the ``RESISTOMICS_CLUSTER__TLS_*``
settings compose gives the flow runner) computes on them, a plain-TCP client is
refused. Only host names and ports change (127.0.0.1, free ports)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from distributed import Client

from resistomics.cluster import dask_client
from resistomics.config import ClusterSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DASK = str(Path(sys.executable).parent / "dask")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("tls", DEPLOY / "production" / "tls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state = tmp_path_factory.mktemp("state")
    module.make_certs(state)
    return state / "tls"


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _local(args: list[Any], service: dict[str, Any], certs: Path, port: int) -> list[str]:
    """A compose command with its secrets' targets as the local files, the compose
    defaults of ``${VAR:-default}`` filled in, and every address on 127.0.0.1."""
    secrets = _compose()["secrets"]
    files = {
        s["target"]: certs / Path(secrets[s["source"]]["file"]).name
        for s in service.get("secrets", [])
    }
    out = []
    for a in map(str, args):
        a = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", a)
        a = str(files.get(a, a))
        a = {"0.0.0.0": "127.0.0.1", ":8787": "127.0.0.1:0", ":8788": "127.0.0.1:0"}.get(a, a)
        a = a.replace("dask-scheduler:8786", f"127.0.0.1:{port}")
        out.append(f"{port}" if a == "8786" else a)
    return out


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _client_settings(certs: Path, port: int) -> ClusterSettings:
    runner = _compose()["services"]["flow-runner"]["environment"]
    # the flow runner's own settings, its secrets' targets as the local files
    names = {"ca.pem", "client.pem", "client-key.pem"}
    tls = {
        k.removeprefix("RESISTOMICS_CLUSTER__").lower(): str(certs / Path(v).name)
        for k, v in runner.items()
        if k.startswith("RESISTOMICS_CLUSTER__TLS_") and Path(v).name in names
    }
    assert len(tls) == 3, runner
    return ClusterSettings(kind="address", address=f"tls://127.0.0.1:{port}", **tls)


def _computes_over_tls_and_refuses_tcp(certs: Path, port: int) -> None:
    deadline = time.monotonic() + 60
    with dask_client(_client_settings(certs, port), reuse=False) as client:
        client.wait_for_workers(1, timeout=max(1.0, deadline - time.monotonic()))
        assert client.submit(sum, [1, 2, 3]).result(timeout=30) == 6
        (worker,) = client.scheduler_info()["workers"]
        assert worker.startswith("tls://127.0.0.1:")
    with pytest.raises((OSError, TimeoutError)):
        Client(f"tcp://127.0.0.1:{port}", timeout=3)


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.3)
    raise AssertionError(f"nothing listens on {port}")


def _worker(certs: Path, port: int, tmp_path: Path) -> list[str]:
    services = _compose()["services"]
    command = _local(services["dask-worker"]["command"], services["dask-worker"], certs, port)
    command[command.index("/scratch")] = str(tmp_path / "scratch")
    return [DASK, *command[1:]]


def test_compose_scheduler_and_worker_talk_tls_only(certs: Path, tmp_path: Path) -> None:
    services = _compose()["services"]
    port = _free_port()
    scheduler = _local(
        services["dask-scheduler"]["command"], services["dask-scheduler"], certs, port
    )
    env = {k: str(v) for k, v in services["dask-scheduler"]["environment"].items()}
    worker_env = {
        k: str(v)
        for k, v in services["dask-worker"]["environment"].items()
        if k.startswith("DASK_")
    }
    with _process([DASK, *scheduler[1:]], env, tmp_path / "scheduler.log"):
        _wait_for_port(port)
        with _process(_worker(certs, port, tmp_path), worker_env, tmp_path / "worker.log"):
            _computes_over_tls_and_refuses_tcp(certs, port)


def test_helm_chart_scheduler_takes_its_certificates_from_the_environment(
    certs: Path, tmp_path: Path
) -> None:
    """The chart gives the scheduler no volumes: CA, certificate and key are Dask config
    in the environment (PEM contents from the Secret's keys), as dask-values.yaml says."""
    values = yaml.safe_load((DEPLOY / "helm" / "dask-values.yaml").read_text())
    env = {}
    for e in values["scheduler"]["env"]:
        if "value" in e:
            env[e["name"]] = e["value"]
        else:
            env[e["name"]] = (certs / e["valueFrom"]["secretKeyRef"]["key"]).read_text()
    port = _free_port()
    # the chart's own arguments, then the values' extraArgs
    args = ["scheduler", "--host", "127.0.0.1", f"--port={port}", "--dashboard-address=127.0.0.1:0"]
    services = _compose()["services"]
    worker_env = {
        k: str(v)
        for k, v in services["dask-worker"]["environment"].items()
        if k.startswith("DASK_")
    }
    with _process([DASK, *args, *values["scheduler"]["extraArgs"]], env, tmp_path / "s.log"):
        _wait_for_port(port)
        with _process(_worker(certs, port, tmp_path), worker_env, tmp_path / "worker.log"):
            _computes_over_tls_and_refuses_tcp(certs, port)
