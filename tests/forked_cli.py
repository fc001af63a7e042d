"""Run ``resistomics`` CLI commands in real child processes, cheaply and under control.

One helper process imports the CLI once; each command is then a ``fork()`` of it (a real
process: its own PID, catalog connections and Dask cluster) that runs the command's
real code path, without paying the import on a loaded machine. A child can be

- released together with others (a start file), to race them;
- killed with SIGKILL by itself at its N-th call of a function of the ``resistomics``
  package (``kill_at``; with ``kill_at=0`` it only counts the calls and notes the
  first call of each function), a point in the run's own timeline rather than in wall
  time; the function is written to its log;
- paused at the first call of ``function`` made inside ``inside`` (``pause``), until a
  resume file appears, and it records how often ``inside`` was entered (a retried
  transaction enters it again).

Nothing here changes the code under test: the hooks are ``sys.monitoring`` callbacks
installed in the child (PEP 669), which skip every code object outside the package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Job", "Outcome", "run_jobs"]

HELPER = r"""
import json, os, signal, sys, time
from pathlib import Path
import resistomics
from resistomics.cli import app
import resistomics.pipeline, resistomics.modalities.expression  # imported once, before forks
import threading
# What an ingest imports on first use (the CLI defers it): imported once here too, so a
# child spends its time ingesting. None of these starts a thread at import.
import anndata, dask.array, dask.dataframe, distributed, great_expectations, pyarrow.parquet, zarr
import resistomics.validation, resistomics.storage
for name in ("resistomics.modalities.expression._readers", "resistomics.modalities.expression._source"):
    try:
        __import__(name)
    except ImportError:
        pass
assert threading.active_count() == 1, threading.enumerate()  # fork() is safe

PREFIX = os.path.dirname(resistomics.__file__) + os.sep
MON = sys.monitoring


def hooks(job):
    calls = {"n": 0, "inside": 0, "paused": False, "first": {}}
    kill_at, pause = job.get("kill_at"), job.get("pause")

    def on_start(code, offset):
        if not code.co_filename.startswith(PREFIX):
            return MON.DISABLE
        calls["n"] += 1
        if kill_at == 0:
            calls["first"].setdefault(code.co_qualname, calls["n"])
        if kill_at and calls["n"] >= kill_at:
            os.write(1, f"\nSIGKILL at call {calls['n']}: {code.co_qualname}\n".encode())
            os.kill(os.getpid(), signal.SIGKILL)
        if pause:
            if code.co_name == pause["inside"]:
                calls["inside"] += 1
            elif code.co_name == pause["function"] and calls["inside"] == 1 and not calls["paused"]:
                calls["paused"] = True
                Path(pause["paused"]).touch()
                while not Path(pause["resume"]).exists():
                    time.sleep(0.01)
        return None

    if kill_at is not None or pause:
        MON.use_tool_id(MON.PROFILER_ID, "forked_cli")
        MON.register_callback(MON.PROFILER_ID, MON.events.PY_START, on_start)
        MON.set_events(MON.PROFILER_ID, MON.events.PY_START)
    return calls


def child(job):
    os.environ.update(job["env"])
    fd = os.open(job["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    if job.get("start"):
        Path(job["log"] + ".ready").touch()
        while not Path(job["start"]).exists():
            time.sleep(0.002)
    calls = hooks(job)
    try:
        app(job["args"], prog_name="resistomics")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    Path(job["log"] + ".calls").write_text(json.dumps(calls))
    os._exit(code)


for line in sys.stdin:
    jobs = json.loads(line)
    pids = []
    for job in jobs:
        pid = os.fork()
        if pid == 0:
            child(job)
        pids.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    print(json.dumps(codes), flush=True)
"""


@dataclass
class Job:
    """One CLI command for a child process."""

    args: Sequence[str]
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    start: Path | None = None
    kill_at: int | None = None
    pause: Mapping[str, str] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "args": list(self.args),
            "log": str(self.log),
            "env": dict(self.env),
            "start": str(self.start) if self.start else None,
            "kill_at": self.kill_at,
            "pause": dict(self.pause) if self.pause else None,
        }


@dataclass(frozen=True)
class Outcome:
    code: int  # exit code; -9 for SIGKILL
    output: str
    # {"n": calls of resistomics functions, "first": {qualname: first call}, "inside": ...};
    # {} if killed
    calls: dict[str, Any]


class ForkedCli:
    """The helper process; ``run(jobs)`` forks one child per job and waits for all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HELPER],
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def submit(self, jobs: Sequence[Job]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps([j.as_dict() for j in jobs]) + "\n")
        self.proc.stdin.flush()
        for job in jobs:
            calls = Path(f"{job.log}.calls")
            calls.unlink(missing_ok=True)

    def collect(self, jobs: Sequence[Job]) -> list[Outcome]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"the helper process died (rc={self.proc.poll()})"
        codes = json.loads(line)
        out = []
        for job, code in zip(jobs, codes, strict=True):
            calls = Path(f"{job.log}.calls")
            out.append(
                Outcome(
                    code=code,
                    output=job.log.read_text() if job.log.exists() else "",
                    calls=json.loads(calls.read_text()) if calls.exists() else {},
                )
            )
        return out

    def run(self, jobs: Sequence[Job]) -> list[Outcome]:
        self.submit(jobs)
        if any(j.start for j in jobs):
            deadline = time.monotonic() + 180
            while not all(Path(f"{j.log}.ready").exists() for j in jobs):
                assert time.monotonic() < deadline, "the children did not start"
                time.sleep(0.01)
            for start in {j.start for j in jobs if j.start}:
                start.touch()
        return self.collect(jobs)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def run_jobs(env: Mapping[str, str], jobs: Sequence[Job]) -> list[Outcome]:
    """One batch in a helper process of its own."""
    cli = ForkedCli(env)
    try:
        return cli.run(jobs)
    finally:
        cli.close()
