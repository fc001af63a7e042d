"""Start a local Prefect server (and stop it) for the embedded default.

``prefect server start --background`` returns before the server is healthy, so this
starts it in the foreground as a child process and polls ``/api/health``. The server
goes down with the process that started it, even one killed with ``kill -9`` (which
runs no cleanup): a guard process between them stops it when its parent's pipe closes.

Settings (:func:`server_env` for the server, :func:`client_env` for every process that
talks to it) are environment variables, set before Prefect is imported: Prefect reads
its settings once, at import.

- ``PREFECT_SERVER_ALLOW_EPHEMERAL_MODE=false`` everywhere. Prefect's default profile
  allows a client without ``PREFECT_API_URL`` to start a temporary server of its own
  ("Starting temporary server on http://127.0.0.1:8065") on the *same* SQLite file,
  ``$PREFECT_HOME/prefect.db``: the demo's events went there, never reaching the real
  server's triggers, and two servers (each with its services: event persister, triggers,
  scheduler) wrote one SQLite database, the likely source of the demo's
  ``sqlite3.OperationalError: database is locked``. Prefect already opens SQLite in WAL
  mode with a 60 s ``busy_timeout`` (``PREFECT_SERVER_DATABASE_TIMEOUT`` only sets the
  connect timeout, which that PRAGMA overrides), so a longer timeout would not help; one
  server per database file does. With ephemeral mode off, a client missing
  ``PREFECT_API_URL`` fails at once ("No Prefect API URL provided"). Checked here: a
  client with ephemeral mode on and the server's ``PREFECT_HOME`` started the temporary
  server on that file; 15 flow runs through it did not reproduce the lock itself, so
  under heavier load SQLite may still report it (a read transaction upgraded to a write
  gets no busy wait); the served deployments (compose, Helm) use PostgreSQL.
- ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` names the SQLite file under ``home``
  explicitly, so the database never depends on which profile a process loaded.
- ``PREFECT_SERVER_UI_API_URL``: the UI asks ``/ui-settings`` where the API is; without
  it the server answers ``http://127.0.0.1:4200/api`` whatever ``--port`` it runs on, and
  the UI on any other port says "Can't connect to Server API".
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

__all__ = ["PrefectServer", "client_env", "free_port", "prefect_server", "server_env"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def client_env(home: Path, api_url: str) -> dict[str, str]:
    """Prefect settings of a process that talks to the server at ``api_url``.

    Set them in ``os.environ`` before the process imports Prefect.
    """
    return {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server listening on ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def server_env(home: Path, *, port: int, host: str = "127.0.0.1") -> dict[str, str]:
    """Environment for a server on ``host``:``port`` keeping everything under ``home``."""
    api_url = f"http://{_client_host(host)}:{port}/api"
    env = dict(os.environ)
    env.update(client_env(home, api_url))
    env.update(
        {
            "PREFECT_SERVER_API_HOST": host,
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_UI_API_URL": api_url,
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            "PREFECT_UI_ENABLED": env.get("PREFECT_UI_ENABLED", "true"),
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        }
    )
    return env


# The guard: ``python -c _GUARD FD CMD...`` runs CMD (the server) as its child in its own
# process group and waits on FD, the read end of a pipe held open by the process that
# started it. EOF on FD means that process is gone (also after kill -9, which no
# signal handler sees): the guard then stops the whole group, SIGTERM and after 15 s
# SIGKILL. A SIGTERM to the group (stop_process) stops the server; the guard waits for
# it and exits with its code. Standard library only: it must start whatever the path.
_GUARD = """
import os, select, signal, subprocess, sys, time
fd, cmd = int(sys.argv[1]), sys.argv[2:]
signal.signal(signal.SIGTERM, lambda *_: None)  # the group's SIGTERM is for the server
signal.signal(signal.SIGINT, signal.SIG_IGN)
server = subprocess.Popen(cmd)
while server.poll() is None:
    ready, _, _ = select.select([fd], [], [], 1.0)
    if ready and not os.read(fd, 1):  # EOF: the parent is gone
        os.killpg(0, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if server.poll() is None:
            os.killpg(0, signal.SIGKILL)
        break
sys.exit(server.wait())
"""


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
    home: Path, *, port: int | None = None, host: str = "127.0.0.1", timeout: float = 120.0
) -> Iterator[PrefectServer]:
    """A Prefect server on ``host`` (loopback unless told) with its SQLite database
    under ``home``."""
    home = home.absolute()
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    url = f"http://{_client_host(host)}:{port}"
    log = home / "server.log"
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    # The server runs under a guard that holds the read end of a pipe whose write end
    # only this process has: when this process ends in any way (kill -9 included), the
    # pipe closes and the guard stops the server (see _GUARD).
    parent_alive, keep = os.pipe()
    try:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    _GUARD,
                    str(parent_alive),
                    prefect,
                    "server",
                    "start",
                    "--host",
                    host,
                    "--port",
                    str(port),
                ],
                env=server_env(home, port=port, host=host),
                stdout=out,
                stderr=subprocess.STDOUT,
                # its own session, so a Ctrl-C at the terminal reaches only the serving
                # process, which then stops the server in order (stop_process)
                start_new_session=True,
                pass_fds=(parent_alive,),
            )
    finally:
        os.close(parent_alive)
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
        os.close(keep)


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
