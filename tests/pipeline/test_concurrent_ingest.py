"""Ingests racing in real processes: exactly the right versions, no traceback.

Each child process (forked from one that imported the CLI, see ``forked_cli``) runs the
real CLI command (``resistomics ingest``) once every child is ready and a start file
appears, so the ingests overlap from their first catalog read on. On SQLite (one write lock, ``BEGIN IMMEDIATE``) and on
PostgreSQL (row locks, partial unique indexes; ``RESISTOMICS_TEST_POSTGRES_URL``):

- four new datasets of one study at once: four published versions (this used to
  crash with ``UNIQUE constraint failed: datasets.study_id, datasets.name``);
- the same bytes landed three times at once (twice under the same dataset name, once
  under another): one published version, the two others ``unchanged`` (this used to
  make v1 superseded by a v2 of identical bytes);
- two different files into the same dataset: v1 and v2, one published and the other
  superseded, never two published.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from forked_cli import Job, run_jobs
from resistomics.catalog import Catalog, SampleRow, VersionStatus

pytestmark = pytest.mark.integration

PG_URL = os.environ.get("RESISTOMICS_TEST_POSTGRES_URL")
SAMPLES = ["S1", "S2", "S3", "S4"]


def _table(path: Path, seed: int, n_genes: int = 400) -> Path:
    rng = np.random.default_rng(seed)
    values = rng.negative_binomial(5, 0.1, size=(n_genes, len(SAMPLES)))
    lines = ["gene_id\t" + "\t".join(SAMPLES)]
    lines += [f"G{i:05d}\t" + "\t".join(map(str, row)) for i, row in enumerate(values)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """``None`` (the SQLite default of the data root) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    if PG_URL is None:
        pytest.skip("set RESISTOMICS_TEST_POSTGRES_URL (see .ci/start-postgres)")
    import psycopg

    name = f"resistomics_{uuid.uuid4().hex[:10]}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


class Race:
    """A data root with study ``s`` registered, and CLI ingests started together."""

    def __init__(self, tmp_path: Path, catalog_url: str | None) -> None:
        self.tmp = tmp_path
        self.root = tmp_path / "root"
        self.env = {
            **os.environ,
            "RESISTOMICS_DATA_ROOT": str(self.root),
            "RESISTOMICS_CLUSTER__PROCESSES": "false",
            "RESISTOMICS_CLUSTER__N_WORKERS": "1",
            "COLUMNS": "400",  # one result line per run, unwrapped
        }
        if catalog_url is not None:
            self.env["RESISTOMICS_CATALOG_URL"] = catalog_url
        self.url = catalog_url or f"sqlite:///{self.root / 'catalog.sqlite'}"
        self.root.mkdir()
        catalog = Catalog(self.url)
        catalog.register_study("s", [SampleRow(s, f"P{i // 2}") for i, s in enumerate(SAMPLES)])
        catalog.close()
        self.landing = self.root / "landing" / "s" / "expression"

    def run(self, *commands: list[str]) -> list[tuple[int, str]]:
        """One forked process per command, released at once; (exit code, output) each."""
        tag = uuid.uuid4().hex[:6]
        start = self.tmp / f"go-{tag}"
        jobs = [
            Job(args=args, log=self.tmp / f"race-{tag}-{i}.log", start=start)
            for i, args in enumerate(commands)
        ]
        results = [(o.code, o.output) for o in run_jobs(self.env, jobs)]
        for _, output in results:
            assert "Traceback" not in output, output
            assert "database is locked" not in output, output
        return results

    def versions(self) -> list[tuple[str, int, str, str]]:
        catalog = Catalog(self.url)
        try:
            return sorted(
                (v.dataset, v.number, v.status.value, v.digest) for v in catalog.versions()
            )
        finally:
            catalog.close()


def test_four_new_datasets_of_one_study_at_once(tmp_path: Path, catalog_url: str | None) -> None:
    race = Race(tmp_path, catalog_url)
    files = [_table(tmp_path / "in" / f"{name}.tsv", seed) for seed, name in enumerate("abcd")]

    results = race.run(*[["ingest", str(f), "--study", "s"] for f in files])

    assert [code for code, _ in results] == [0, 0, 0, 0], results
    assert all("published s/" in out for _, out in results), results
    versions = race.versions()
    assert [(d, n, st) for d, n, st, _ in versions] == [(name, 1, "published") for name in "abcd"]


def test_the_same_bytes_landed_three_times_at_once_make_one_version(
    tmp_path: Path, catalog_url: str | None
) -> None:
    race = Race(tmp_path, catalog_url)
    src = _table(tmp_path / "in" / "x.tsv", seed=7)
    # twice under the same dataset name (from two deliveries), once under another name
    landed = [
        _table(race.landing / "batch1" / "x.tsv", seed=7),
        _table(race.landing / "batch2" / "x.tsv", seed=7),
        _table(race.landing / "y.tsv", seed=7),
    ]
    assert len({p.read_bytes() for p in [src, *landed]}) == 1

    results = race.run(*[["ingest", str(p), "--study", "s"] for p in landed])

    assert [code for code, _ in results] == [0, 0, 0], results
    published = [out for _, out in results if ": published s/" in out]
    unchanged = [out for _, out in results if "identical bytes with the same options" in out]
    assert (len(published), len(unchanged)) == (1, 2), results
    versions = race.versions()
    assert len(versions) == 1 and versions[0][2] == "published", versions
    # every landed copy left the landing zone (archived), none waits to be ingested again
    assert not [p for p in landed if p.exists()]


def test_two_different_files_into_one_dataset_at_once(
    tmp_path: Path, catalog_url: str | None
) -> None:
    race = Race(tmp_path, catalog_url)
    files = [_table(tmp_path / "in" / f"d{i}.tsv", seed=10 + i) for i in (1, 2)]

    results = race.run(*[["ingest", str(f), "--study", "s", "--dataset", "d"] for f in files])

    assert [code for code, _ in results] == [0, 0], results
    versions = race.versions()
    # numbers in staging order; v2 is the published one whichever publish finishes last
    assert sorted(n for _, n, _, _ in versions) == [1, 2], versions
    assert sorted((n, st) for _, n, st, _ in versions) == [
        (1, "superseded"),
        (2, "published"),
    ], versions
    assert len({digest for *_, digest in versions}) == 2
    catalog = Catalog(race.url)
    try:
        published = catalog.resolve("s/d")
        assert published.status is VersionStatus.PUBLISHED
        assert json.dumps(published.parameters["landing"])  # recorded with its options
    finally:
        catalog.close()
