"""kill -9 in the middle of an ingest: nothing half-written is ever visible.

A child process ingests a bulk table of a few tens of MB; as soon as its version
directory appears under ``<data_root>/datasets/`` (the store is being composed) it gets
SIGKILL, with no chance to clean up. Afterwards the SQLite catalog must open and be
consistent, no version may be published, resolving the dataset must fail, and ingesting
the same file again must publish it. Leftovers (a staged row, the unpublished directory)
are allowed, for the garbage collector, but must stay invisible to ``resolve``. The same
for a variant-call MAF (~500k calls) killed while its first Parquet partitions are written,
and a folder of methylation coverage files killed mid merge.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from resistomics.catalog import Catalog, SampleRow
from resistomics.errors import DatasetNotFoundError
from resistomics.pipeline import ingest
from resistomics.storage import open_sparse_matrix

pytestmark = pytest.mark.integration

N_GENES, N_SAMPLES = 40_000, 96


def write_big_table(path: Path) -> tuple[list[str], np.ndarray]:
    """A genes x samples count table (~14 MB), written by Arrow's C++ CSV writer."""
    rng = np.random.default_rng(0)
    values = rng.negative_binomial(2, 0.02, size=(N_GENES, N_SAMPLES)).astype(np.int32)
    samples = [f"S{j:03d}" for j in range(N_SAMPLES)]
    columns = {"gene_id": pa.array([f"ENSG{i:011d}" for i in range(N_GENES)])}
    columns.update({s: pa.array(values[:, j]) for j, s in enumerate(samples)})
    with open(path, "wb") as f:
        f.write(("\t".join(["gene_id", *samples]) + "\n").encode())
        pacsv.write_csv(
            pa.table(columns),
            f,
            write_options=pacsv.WriteOptions(
                include_header=False, delimiter="\t", quoting_style="none"
            ),
        )
    return samples, values


CHILD = """
import sys
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, ingest

root, landed = sys.argv[1], sys.argv[2]
ws = Workspace.open(Settings(data_root=root, cluster=ClusterSettings(n_workers=1, processes=False)))
outcome = ingest(ws, landed, study="st")
print(outcome.status, outcome.message, flush=True)
"""


def _kill_when_written(
    script: str, args: list[str], written: Callable[[], list[Path]], tmp_path: Path
) -> list[Path]:
    """Run ``script`` in a child; SIGKILL it as soon as ``written()`` finds something."""
    log = (tmp_path / "child.log").open("w")
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 120
        found: list[Path] = []
        while child.poll() is None and time.monotonic() < deadline:
            found = written()
            if found:
                break
            time.sleep(0.005)
        assert found, (
            f"the child ended before writing (rc={child.poll()}): "
            f"{(tmp_path / 'child.log').read_text()}"
        )
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        log.close()
    return found


def test_kill_during_ingest_leaves_nothing_visible_and_a_rerun_publishes(
    settings, workspace, land, tmp_path
):  # type: ignore[no-untyped-def]
    src = tmp_path / "big.tsv"
    samples, values = write_big_table(src)
    workspace.catalog.register_study("st", [SampleRow(sample_id=s, subject_id=s) for s in samples])
    landed = land(workspace, src, "st")
    datasets = Path(settings.data_root) / "datasets"

    version_dirs = _kill_when_written(
        CHILD, [settings.data_root, landed], lambda: list(datasets.glob("st/*/v-*")), tmp_path
    )

    # the catalog opens in a fresh connection and SQLite finds it consistent
    db = Path(settings.data_root) / "catalog.sqlite"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    catalog = Catalog(settings.resolved_catalog_url)
    try:
        states = {v[4] for v in catalog.snapshot()}
        assert states <= {"staged"}, states  # at most a staged leftover
        with pytest.raises(DatasetNotFoundError):
            catalog.resolve("st/big")
        assert catalog.find_published_by_digest("st", _digest(str(src))) is None
    finally:
        catalog.close()
    assert version_dirs[0].exists()  # the unpublished directory is left for the collector
    # the child had claimed the file (moved it into the landing zone's private intake)
    # and never got to archive or quarantine it: its bytes wait there, whole
    (claimed,) = (Path(settings.resolved_landing_zone) / ".intake").glob("*/big.tsv")
    assert not Path(landed).exists() and _digest(str(claimed)) == _digest(str(src))

    # the same file again: the dead child's claim is given back, then published, and
    # resolve never sees the leftover
    outcome = ingest(workspace, landed, study="st")

    assert outcome.status == "published", outcome.message
    resolved = workspace.catalog.resolve("st/big")
    assert resolved.id == outcome.version.id
    assert Path(workspace.root.to_path(resolved.uri)) not in version_dirs
    leftovers = [v for v in workspace.catalog.snapshot() if v[4] == "staged"]
    assert all(v[0] != resolved.id for v in leftovers)
    store = open_sparse_matrix(workspace.root, workspace.root.to_path(resolved.uri))
    assert store.shape == (N_SAMPLES, N_GENES)
    block = store.cells()[:, :500].compute().toarray()
    np.testing.assert_array_equal(block, values[:500].T)


def _digest(path: str) -> str:
    import fsspec

    from resistomics.storage import digest_path

    return digest_path(fsspec.filesystem("file"), path)


CHILD_VARIANTS = """
import sys
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, ingest

root, landed = sys.argv[1], sys.argv[2]
ws = Workspace.open(Settings(data_root=root, cluster=ClusterSettings(n_workers=1, processes=False)))
outcome = ingest(ws, landed, study="dna", modality="variants")
print(outcome.status, outcome.message, flush=True)
"""


def test_kill_during_variant_ingest_leaves_nothing_visible_and_a_rerun_publishes(
    settings, workspace, land, tmp_path
):  # type: ignore[no-untyped-def]
    import pyarrow.dataset as pads

    from resistomics.catalog import parse_sample_sheet
    from resistomics.simulate import simulate_clonal_cohort

    sim = simulate_clonal_cohort(n_subjects=50, n_truncal=5000, seed=1)  # ~500k calls
    sheet = tmp_path / "dna.tsv"
    sim.samples.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("dna", parse_sample_sheet(sheet))
    landed = land(workspace, sim.write_maf(tmp_path / "calls.maf"), "dna", modality="variants")
    datasets = Path(settings.data_root) / "datasets"

    # killed as soon as the first batch's partitions are being written
    _kill_when_written(
        CHILD_VARIANTS,
        [settings.data_root, landed],
        lambda: list(datasets.glob("dna/calls/v-*/calls/subject_id=*")),
        tmp_path,
    )

    db = Path(settings.data_root) / "catalog.sqlite"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    catalog = Catalog(settings.resolved_catalog_url)
    try:
        assert {v[4] for v in catalog.snapshot()} <= {"staged"}
        with pytest.raises(DatasetNotFoundError):
            catalog.resolve("dna/calls")
    finally:
        catalog.close()

    outcome = ingest(workspace, landed, study="dna", modality="variants")
    assert outcome.status == "published", outcome.message
    resolved = workspace.catalog.resolve("dna/calls")
    assert resolved.id == outcome.version.id and resolved.shape[0] == len(sim.calls)
    table = pads.dataset(
        Path(workspace.root.to_path(resolved.uri)) / "calls", format="parquet", partitioning="hive"
    ).to_table()
    assert table.num_rows == len(sim.calls)  # nothing of the killed run leaked in


CHILD_METHYLATION = """
import sys
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, ingest

root, landed = sys.argv[1], sys.argv[2]
ws = Workspace.open(
    Settings(
        data_root=root,
        cluster=ClusterSettings(n_workers=1, processes=False),
        # small pieces: the merge writes many chunks, so the kill lands mid-store
        modalities={"methylation": {"rows_per_chunk": 5000, "sites_per_chunk": 2048}},
    )
)
outcome = ingest(ws, landed, study="meth", modality="methylation")
print(outcome.status, outcome.message, flush=True)
"""


def test_kill_during_methylation_ingest_leaves_nothing_visible_and_a_rerun_publishes(
    settings, workspace, land, tmp_path
):  # type: ignore[no-untyped-def]
    """A folder of per-sample Bismark coverage files (6 x ~150k CpGs), killed once the
    streaming merge has written its first chunks of ``methylated``."""
    from resistomics.catalog import parse_sample_sheet
    from resistomics.modalities.methylation import simulate_methylation_cohort
    from resistomics.modalities.methylation._simulate import write_methylation_files
    from resistomics.storage import open_feature_matrix

    sim = simulate_methylation_cohort(n_subjects=3, n_sites=150_000, seed=3)
    sheet = tmp_path / "meth.tsv"
    sim.samples.to_csv(sheet, sep="\t", index=False)
    workspace.catalog.register_study("meth", parse_sample_sheet(sheet))
    folder = tmp_path / "cohort"
    write_methylation_files(sim, folder, "bismark-cov", gzip_files=True)
    landed = land(workspace, folder, "meth", modality="methylation")
    datasets = Path(settings.data_root) / "datasets"

    _kill_when_written(
        CHILD_METHYLATION,
        [settings.data_root, landed],
        lambda: [p for p in datasets.glob("meth/*/v-*/**/methylated/c/**/*") if p.is_file()],
        tmp_path,
    )

    db = Path(settings.data_root) / "catalog.sqlite"
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    catalog = Catalog(settings.resolved_catalog_url)
    try:
        assert {v[4] for v in catalog.snapshot()} <= {"staged"}
        with pytest.raises(DatasetNotFoundError):
            catalog.resolve("meth/cohort")
    finally:
        catalog.close()

    outcome = ingest(workspace, landed, study="meth", modality="methylation")
    assert outcome.status == "published", outcome.message
    resolved = workspace.catalog.resolve("meth/cohort")
    assert resolved.id == outcome.version.id
    store = open_feature_matrix(workspace.root, workspace.root.to_path(resolved.uri))
    n_sites = len(
        pd.concat([c[["contig", "position"]] for c in sim.calls.values()]).drop_duplicates()
    )
    assert store.n_features == n_sites and store.n_samples == len(sim.calls)
    total = np.asarray(store.array("total").sum(axis=0).compute())
    expected = [int(sim.calls[s]["total"].sum()) for s in store.samples["sample_id"]]
    assert total.tolist() == expected  # nothing of the killed run leaked in
