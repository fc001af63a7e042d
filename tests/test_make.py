"""The Makefile's test targets select what they say they select."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _recipe(target: str, *args: str) -> list[str]:
    """The pytest command line ``make TARGET`` runs (dry run, this interpreter)."""
    out = subprocess.run(
        ["make", "-n", "-C", str(REPO), target, f"PY={sys.executable}", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [x for x in out.splitlines() if " -m pytest" in x]
    return shlex.split(line)


def test_test_fast_collects_the_unit_tests_only() -> None:
    command = _recipe("test-fast")
    assert command[command.index("-m", 2) + 1] == "not integration"
    listed = subprocess.run(
        [*command, "--collect-only", "-p", "no:cacheprovider"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    tests = [x for x in listed if "::" in x]
    assert len(tests) > 100
    # the tests on the Prefect server and the integration-marked ones are left out
    for module in ("flows/test_flow_runs.py", "flows/test_flow_chain.py", "pipeline/test_crash.py"):
        assert not [t for t in tests if t.startswith(f"tests/{module}")], module
    assert "tests/flows/test_demo.py::test_the_cli_refuses_with_one_line" in tests
    assert not [t for t in tests if "test_startup_uses_one_server" in t]
    assert "tests/test_make.py::test_test_fast_collects_the_unit_tests_only" in tests


def test_ci_asks_pytest_for_the_slowest_tests() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "make test PYTEST_ARGS=--durations=25" in ci
    assert "--durations=25" in _recipe("test", "PYTEST_ARGS=--durations=25")
