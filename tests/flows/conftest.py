"""Fixtures for the Prefect flow tests: one temporary Prefect server per session, a
fresh data root per test, a registered study and generated landed files.

Prefect reads ``PREFECT_HOME`` when it is first imported, so it is set here, before any
test module imports Prefect, to a temporary folder (never the user's ``~/.prefect``).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `import flows` (the flows package is not installed)
    sys.path.insert(0, str(REPO_ROOT))

_PREFECT_HOME = tempfile.mkdtemp(prefix="resistomics-prefect-home-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
# A flow called outside the session's server fails instead of starting a temporary one.
os.environ["PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey  # noqa: E402
from prefect.client.schemas.objects import Artifact  # noqa: E402
from prefect.events.filters import (  # noqa: E402
    EventFilter,
    EventNameFilter,
    EventOccurredFilter,
    EventResourceFilter,
)
from prefect.events.schemas.events import ReceivedEvent  # noqa: E402
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from resistomics.catalog import parse_sample_sheet  # noqa: E402
from resistomics.config import load_settings  # noqa: E402
from resistomics.knowledge import builtin_programs  # noqa: E402
from resistomics.pipeline import Workspace  # noqa: E402

STUDY = "trial"
SAMPLES = [f"S{i}" for i in range(8)]


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A temporary Prefect server (SQLite; triggers and automations run, the scheduler
    does not) for the whole session; yields its API URL."""
    with (
        temporary_settings(updates={PREFECT_HOME: _PREFECT_HOME}),
        prefect_test_harness(server_startup_timeout=60),
    ):
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def resistomics_env(
    prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """A fresh data root in the environment (where flow tasks build their settings),
    with a threads-only one-worker Dask cluster: the cluster is not what these test.
    Every flow test runs on the session's Prefect server (never an ephemeral one)."""
    env = {
        "RESISTOMICS_DATA_ROOT": str(tmp_path / "root"),
        "RESISTOMICS_CLUSTER__PROCESSES": "false",
        "RESISTOMICS_CLUSTER__N_WORKERS": "1",
        "RESISTOMICS_CLUSTER__THREADS_PER_WORKER": "2",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


@pytest.fixture
def workspace(resistomics_env: dict[str, str], tmp_path: Path) -> Iterator[Workspace]:
    """The test's workspace with study ``trial`` registered (8 samples, 4 subjects,
    baseline/progression pairs, resistant and sensitive arms)."""
    ws = Workspace.open(load_settings())
    sheet = tmp_path / "samples.tsv"
    lines = ["sample_id\tsubject_id\tphase\tresponse\ttimepoint"]
    for i, s in enumerate(SAMPLES):
        phase, day = ("baseline", 0) if i % 2 == 0 else ("progression", 120)
        response = "resistant" if i < 4 else "sensitive"
        lines.append(f"{s}\tP{i // 2}\t{phase}\t{response}\t{day}")
    sheet.write_text("\n".join(lines) + "\n")
    ws.catalog.register_study(STUDY, parse_sample_sheet(sheet))
    try:
        yield ws
    finally:
        ws.close()


def counts_table(*, seed: int = 0, negative: bool = False) -> pd.DataFrame:
    """Bulk RNA-seq counts, genes x samples: every built-in program gene plus filler.

    Resistant samples get a planted 4x boost of the drug-efflux program.
    """
    programs = builtin_programs().as_mapping()
    genes = sorted({g for members in programs.values() for g in members})
    genes += [f"GENE{i:04d}" for i in range(400 - len(genes))]
    rng = np.random.default_rng(seed)
    # Gene means spread over two orders of magnitude, so every expression bin of
    # score_genes has control genes.
    means = rng.lognormal(3.0, 1.0, size=len(genes))
    counts = rng.poisson(means[:, None] * np.ones((1, len(SAMPLES)))).astype(np.int64)
    efflux = [genes.index(g) for g in programs["DRUG_EFFLUX_ABC"]]
    counts[np.ix_(efflux, range(4))] *= 4
    if negative:
        counts[0, 0] = -5
    return pd.DataFrame(counts, index=pd.Index(genes, name="gene_id"), columns=SAMPLES)


@pytest.fixture
def land(workspace: Workspace) -> Callable[..., str]:
    """Write a counts table into ``<landing>/<study>/expression/<name>``; return its path."""

    def _land(name: str = "bulk.tsv", *, study: str = STUDY, **kwargs: bool | int) -> str:
        folder = Path(workspace.settings.resolved_landing_zone) / study / "expression"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        counts_table(**kwargs).to_csv(path, sep="\t")  # type: ignore[arg-type]
        return str(path)

    return _land


class PrefectProbe:
    """Reads back what flows left on the test server: artifacts and events."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        # The server is shared by the session: only events from this test count.
        self.since = datetime.now(UTC)

    def artifacts(self, key: str) -> list[Artifact]:
        """Artifacts with this key created during this test, oldest first."""
        with get_client(sync_client=True) as client:
            found = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )
        mine = [a for a in found if a.created is not None and a.created >= self.since]
        return sorted(mine, key=lambda a: a.created)  # type: ignore[arg-type,return-value]

    def events(
        self, name: str, *, resource_id: str, timeout: float = 30.0, poll: float = 0.5
    ) -> list[ReceivedEvent]:
        """Events of one name and resource, waiting until the server has stored one."""
        deadline = time.monotonic() + timeout
        while True:
            with get_client(sync_client=True) as client:
                page = client.read_events(
                    filter=EventFilter(
                        occurred=EventOccurredFilter(since=self.since),
                        event=EventNameFilter(name=[name]),
                        resource=EventResourceFilter(id=[resource_id]),
                    ),
                    limit=50,  # the server's maximum page size
                )
            if page.events or time.monotonic() > deadline:
                return list(page.events)
            time.sleep(poll)

    @staticmethod
    def flush_events() -> None:
        """Send the events this process emitted now (a background worker sends them)."""
        from prefect.events.worker import EventsWorker

        EventsWorker.drain_all()


@pytest.fixture
def probe(prefect_api: str) -> PrefectProbe:
    return PrefectProbe(prefect_api)
