"""Start a local Prefect server (and stop it) for the embedded default.

``prefect server start --background`` returns before the server is healthy, so this
starts it in the foreground as a child process and polls ``/api/health``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PrefectServer", "free_port", "prefect_server", "server_env"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(home: Path) -> dict[str, str]:
    """Environment for a server (and its clients) keeping everything under ``home``."""
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "PREFECT_UI_ENABLED": env.get("PREFECT_UI_ENABLED", "true"),
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        }
    )
    return env


@dataclass
class PrefectServer:
    url: str
    api_url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def ui_url(self) -> str:
        return self.url


def _healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def prefect_server(
    home: Path, *, port: int | None = None, timeout: float = 120.0
) -> Iterator[PrefectServer]:
    """A Prefect server on 127.0.0.1 with its SQLite database under ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://127.0.0.1:{port}"
    log = home / "server.log"
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=server_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = PrefectServer(url=url, api_url=f"{url}/api", process=proc, log=log)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(server.api_url):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"the Prefect server exited with code {proc.returncode}; see {log}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the Prefect server was not healthy after {timeout:.0f} s; see {log}"
                )
            time.sleep(0.5)
        yield server
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL after ``grace`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
