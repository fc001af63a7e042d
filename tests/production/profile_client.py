"""Talking to the production profile as its users do: the CLI and ``prefect`` with
``profile.env``, the Prefect REST API with the auth string, the catalog on PostgreSQL
and the objects on S3."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "production" / "profile.py"
STATE_VARIABLE = "RESISTOMICS_PRODUCTION_STATE"
BIN = Path(sys.executable).parent


def _load_profile_module() -> Any:
    spec = importlib.util.spec_from_file_location("resistomics_production_profile", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


profile_module = _load_profile_module()


@dataclass
class ProductionProfile:
    """A running profile: its state, its client environment, and ways to talk to it."""

    state: Path
    env: dict[str, str]
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._http = httpx.Client(
            base_url=self.env["PREFECT_API_URL"],
            auth=_basic(self.env["PREFECT_API_AUTH_STRING"]),
            timeout=30,
        )

    @property
    def api_url(self) -> str:
        return self.env["PREFECT_API_URL"]

    def process_env(self, **extra: str) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "RESISTOMICS_", "AWS_", "DASK_"))
        }
        return {**base, **self.env, **extra}

    def run(
        self, *command: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """A command (``resistomics``, ``prefect``, ``squeue``...) with ``profile.env``."""
        tool = BIN / command[0]
        argv = [str(tool) if tool.exists() else command[0], *command[1:]]
        done = subprocess.run(
            argv, env=self.process_env(), capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        return done

    def script(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``profile.py ARGS --state <state>``."""
        done = subprocess.run(
            [sys.executable, str(SCRIPT), *args, "--state", str(self.state)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.fail(
                f"profile.py {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            )
        self.env = profile_module.read_env(self.state / "profile.env")
        return done

    def status(self) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(SCRIPT), "status", "--json", "--state", str(self.state)],
            capture_output=True,
            text=True,
        )
        report: dict[str, Any] = json.loads(done.stdout)
        return report

    # -- Prefect REST API (with the auth string)
    def api(self, method: str, path: str, body: Any = None) -> Any:
        response = self._http.request(method, path, json=body)
        response.raise_for_status()
        return response.json() if response.content else None

    def flow_runs(self, deployment: str) -> list[dict[str, Any]]:
        """Runs of one deployment (``flow/name``), newest first."""
        flow, name = deployment.split("/")
        runs: list[dict[str, Any]] = self.api(
            "POST",
            "/flow_runs/filter",
            {
                "flows": {"name": {"any_": [flow]}},
                "deployments": {"name": {"any_": [name]}},
                "sort": "EXPECTED_START_TIME_DESC",
                "limit": 200,
            },
        )
        return runs

    def run_deployment(self, deployment: str, **parameters: Any) -> dict[str, Any]:
        found = self.api("GET", f"/deployments/name/{deployment}")
        run: dict[str, Any] = self.api(
            "POST", f"/deployments/{found['id']}/create_flow_run", {"parameters": parameters}
        )
        return run

    def sweep(self) -> dict[str, Any]:
        """Run the landing-zone sweep now (it announces every waiting file)."""
        return self.run_deployment("landing-sweep/every-15-minutes", min_age_seconds=0)

    def announce(self, path: str, *, study: str, modality: str = "expression") -> None:
        """Emit ``resistomics.file.landed`` for ``path`` with the platform's own emitter, as
        a watcher or an object-store notification would (quicker than a sweep run)."""
        code = (
            "import sys\n"
            "from prefect.events.worker import EventsWorker\n"
            "from flows.events import emit_file_landed\n"
            "emit_file_landed(sys.argv[1], study=sys.argv[2], modality=sys.argv[3],"
            " detected_by='test-notification')\n"
            "EventsWorker.drain_all()\n"
        )
        self.run(sys.executable, "-c", code, path, study, modality)

    def events(self, name: str, resource_id: str) -> list[dict[str, Any]]:
        page = self.api(
            "POST",
            "/events/filter",
            {
                "filter": {
                    "event": {"name": [name]},
                    "resource": {"id": [resource_id]},
                    "occurred": {"since": "2000-01-01T00:00:00Z"},
                },
                "limit": 50,
            },
        )
        return list(page["events"])

    # -- the library against the profile's catalog and data root
    def settings(self) -> Any:
        from resistomics.config import Settings

        options = json.loads(self.env["RESISTOMICS_STORAGE_OPTIONS"])
        # keys passed explicitly: this test process keeps its own AWS environment
        options.update(key=self.env["AWS_ACCESS_KEY_ID"], secret=self.env["AWS_SECRET_ACCESS_KEY"])
        return Settings(
            data_root=self.env["RESISTOMICS_DATA_ROOT"],
            catalog_url=self.env["RESISTOMICS_CATALOG_URL"],
            landing_zone=self.env["RESISTOMICS_LANDING_ZONE"],
            storage_options=options,
        )

    def s3(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(
            key=self.env["AWS_ACCESS_KEY_ID"],
            secret=self.env["AWS_SECRET_ACCESS_KEY"],
            endpoint_url=json.loads(self.env["RESISTOMICS_STORAGE_OPTIONS"])["endpoint_url"],
            skip_instance_cache=True,
        )

    def new_study(self, tmp_path: Path) -> str:
        """A study of its own (8 samples, 4 subjects x baseline / progression) registered
        with the CLI; returns its name."""
        study = f"prod-{uuid.uuid4().hex[:8]}"
        sheet = tmp_path / "samples.tsv"
        lines = ["sample_id\tsubject_id\tphase\tresponse\ttimepoint"]
        for i, s in enumerate(SAMPLES):
            phase, day = ("baseline", 0) if i % 2 == 0 else ("progression", 120)
            lines.append(f"{s}\tP{i // 2}\t{phase}\t{'resistant' if i < 4 else 'sensitive'}\t{day}")
        sheet.write_text("\n".join(lines) + "\n")
        self.run("resistomics", "study", "register", str(sheet), "--study", study)
        return study

    def land(self, study: str, name: str, *, seed: int, negative: bool = False) -> str:
        """Put a bulk counts table into the S3 landing zone; return its URL."""
        url = f"{self.env['RESISTOMICS_LANDING_ZONE'].rstrip('/')}/{study}/expression/{name}"
        with self.s3().open(url, "w") as f:
            counts_table(seed=seed, negative=negative).to_csv(f, sep="\t")
        return url


SAMPLES = [f"S{i}" for i in range(8)]


def counts_table(*, seed: int, negative: bool = False) -> pd.DataFrame:
    """Bulk counts, genes x samples, every built-in program gene plus filler; resistant
    samples carry a 4x drug-efflux boost."""
    from resistomics.knowledge import builtin_programs

    programs = builtin_programs().as_mapping()
    genes = sorted({g for members in programs.values() for g in members})
    genes += [f"GENE{i:04d}" for i in range(400 - len(genes))]
    rng = np.random.default_rng(seed)
    means = rng.lognormal(3.0, 1.0, size=len(genes))
    counts = rng.poisson(means[:, None] * np.ones((1, len(SAMPLES)))).astype(np.int64)
    efflux = [genes.index(g) for g in programs["DRUG_EFFLUX_ABC"]]
    counts[np.ix_(efflux, range(4))] *= 4
    if negative:
        counts[0, 0] = -5
    return pd.DataFrame(counts, index=pd.Index(genes, name="gene_id"), columns=SAMPLES)


def _basic(auth_string: str) -> httpx.BasicAuth:
    user, _, password = auth_string.partition(":")
    return httpx.BasicAuth(user, password)


def wait_for(what: str, check: Any, *, timeout: float, poll: float = 2.0) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not after {timeout:.0f} s")
        time.sleep(poll)
