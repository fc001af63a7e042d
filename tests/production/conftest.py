"""The production profile (deploy/production/profile.py) for the ``production`` tests.

The tests run when ``RESISTOMICS_PRODUCTION_STATE`` names a state directory
(``.ci/run`` sets it): the session fixture calls ``profile.py start`` there (which
starts the profile, or recovers the one already up) and ``profile.py stop`` at the end
if it was not up before. Without the variable every test here is skipped with the
command that enables it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from production.profile_client import SCRIPT, STATE_VARIABLE, ProductionProfile, profile_module


@pytest.fixture(scope="session")
def production() -> Iterator[ProductionProfile]:
    """The production profile, started (or recovered) for the session."""
    state = os.environ.get(STATE_VARIABLE)
    if not state:
        pytest.skip(
            f"no production profile: set {STATE_VARIABLE} to a state directory (the tests "
            f"start the profile there), e.g. {STATE_VARIABLE}=$PWD/.resistomics-production; "
            ".ci/run does"
        )
    path = Path(state).absolute()
    was_up = (
        subprocess.run(
            [sys.executable, str(SCRIPT), "status", "--state", str(path)], capture_output=True
        ).returncode
        == 0
    )
    started = subprocess.run(
        [sys.executable, str(SCRIPT), "start", "--state", str(path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if started.returncode != 0:
        pytest.fail(f"profile.py start failed:\n{started.stdout}{started.stderr}")
    profile = ProductionProfile(path, profile_module.read_env(path / "profile.env"))
    try:
        yield profile
    finally:
        if not was_up:
            subprocess.run([sys.executable, str(SCRIPT), "stop", "--state", str(path)])
