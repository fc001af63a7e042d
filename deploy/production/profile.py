#!/usr/bin/env python3
"""The production profile on this machine, started and stopped by one command.

    python deploy/production/profile.py start  [--state DIR] [--dask local|slurm]
    python deploy/production/profile.py status [--state DIR] [--json]
    python deploy/production/profile.py stop   [--state DIR] [--wipe]
    source DIR/profile.env          # point the CLI, tests or a shell at it

What runs (every service on 127.0.0.1, on a free port chosen at first start):

==================  ===========================================================
PostgreSQL          Debian's server (installed with apt when missing), run as the
                    ``postgres`` user; two databases: ``resistomics`` (the catalog,
                    ``RESISTOMICS_CATALOG_URL``) and ``prefect`` (the Prefect
                    server's, ``PREFECT_API_DATABASE_CONNECTION_URL``), each owned
                    by its own role with a generated password
S3                  moto in server mode: bucket ``resistomics-data`` (the data root)
                    and ``resistomics-landing`` (the landing zone)
Prefect server      on the ``prefect`` database, ``PREFECT_SERVER_API_AUTH_STRING``
                    set (clients send ``PREFECT_API_AUTH_STRING``; a request without
                    it gets 401); the zombie-run automations of ``automations.yaml``
deployments         ``deploy/prefect.yaml`` registered with ``prefect deploy --all``
                    on its process work pool, run from this checkout
Prefect worker      ``prefect worker start --pool <pool>``: every flow run is a
                    subprocess of it, with the environment of ``profile.env``
Dask                ``--dask slurm`` (the default): each flow run's scheduler
                    (TLS) gets its workers as jobs of a one-node SLURM cluster in
                    ``<state>/slurm`` (``slurm.py`` / ``tls.py`` next to this file),
                    adaptively; ``--dask local``: a local cluster in each flow run
==================  ===========================================================

State (default ``<repo>/.resistomics-production``): ``secrets.json`` (passwords, auth
string, S3 keys; 0600), ``profile.env`` (``export KEY=VALUE`` lines for clients; 0600,
it holds the secrets), and one folder per service with its ``pid``, ``port`` and
``log``. ``start`` is idempotent: a service already up is kept, one that died is
started again on its port, so ``start`` on a half-started or partly killed profile
recovers it. ``stop`` stops what ``start`` started, newest first.

moto keeps objects in memory: if the S3 server dies, the objects are gone while the
catalog still lists them. ``start`` then says so; ``stop --wipe`` and a fresh ``start``
give a clean profile.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.util
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_STATE = REPO / ".resistomics-production"
PREFECT_FILE = REPO / "deploy" / "prefect.yaml"
AUTOMATIONS_FILE = HERE / "automations.yaml"

DATA_BUCKET = "resistomics-data"
LANDING_BUCKET = "resistomics-landing"
WORKER_NAME = "resistomics-production"
#: Seconds between flow-run heartbeats (Prefect's minimum); automations.yaml marks a
#: run Crashed after two missed beats.
HEARTBEAT_SECONDS = 30
#: Flow runs the worker runs at once (each may hold a Dask cluster; this is a small
#: machine). Ingest has its own deployment concurrency limit in prefect.yaml.
WORKER_LIMIT = 3

# Inherited settings that would point a service of the profile somewhere else (a test
# session's temporary Prefect home, another data root, real AWS credentials).
_FOREIGN_PREFIXES = ("PREFECT_", "RESISTOMICS_", "AWS_", "DASK_")


class ProfileError(RuntimeError):
    """A service of the profile could not be started; the message says which and why."""


# ----------------------------------------------------------------------------- helpers
def _log(message: str) -> None:
    print(f"profile: {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int, *, wait: float = 15.0) -> bool:
    """Whether a server can listen on ``port`` (waiting for a killed one to let go).

    SO_REUSEADDR as the servers set it: connections of a killed server in TIME_WAIT do
    not hold the port.
    """
    deadline = time.monotonic() + wait
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by the owner only, replacing it atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of this process counts as dead
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _venv_tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise ProfileError(f"{name} not found next to {sys.executable} nor on PATH")
    return found


def _http_status(url: str, *, headers: dict[str, str] | None = None, timeout: float = 3) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


def _wait(what: str, ready: Callable[[], bool], *, timeout: float, proc: Service) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not proc.running():
            raise ProfileError(f"{what} exited during start; see {proc.log}:\n{proc.tail()}")
        if time.monotonic() > deadline:
            raise ProfileError(f"{what} not ready after {timeout:.0f} s; see {proc.log}")
        time.sleep(0.5)


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_PREFIXES)}
    env.update(extra)
    return env


def _run(
    command: list[str], *, env: dict[str, str] | None = None, what: str, cwd: Path | None = None
) -> str:
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise ProfileError(
            f"{what} failed (exit {done.returncode}): {shlex.join(command)}\n"
            f"{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    return done.stdout


@dataclass
class Service:
    """A long-running process of the profile: its folder holds ``pid``, ``port``, ``log``.

    ``marker`` is a string of its command line, so a recycled PID is never mistaken
    for the service.
    """

    folder: Path
    marker: str

    @property
    def log(self) -> Path:
        return self.folder / "log"

    @property
    def pid(self) -> int | None:
        text = _read(self.folder / "pid")
        return int(text) if text else None

    def port(self) -> int:
        """The port of a previous start if it can be used again, else a new free one."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = _read(self.folder / "port")
        if text and (self.running() or _port_free(int(text))):
            return int(text)
        port = free_port()
        (self.folder / "port").write_text(f"{port}\n")
        return port

    def running(self) -> bool:
        pid = self.pid
        return bool(pid) and _alive(pid) and self.marker in _cmdline(pid)  # type: ignore[arg-type]

    def start(self, command: list[str], env: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"\n--- {time.strftime('%F %T')} {shlex.join(command)}\n".encode())
            out.flush()
            proc = subprocess.Popen(
                command,
                env=env,
                cwd=self.folder,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() takes its children
            )
        (self.folder / "pid").write_text(f"{proc.pid}\n")

    def stop(self, grace: float = 20.0) -> bool:
        """SIGTERM the process group, SIGKILL what is left after ``grace`` seconds."""
        pid = self.pid
        if not self.running():
            (self.folder / "pid").unlink(missing_ok=True)
            return False
        assert pid is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        (self.folder / "pid").unlink(missing_ok=True)
        return True

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except FileNotFoundError:
            return ""


# ----------------------------------------------------------------------------- state
class Profile:
    """One profile's state directory and the services it runs."""

    def __init__(self, state: Path) -> None:
        self.state = state.absolute()
        self.pg_dir = self.state / "postgres"
        self.s3 = Service(self.state / "s3", "moto.server")
        self.server = Service(self.state / "prefect-server", "prefect server start")
        self.worker = Service(self.state / "prefect-worker", "prefect worker start")
        self.env_file = self.state / "profile.env"

    # -- secrets: generated at the first start, kept for the life of the state
    def secrets(self) -> dict[str, str]:
        path = self.state / "secrets.json"
        if path.exists():
            stored: dict[str, str] = json.loads(path.read_text())
            return stored
        values = {
            # URL-safe: they go inside SQLAlchemy URLs and HTTP basic auth
            "postgres": secrets.token_urlsafe(24),
            "catalog_db": secrets.token_urlsafe(24),
            "prefect_db": secrets.token_urlsafe(24),
            "prefect_auth_string": f"resistomics:{secrets.token_urlsafe(32)}",
            "s3_access_key": f"AKIA{secrets.token_hex(8).upper()}",
            "s3_secret_key": secrets.token_urlsafe(30),
        }
        _write_private(path, json.dumps(values, indent=2) + "\n")
        return values

    def dask_mode(self, requested: str | None) -> str:
        """The Dask mode of this state: the one it was started with, else the request,
        else ``slurm`` when slurm.py exists."""
        path = self.state / "dask-mode"
        stored = _read(path)
        mode = requested or stored or ("slurm" if (HERE / "slurm.py").exists() else "local")
        if stored and requested and stored != requested:
            raise ProfileError(
                f"this state was started with --dask {stored}; stop it (stop --wipe) to change"
            )
        path.write_text(f"{mode}\n")
        return mode

    def prepare(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        # traversable (not listable) by the postgres user, who owns postgres/
        self.state.chmod(0o711)


# ----------------------------------------------------------------------------- PostgreSQL
def _pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_pg_version)
    if not found:
        if os.geteuid() != 0:
            raise ProfileError("PostgreSQL is not installed: sudo apt-get install postgresql")
        _log("installing PostgreSQL (apt-get install postgresql)")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "update", "-qq"], env=env, what="apt-get update")
        _run(["apt-get", "install", "-y", "-qq", "postgresql"], env=env, what="apt-get install")
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_pg_version)
    return found[-1].parent


def _pg_version(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in path.parts[-3].split(".") if p.isdigit())


def _as_postgres(command: list[str]) -> list[str]:
    """``command`` as the postgres user (initdb and the server refuse to run as root)."""
    if os.geteuid() != 0:
        return command
    return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(command)]


def _pg_running(pg_bin: Path, data: Path) -> bool:
    if not (data / "PG_VERSION").exists():
        return False
    done = subprocess.run(
        _as_postgres([str(pg_bin / "pg_ctl"), "status", "-D", str(data)]), capture_output=True
    )
    return done.returncode == 0


def start_postgres(profile: Profile, keys: dict[str, str]) -> int:
    """Initialise (first start) and start the server; create the roles and databases."""
    pg_bin = _pg_bin()
    folder, data = profile.pg_dir, profile.pg_dir / "data"
    folder.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    folder.chmod(0o700)
    initialised = folder / "initialised"
    if not initialised.exists() and _pg_running(pg_bin, data):
        initialised.write_text("initdb done\n")  # a state of an earlier version of this script
    if data.exists() and not initialised.exists():
        shutil.rmtree(data)  # an initdb killed half-way: nothing in it yet
    if not initialised.exists():
        _log("PostgreSQL: initdb")
        pwfile = folder / "pwfile"
        _write_private(pwfile, keys["postgres"] + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        try:
            _run(
                _as_postgres(
                    [
                        str(pg_bin / "initdb"),
                        "-D",
                        str(data),
                        "-U",
                        "postgres",
                        "-A",
                        "scram-sha-256",
                        f"--pwfile={pwfile}",
                        "-E",
                        "UTF8",
                    ]
                ),
                what="initdb",
            )
        finally:
            pwfile.unlink(missing_ok=True)
        initialised.write_text("initdb done\n")
    port_file = folder / "port"
    running = _pg_running(pg_bin, data)
    port = int(_read(port_file) or 0)
    if not running:
        if not port or not _port_free(port):
            port = free_port()
        port_file.write_text(f"{port}\n")
        _log(f"PostgreSQL: starting on 127.0.0.1:{port}")
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"
        _run(
            _as_postgres(
                [
                    str(pg_bin / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(folder / "log"),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            ),
            what="pg_ctl start",
        )
    _create_databases(port, keys)
    return port


def _create_databases(port: int, keys: dict[str, str]) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        password=keys["postgres"],
        dbname="postgres",
        autocommit=True,
    ) as conn:
        for name, key in (("resistomics", "catalog_db"), ("prefect", "prefect_db")):
            role = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
            statement = (
                "ALTER ROLE {} LOGIN PASSWORD {}" if role else "CREATE ROLE {} LOGIN PASSWORD {}"
            )
            conn.execute(sql.SQL(statement).format(sql.Identifier(name), sql.Literal(keys[key])))
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(name), sql.Identifier(name)
                    )
                )


def stop_postgres(profile: Profile) -> bool:
    data = profile.pg_dir / "data"
    if not (data / "PG_VERSION").exists():
        return False
    pg_bin = _pg_bin()
    if not _pg_running(pg_bin, data):
        return False
    _run(
        _as_postgres([str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
        what="pg_ctl stop",
    )
    return True


def catalog_url(port: int, keys: dict[str, str]) -> str:
    return f"postgresql+psycopg://resistomics:{keys['catalog_db']}@127.0.0.1:{port}/resistomics"


def prefect_db_url(port: int, keys: dict[str, str]) -> str:
    return f"postgresql+asyncpg://prefect:{keys['prefect_db']}@127.0.0.1:{port}/prefect"


# ----------------------------------------------------------------------------- S3 (moto)
def start_s3(profile: Profile, keys: dict[str, str]) -> str:
    """moto in server mode with the data and landing buckets; returns the endpoint URL."""
    service = profile.s3
    port = service.port()
    endpoint = f"http://127.0.0.1:{port}"
    if not service.running():
        if (service.folder / "buckets").exists():
            _log(
                "S3: the moto server was not running, so its objects are gone (moto keeps "
                "them in memory); "
                "the catalog may list versions whose data is gone: `stop --wipe` for a clean profile"
            )
        _log(f"S3 (moto): starting on {endpoint}")
        service.start(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            _clean_env(),
        )
        _wait(
            "the S3 (moto) server",
            lambda: _http_status(f"{endpoint}/moto-api/") == 200,
            timeout=60,
            proc=service,
        )
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=keys["s3_access_key"],
        aws_secret_access_key=keys["s3_secret_key"],
        region_name="us-east-1",
    )
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    for bucket in (DATA_BUCKET, LANDING_BUCKET):
        if bucket not in existing:
            s3.create_bucket(Bucket=bucket)
    (service.folder / "buckets").write_text(f"{DATA_BUCKET}\n{LANDING_BUCKET}\n")
    return endpoint


# ----------------------------------------------------------------------------- Prefect
def _basic_auth(auth_string: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(auth_string.encode()).decode()}


def start_prefect_server(profile: Profile, keys: dict[str, str], pg_port: int) -> str:
    """The Prefect server on its PostgreSQL database, with the API auth string set."""
    service = profile.server
    port = service.port()
    api_url = f"http://127.0.0.1:{port}/api"
    if not service.running():
        home = service.folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = _clean_env(
            PREFECT_HOME=str(home),
            PREFECT_API_DATABASE_CONNECTION_URL=prefect_db_url(pg_port, keys),
            PREFECT_SERVER_API_HOST="127.0.0.1",
            PREFECT_SERVER_API_PORT=str(port),
            PREFECT_SERVER_UI_API_URL=api_url,
            PREFECT_SERVER_API_AUTH_STRING=keys["prefect_auth_string"],
            # the server's own clients (UI settings, services) talk to itself
            PREFECT_API_URL=api_url,
            PREFECT_API_AUTH_STRING=keys["prefect_auth_string"],
            PREFECT_SERVER_ANALYTICS_ENABLED="false",
            DO_NOT_TRACK="1",
            PREFECT_LOGGING_LEVEL="WARNING",
        )
        _log(f"Prefect server: starting on {api_url} (database on PostgreSQL)")
        service.start(
            [_venv_tool("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
        )
        # /api/health answers without the auth string (health probes), nothing else does
        _wait(
            "the Prefect server",
            lambda: _http_status(f"{api_url}/health") == 200,
            timeout=240,
            proc=service,
        )
    # the API itself, with the auth string (a loaded machine: allow it time to answer)
    deadline = time.monotonic() + 60
    while True:
        status = _http_status(
            f"{api_url}/admin/version", headers=_basic_auth(keys["prefect_auth_string"]), timeout=10
        )
        if status == 200:
            return api_url
        if status == 401 or time.monotonic() > deadline:
            raise ProfileError(
                f"the Prefect server at {api_url} answered {status or 'nothing'} with the "
                "profile's auth string"
            )
        time.sleep(1)


def work_pool_name() -> str:
    """The work pool every deployment of ``deploy/prefect.yaml`` names (one pool)."""
    import yaml

    doc = yaml.safe_load(PREFECT_FILE.read_text())
    names = {d["work_pool"]["name"] for d in doc["deployments"]}
    if len(names) != 1:
        raise ProfileError(f"{PREFECT_FILE}: expected one work pool, found {sorted(names)}")
    return names.pop()


def _deployed_digest() -> str:
    """What the registered deployments depend on: the project file, the automations,
    the flows' source (parameters and entrypoints) and this checkout's path."""
    h = hashlib.sha256(str(REPO).encode())
    for path in [PREFECT_FILE, AUTOMATIONS_FILE, *sorted((REPO / "flows").glob("*.py"))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def deploy(profile: Profile, client_env: dict[str, str]) -> None:
    """Work pool, ``prefect deploy --all`` and the automations; skipped when current."""
    marker = profile.server.folder / "deployed"
    digest = _deployed_digest()
    if _read(marker) == digest:
        return
    prefect = _venv_tool("prefect")
    env = _clean_env(**client_env)
    pool = work_pool_name()
    inspect = subprocess.run([prefect, "work-pool", "inspect", pool], env=env, capture_output=True)
    if inspect.returncode != 0:
        _run(
            [prefect, "work-pool", "create", pool, "--type", "process"],
            env=env,
            what="work-pool create",
        )
    _log(f"deployments: prefect deploy --all --prefect-file {PREFECT_FILE.relative_to(REPO)}")
    _run(
        [prefect, "--no-prompt", "deploy", "--all", "--prefect-file", str(PREFECT_FILE)],
        env=env,
        cwd=REPO,
        what="prefect deploy",
    )
    _apply_automations(prefect, env)
    marker.write_text(digest + "\n")


def _apply_automations(prefect: str, env: dict[str, str]) -> None:
    """Create the automations of automations.yaml, replacing ones of the same name."""
    import yaml

    for automation in yaml.safe_load(AUTOMATIONS_FILE.read_text())["automations"]:
        # absent the first time: the exit code is not checked
        subprocess.run(
            [prefect, "automation", "delete", automation["name"]], env=env, capture_output=True
        )
    _run(
        [prefect, "automation", "create", "--from-file", str(AUTOMATIONS_FILE)],
        env=env,
        what="automation create",
    )


def start_worker(profile: Profile, client_env: dict[str, str], worker_env: dict[str, str]) -> None:
    service = profile.worker
    # a worker started against another API address (the server came back on a new
    # port) would poll a dead one: start it again with the current environment
    started_for = service.folder / "api-url"
    if service.running() and _read(started_for) == client_env["PREFECT_API_URL"]:
        return
    service.stop()
    pool = work_pool_name()
    _log(f"Prefect worker: starting on pool {pool}")
    since = time.time()
    service.start(
        [
            _venv_tool("prefect"),
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            "process",
            "--name",
            WORKER_NAME,
            "--limit",
            str(WORKER_LIMIT),
        ],
        _clean_env(**client_env, **worker_env),
    )
    started_for.write_text(client_env["PREFECT_API_URL"] + "\n")
    _wait(
        "the Prefect worker",
        lambda: _worker_online(client_env, pool, since=since),
        timeout=90,
        proc=service,
    )


def _worker_online(client_env: dict[str, str], pool: str, *, since: float) -> bool:
    request = urllib.request.Request(
        f"{client_env['PREFECT_API_URL']}/work_pools/{pool}/workers/filter",
        data=b"{}",
        method="POST",
        headers={
            "Content-Type": "application/json",
            **_basic_auth(client_env["PREFECT_API_AUTH_STRING"]),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            workers = json.load(r)
    except OSError:
        return False
    for w in workers:
        if w["name"] != WORKER_NAME or w.get("status") != "ONLINE":
            continue
        beat = datetime.fromisoformat(w["last_heartbeat_time"].replace("Z", "+00:00"))
        if beat.timestamp() >= since - 5:
            return True
    return False


# ----------------------------------------------------------------------------- Dask
def _load_sibling(name: str) -> ModuleType | None:
    """``slurm.py`` / ``tls.py`` next to this file, if present."""
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    spec = importlib.util.spec_from_file_location(f"resistomics_production_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _slurm_state(profile: Profile) -> Path:
    """The SLURM cluster's folder: ``<state>/slurm``, or a short one under /tmp when that
    path is too long for the unix sockets munge and slurmstepd put in it."""
    folder = profile.state / "slurm"
    slurm = _load_sibling("slurm")
    limit = getattr(slurm, "MAX_STATE_PATH", 64)
    if len(str(folder)) <= limit:
        return folder
    digest = hashlib.sha256(str(profile.state).encode()).hexdigest()[:12]
    return Path("/tmp") / f"resistomics-slurm-{digest}"


def start_dask(profile: Profile, mode: str) -> dict[str, str]:
    """Settings of the Dask cluster every flow run builds (``resistomics.cluster``)."""
    if mode == "local":
        return {
            "RESISTOMICS_CLUSTER__KIND": "local",
            "RESISTOMICS_CLUSTER__N_WORKERS": "2",
            "RESISTOMICS_CLUSTER__THREADS_PER_WORKER": "1",
            "RESISTOMICS_CLUSTER__MEMORY_LIMIT": "2GiB",
        }
    slurm = _load_sibling("slurm")
    if slurm is None:
        raise ProfileError(f"--dask slurm needs {HERE / 'slurm.py'}")
    folder = _slurm_state(profile)
    _log(f"SLURM: the one-node cluster in {folder} (Dask workers as jobs, TLS)")
    try:
        # munged, slurmctld, slurmd (installed with apt when missing); the TLS
        # certificates of scheduler, workers and clients (tls.py) in the same folder
        env: dict[str, str] = slurm.start(folder)
    except slurm.SlurmUnavailable as exc:
        raise ProfileError(f"SLURM cannot run here ({exc}); start with --dask local") from exc
    except RuntimeError as exc:
        raise ProfileError(f"SLURM did not start: {exc}") from exc
    return env


def stop_dask(profile: Profile) -> None:
    if _read(profile.state / "dask-mode") != "slurm":
        return
    slurm = _load_sibling("slurm")
    if slurm is not None:
        slurm.stop(_slurm_state(profile))
        _log("SLURM stopped")


# ----------------------------------------------------------------------------- env
def client_env(profile: Profile, keys: dict[str, str], api_url: str) -> dict[str, str]:
    home = profile.state / "prefect-client"
    home.mkdir(exist_ok=True)
    return {
        "PREFECT_API_URL": api_url,
        "PREFECT_API_AUTH_STRING": keys["prefect_auth_string"],
        # a client's own Prefect home: never ~/.prefect's profiles, never a temporary
        # server of its own when the API is unreachable
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
    }


def resistomics_env(pg_port: int, endpoint: str, keys: dict[str, str]) -> dict[str, str]:
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    return {
        "RESISTOMICS_DATA_ROOT": f"s3://{DATA_BUCKET}/root",
        "RESISTOMICS_LANDING_ZONE": f"s3://{LANDING_BUCKET}",
        "RESISTOMICS_CATALOG_URL": catalog_url(pg_port, keys),
        "RESISTOMICS_STORAGE_OPTIONS": json.dumps({"endpoint_url": endpoint}),
        # credentials from the environment, not in the storage options (deploy/README)
        "AWS_ACCESS_KEY_ID": keys["s3_access_key"],
        "AWS_SECRET_ACCESS_KEY": keys["s3_secret_key"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": endpoint,
        # never a real AWS profile of the machine
        "AWS_CONFIG_FILE": str(tmp / "resistomics-production-no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "resistomics-production-no-aws-credentials"),
    }


def code_env() -> dict[str, str]:
    """Run this checkout: the pull step's directory, ``flows`` and ``resistomics`` importable."""
    paths = [str(REPO), str(REPO / "platform")]
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in paths]
    return {"RESISTOMICS_CODE_DIR": str(REPO), "PYTHONPATH": os.pathsep.join(paths)}


def write_env(profile: Profile, env: dict[str, str]) -> None:
    lines = [
        "# Written by deploy/production/profile.py start; `source` it to use the profile.",
        "# Holds the profile's secrets: keep it private (0600).",
        *(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
    ]
    _write_private(profile.env_file, "\n".join(lines) + "\n")


def read_env(path: Path) -> dict[str, str]:
    """The variables of a ``profile.env`` (``export KEY=VALUE`` lines)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            (env[key],) = shlex.split(value) or [""]
    return env


# ----------------------------------------------------------------------------- commands
def start(state: Path, *, dask: str | None = None) -> dict[str, str]:
    """Start (or recover) every service; write and return the client environment."""
    started = time.monotonic()
    profile = Profile(state)
    profile.prepare()
    keys = profile.secrets()
    mode = profile.dask_mode(dask)
    pg_port = start_postgres(profile, keys)
    endpoint = start_s3(profile, keys)
    api_url = start_prefect_server(profile, keys, pg_port)
    prefect = client_env(profile, keys, api_url)
    env = {
        **prefect,
        **resistomics_env(pg_port, endpoint, keys),
        **code_env(),
        **start_dask(profile, mode),
        "RESISTOMICS_PRODUCTION_STATE": str(profile.state),
    }
    deploy(profile, env)
    start_worker(
        profile,
        env,
        {
            "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(HEARTBEAT_SECONDS),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "PREFECT_LOGGING_LEVEL": "INFO",
        },
    )
    write_env(profile, env)
    _log(f"up in {time.monotonic() - started:.0f} s (dask: {mode}); source {profile.env_file}")
    return env


def stop(state: Path, *, wipe: bool = False) -> None:
    profile = Profile(state)
    if not profile.state.exists():
        return
    for name, service in (("Prefect worker", profile.worker),):
        if service.stop():
            _log(f"{name} stopped")
    with contextlib.suppress(ProfileError):
        stop_dask(profile)
    for name, service in (("Prefect server", profile.server), ("S3 (moto)", profile.s3)):
        if service.stop():
            _log(f"{name} stopped")
    if stop_postgres(profile):
        _log("PostgreSQL stopped")
    if wipe:
        if _read(profile.state / "dask-mode") == "slurm":
            shutil.rmtree(_slurm_state(profile), ignore_errors=True)  # may be under /tmp
        shutil.rmtree(profile.state)
        _log(f"removed {profile.state}")


def status(state: Path) -> dict[str, Any]:
    profile = Profile(state)
    services: dict[str, Any] = {}
    for name, service in (
        ("s3", profile.s3),
        ("prefect-server", profile.server),
        ("prefect-worker", profile.worker),
    ):
        services[name] = {
            "running": service.running(),
            "pid": service.pid,
            "port": int(_read(service.folder / "port") or 0) or None,
            "log": str(service.log),
        }
    data = profile.pg_dir / "data"
    pg_up = (data / "PG_VERSION").exists() and _pg_running(_pg_bin(), data)
    services["postgres"] = {
        "running": pg_up,
        "port": int(_read(profile.pg_dir / "port") or 0) or None,
        "log": str(profile.pg_dir / "log"),
    }
    if _read(profile.state / "dask-mode") == "slurm":
        conf = _slurm_state(profile) / "slurm.conf"
        try:
            done = subprocess.run(
                ["sinfo", "--noheader", "--format=%T"],
                env={**os.environ, "SLURM_CONF": str(conf)},
                capture_output=True,
                text=True,
                timeout=15,
            )
            up = done.returncode == 0 and conf.exists()
        except (OSError, subprocess.TimeoutExpired):
            up = False
        services["slurm"] = {"running": up, "port": None, "log": str(conf.parent / "log")}
    return {
        "state": str(profile.state),
        "dask": _read(profile.state / "dask-mode"),
        "env_file": str(profile.env_file) if profile.env_file.exists() else None,
        "services": services,
    }


@contextlib.contextmanager
def _friendly_errors() -> Iterator[None]:
    try:
        yield
    except ProfileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="deploy/production/profile.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state directory")
    parser.add_argument(
        "--dask",
        choices=["local", "slurm"],
        default=None,
        help="start: Dask workers as SLURM jobs (default when slurm.py exists) or local",
    )
    parser.add_argument("--wipe", action="store_true", help="stop: also remove the state")
    parser.add_argument("--json", action="store_true", help="status: as JSON")
    args = parser.parse_args(argv)
    with _friendly_errors():
        if args.command == "start":
            start(args.state, dask=args.dask)
        elif args.command == "stop":
            stop(args.state, wipe=args.wipe)
        else:
            report = status(args.state)
            if args.json:
                print(json.dumps(report, indent=2))
            else:
                for name, s in report["services"].items():
                    state = "running" if s["running"] else "stopped"
                    print(f"{name:15} {state:8} port {s['port'] or '-'}  log {s['log']}")
                print(f"dask: {report['dask'] or '-'}; env: {report['env_file'] or '-'}")
            all_up = all(s["running"] for s in report["services"].values())
            sys.exit(0 if all_up else 3)


if __name__ == "__main__":
    main()
