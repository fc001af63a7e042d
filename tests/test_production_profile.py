"""deploy/production/profile.py without starting anything: the env file it writes is
what a shell that sources it sees, and ``status`` of a profile that is not running says
so (the services themselves are tested in tests/production)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from production.profile_client import SCRIPT, profile_module


def test_profile_env_reads_back_as_a_shell_sources_it(tmp_path: Path) -> None:
    env = {
        "RESISTOMICS_STORAGE_OPTIONS": json.dumps({"endpoint_url": "http://127.0.0.1:9"}),
        "PREFECT_API_AUTH_STRING": "resistomics:a$b'c\"d e",
        "EMPTY": "",
    }
    profile = profile_module.Profile(tmp_path)
    profile.prepare()
    profile_module.write_env(profile, env)
    assert profile.env_file.stat().st_mode & 0o777 == 0o600  # it holds the secrets
    assert profile_module.read_env(profile.env_file) == env
    for key, value in env.items():
        shown = subprocess.run(
            ["bash", "-c", f'source "$1" && printf %s "${key}"', "-", str(profile.env_file)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert shown == value, key


def test_the_work_pool_is_the_one_of_prefect_yaml() -> None:
    doc = yaml.safe_load((SCRIPT.parents[1] / "prefect.yaml").read_text())
    assert {d["work_pool"]["name"] for d in doc["deployments"]} == {profile_module.work_pool_name()}


def test_status_of_a_profile_that_is_not_running(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "status", "--json", "--state", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["env_file"] is None
    assert not any(s["running"] for s in report["services"].values())
