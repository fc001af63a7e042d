#!/usr/bin/env python3
"""A one-node SLURM cluster on this machine, for the production profile and its tests.

``start(state)`` makes everything live in the folder ``state``: a munge key and socket,
``slurm.conf`` with free ports, the controller's state, slurmd's spool, pid and log
files, the Dask workers' job logs and (through ``tls.py``) the Dask TLS certificates.
It starts ``munged``, ``slurmctld`` and ``slurmd``, waits until ``sinfo`` shows the
node idle, and returns the environment a client needs: ``SLURM_CONF`` plus the
``RESISTOMICS_CLUSTER__*`` settings of ``kind=slurm`` with TLS. Calling it again while
the daemons run returns the same environment without touching them. ``stop(state)``
cancels the cluster's jobs and stops the daemons by their pid files (only processes
whose command line is the expected daemon).

Debian's ``slurmctld slurmd slurm-client munge`` are installed with apt-get when
missing (a fresh CI machine). Runs as root: ``SlurmUser=root``, no cgroups
(``proctrack/linuxproc``, ``task/none``); munged runs as root too (``--force``) so that
nothing outside ``state`` is needed. The daemons listen on free ports (SLURM has no
bind-address setting: the ports are open on every interface; everything talks to
127.0.0.1).

    python deploy/production/slurm.py start STATE_DIR   # prints KEY=VALUE lines
    python deploy/production/slurm.py stop STATE_DIR

Standard library only; importing it has no side effects.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

__all__ = ["PACKAGES", "SlurmUnavailable", "start", "stop"]

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PARTITION = "resistomics"
PROGRAMS = ("munged", "munge", "slurmctld", "slurmd", "sinfo", "sbatch", "squeue", "scancel")
# unix sockets (munge's, slurmstepd's in the spool) are limited to 107 bytes
MAX_STATE_PATH = 64
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


class SlurmUnavailable(RuntimeError):
    """SLURM cannot run on this machine at all (not root, no apt-get): a reason to skip."""


# ----------------------------------------------------------------------------- paths
class _Layout:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.conf = state / "slurm.conf"
        self.env = state / "env.json"
        self.munge = state / "munge"
        self.munge_key = self.munge / "munge.key"
        self.munge_socket = self.munge / "munge.socket"
        self.munge_pid = self.munge / "munged.pid"
        self.ctld_state = state / "slurmctld"
        self.spool = state / "slurmd"
        self.log = state / "log"
        self.ctld_pid = state / "slurmctld.pid"
        self.slurmd_pid = state / "slurmd.pid"
        self.dask_logs = state / "dask-logs"

    def pid_files(self) -> dict[str, Path]:
        # stop order: the node daemon, the controller, then the authentication they use
        return {"slurmd": self.slurmd_pid, "slurmctld": self.ctld_pid, "munged": self.munge_pid}


# ----------------------------------------------------------------------------- processes
def _read_pid(path: Path, program: str) -> int | None:
    """The pid in ``path`` if that process is alive and is ``program``, else None."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if not cmdline or Path(cmdline[0].decode(errors="replace")).name != program:
        return None
    return pid


def _running(lay: _Layout) -> dict[str, int]:
    out = {}
    for program, path in lay.pid_files().items():
        pid = _read_pid(path, program)
        if pid is not None:
            out[program] = pid
    return out


def _terminate(pid: int, program: str, path: Path) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        if _read_pid(path, program) != pid:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def _run(cmd: list[str], env: dict[str, str], what: str) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{proc.stderr.strip()}"
        )
    return proc.stdout


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# ----------------------------------------------------------------------------- install
def _ensure_installed() -> None:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SlurmUnavailable(
            f"SLURM programs {missing} are missing and there is no apt-get to install "
            f"{' '.join(PACKAGES)}"
        )
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", *PACKAGES]
    proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        proc = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(install)} failed:\n{proc.stderr.strip()[-2000:]}")
    still = [p for p in PROGRAMS if shutil.which(p) is None]
    if still:
        raise RuntimeError(f"installed {' '.join(PACKAGES)} but {still} are still missing")


# ----------------------------------------------------------------------------- config
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _node_resources() -> tuple[int, int]:
    """CPUs and memory (MB) to declare: what the machine has, memory with 10% headroom."""
    cpus = len(os.sched_getaffinity(0))
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    return cpus, max(1024, int(mem_kb / 1024 * 0.9))


def _slurm_conf(lay: _Layout, host: str, cpus: int, memory_mb: int) -> str:
    ctld_port, slurmd_port = _free_port(), _free_port()
    while slurmd_port == ctld_port:
        slurmd_port = _free_port()
    return f"""\
# Written by deploy/production/slurm.py: a one-node cluster, everything in {lay.state}
ClusterName=resistomics
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
# bind to the configured addresses (127.0.0.1 above and in NodeAddr), not to INADDR_ANY
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={lay.munge_socket}
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=10
KillWait=5
StateSaveLocation={lay.ctld_state}
SlurmdSpoolDir={lay.spool}
SlurmctldPidFile={lay.ctld_pid}
SlurmdPidFile={lay.slurmd_pid}
SlurmctldLogFile={lay.log / "slurmctld.log"}
SlurmdLogFile={lay.log / "slurmd.log"}
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName={PARTITION} Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def _client_env(lay: _Layout, cpus: int, memory_mb: int) -> dict[str, str]:
    per_worker = min(4096, memory_mb * 3 // (4 * cpus))
    env = {
        "SLURM_CONF": str(lay.conf),
        "RESISTOMICS_CLUSTER__KIND": "slurm",
        "RESISTOMICS_CLUSTER__SLURM_QUEUE": PARTITION,
        "RESISTOMICS_CLUSTER__SLURM_WALLTIME": "01:00:00",
        "RESISTOMICS_CLUSTER__SLURM_LOG_DIRECTORY": str(lay.dask_logs),
        "RESISTOMICS_CLUSTER__N_WORKERS": str(cpus),
        "RESISTOMICS_CLUSTER__THREADS_PER_WORKER": "1",
        "RESISTOMICS_CLUSTER__MEMORY_LIMIT": f"{per_worker}MiB",
        "RESISTOMICS_CLUSTER__ADAPTIVE": "true",
        "RESISTOMICS_CLUSTER__MINIMUM_JOBS": "0",
    }
    certs: dict[str, str] = _tls_module().make_certs(lay.state)
    env.update(certs)
    return env


def _tls_module() -> ModuleType:
    """``tls.py`` next to this file, loaded by path (whatever sys.path holds)."""
    here = Path(__file__).resolve().with_name("tls.py")
    spec = importlib.util.spec_from_file_location("resistomics_production_tls", here)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- start / stop
def _node_state(env: dict[str, str]) -> tuple[str, str]:
    out = _run(["sinfo", "-h", "-N", "-o", "%T|%E"], env, "sinfo").strip()
    state, _, reason = out.partition("|")
    return state.lower(), reason


def _healthy(lay: _Layout, env: dict[str, str]) -> bool:
    if set(_running(lay)) != set(lay.pid_files()):
        return False
    try:
        state, _ = _node_state(env)
    except (RuntimeError, subprocess.TimeoutExpired):
        return False
    return state.rstrip("*") in {"idle", "mixed", "allocated"}


def _start_munged(lay: _Layout) -> None:
    lay.munge.mkdir(mode=0o700, exist_ok=True)
    if not lay.munge_key.exists():
        fd = os.open(lay.munge_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(1024))
    lay.munge_socket.unlink(missing_ok=True)
    # --force: munged wants its socket folder executable by everyone and a munge user;
    # here everything runs as root inside a private folder.
    subprocess.run(
        [
            "munged",
            "--force",
            f"--socket={lay.munge_socket}",
            f"--key-file={lay.munge_key}",
            f"--pid-file={lay.munge_pid}",
            f"--log-file={lay.munge / 'munged.log'}",
            f"--seed-file={lay.munge / 'munged.seed'}",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    deadline = time.monotonic() + 10
    while not lay.munge_socket.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"munged did not create {lay.munge_socket}:\n" + _log_tail(lay.munge / "munged.log")
            )
        time.sleep(0.05)


def start(state: Path) -> dict[str, str]:
    """Start (or find running) the one-node cluster in ``state``; the client environment.

    Raises
    ------
    SlurmUnavailable
        Not root, or the SLURM programs are missing and cannot be installed.
    RuntimeError
        A daemon did not start or the node did not become idle (with the log's tail).
    """
    if os.geteuid() != 0:
        raise SlurmUnavailable("the one-node SLURM cluster runs its daemons as root")
    state = Path(state).absolute()
    if len(str(state)) > MAX_STATE_PATH:
        raise ValueError(
            f"state folder path {state} is longer than {MAX_STATE_PATH} characters "
            "(munge and slurmstepd put unix sockets there)"
        )
    _ensure_installed()
    lay = _Layout(state)
    state.mkdir(parents=True, exist_ok=True)
    if lay.env.exists():
        env = json.loads(lay.env.read_text())
        if _healthy(lay, dict(os.environ, **env)):
            return dict(env)
    stop(state)  # whatever is left of an earlier start
    for folder in (lay.ctld_state, lay.spool):
        shutil.rmtree(folder, ignore_errors=True)
    for folder in (lay.ctld_state, lay.spool, lay.log, lay.dask_logs):
        folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cpus, memory_mb = _node_resources()
    lay.conf.write_text(_slurm_conf(lay, host, cpus, memory_mb))
    env = _client_env(lay, cpus, memory_mb)
    run_env = dict(os.environ, **env)

    _start_munged(lay)
    _run(["slurmctld", "-f", str(lay.conf), "-c", "-i"], run_env, "slurmctld")
    _run(["slurmd", "-f", str(lay.conf), "-c"], run_env, "slurmd")
    deadline = time.monotonic() + START_TIMEOUT
    state_now, reason = "", ""
    while time.monotonic() < deadline:
        try:
            state_now, reason = _node_state(run_env)
        except RuntimeError:
            state_now = "no answer from slurmctld"
        if state_now.rstrip("*") == "idle":
            lay.env.write_text(json.dumps(env, indent=1, sort_keys=True))
            return env
        time.sleep(0.3)
    logs = "\n".join(
        f"--- {name}\n{_log_tail(lay.log / name)}" for name in ("slurmctld.log", "slurmd.log")
    )
    stop(state)
    raise RuntimeError(
        f"the SLURM node did not become idle within {START_TIMEOUT:.0f} s "
        f"(state {state_now!r} {reason})\n{logs}"
    )


def _cancel_jobs(lay: _Layout) -> None:
    """Cancel every job of this cluster and wait (bounded) until squeue lists none."""
    running = _running(lay)
    if "slurmctld" not in running or "munged" not in running or not lay.conf.exists():
        return
    env = dict(os.environ, SLURM_CONF=str(lay.conf))
    try:
        jobs = _run(["squeue", "-h", "-o", "%i"], env, "squeue").split()
        if jobs:
            subprocess.run(["scancel", *jobs], env=env, capture_output=True, timeout=30)
        deadline = time.monotonic() + STOP_TIMEOUT
        while jobs and time.monotonic() < deadline:
            time.sleep(0.3)
            jobs = _run(["squeue", "-h", "-o", "%i"], env, "squeue").split()
    except (RuntimeError, subprocess.TimeoutExpired):
        return


def stop(state: Path) -> None:
    """Cancel the cluster's jobs, then stop slurmd, slurmctld and munged in ``state``.

    Only processes named in the state's pid files and still running that program are
    signalled (SIGTERM, SIGKILL after a grace period). Nothing running: nothing done.
    """
    lay = _Layout(Path(state).absolute())
    _cancel_jobs(lay)
    for program, path in lay.pid_files().items():
        pid = _read_pid(path, program)
        if pid is not None:
            _terminate(pid, program, path)
    lay.env.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"start", "stop"}:
        print("usage: slurm.py start|stop STATE_DIR", file=sys.stderr)
        return 2
    command, state = argv[0], Path(argv[1])
    if command == "stop":
        stop(state)
        return 0
    try:
        env = start(state)
    except SlurmUnavailable as exc:
        print(f"slurm.py: {exc}", file=sys.stderr)
        return 3
    for key, value in env.items():
        print(f"{key}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
