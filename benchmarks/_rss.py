"""Resident-memory sampling shared by the benchmarks (run as scripts: ``import _rss``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import psutil

__all__ = ["RssSampler"]


class RssSampler:
    """Sample the RSS of a process and (optionally) its descendants every ``interval``.

    ``window()`` collects, for the code inside it, the peak of the summed RSS and the
    peak of every process (by pid).
    """

    def __init__(self, pid: int | None = None, *, interval: float = 0.1, tree: bool = True):
        self.root = psutil.Process(pid)
        self.interval = interval
        self.tree = tree
        self._procs: dict[int, psutil.Process] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._peak_sum = 0
        self._peak_by_pid: dict[int, int] = {}

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _processes(self) -> list[psutil.Process]:
        found = [self.root]
        if self.tree:
            with contextlib.suppress(psutil.Error):
                found += self.root.children(recursive=True)
        procs = []
        for p in found:
            # Keep one Process object per pid: its memory_info() is one /proc read.
            procs.append(self._procs.setdefault(p.pid, p))
        return procs

    def sample(self) -> None:
        total = 0
        seen: dict[int, int] = {}
        for p in self._processes():
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            seen[p.pid] = rss
            total += rss
        with self._lock:
            self._peak_sum = max(self._peak_sum, total)
            for pid, rss in seen.items():
                self._peak_by_pid[pid] = max(self._peak_by_pid.get(pid, 0), rss)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the sampled processes."""
        total = 0.0
        for p in self._processes():
            try:
                t = p.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    @contextlib.contextmanager
    def window(self) -> Iterator[dict[str, Any]]:
        out: dict[str, Any] = {}
        self.sample()
        with self._lock:
            self._peak_sum = 0
            self._peak_by_pid = {}
        self.sample()
        cpu = self.cpu_seconds()
        try:
            yield out
        finally:
            self.sample()
            out["cpu_s"] = self.cpu_seconds() - cpu
            with self._lock:
                out["peak_sum"] = self._peak_sum
                out["peak_by_pid"] = dict(self._peak_by_pid)
