"""The data root on S3: an S3-compatible server (moto in server mode) on 127.0.0.1.

Everything goes through the real HTTP path (s3fs -> aiobotocore -> moto), as it would
against MinIO or AWS: ingest onto S3 from a local and from an S3 landing zone, opening
the published store, quarantine on S3, Parquet tables and dense Zarr arrays, and variant
calls partitioned by subject with the clonal analysis reading them back from S3.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from pathlib import Path

import anndata as ad
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import zarr

from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, check_integrity, ingest
from resistomics.storage import (
    DataRoot,
    open_sparse_matrix,
    read_dense_array,
    read_table,
    write_dense_array,
    write_table,
)
from resistomics.storage._tables import table_metadata

pytestmark = pytest.mark.integration

KEY, SECRET = "testing-key", "testing-secret"
SAMPLES = ("S1", "S2", "S3", "S4")


@pytest.fixture(scope="module")
def s3_endpoint():  # type: ignore[no-untyped-def]
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint, monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    """A fresh bucket; dummy credentials in the environment, no real AWS config read."""
    import s3fs

    for name, value in {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    name = f"rx-{uuid.uuid4().hex[:12]}"
    fs = s3fs.S3FileSystem(key=KEY, secret=SECRET, endpoint_url=s3_endpoint)
    fs.mkdir(name)
    return name


@pytest.fixture
def options(s3_endpoint):  # type: ignore[no-untyped-def]
    return {"endpoint_url": s3_endpoint, "key": KEY, "secret": SECRET}


def _workspace(tmp_path: Path, bucket: str, options: dict, landing: str) -> Workspace:
    settings = Settings(
        data_root=f"s3://{bucket}/root",
        catalog_url=f"sqlite:///{tmp_path}/catalog.sqlite",
        landing_zone=landing,
        storage_options=options,
        cluster=ClusterSettings(n_workers=1, processes=False),
    )
    ws = Workspace.open(settings)
    ws.catalog.register_study("st", [SampleRow(sample_id=s, subject_id=s) for s in SAMPLES])
    return ws


def _bulk(path: Path, seed: int, n_genes: int = 200) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    genes = [f"ENSG{i:011d}" for i in range(n_genes)]
    values = rng.poisson(15, (n_genes, len(SAMPLES)))
    lines = ["\t".join(["gene_id", "gene_name", *SAMPLES])]
    lines += [
        "\t".join([g, f"SYM{i}", *map(str, row)])
        for i, (g, row) in enumerate(zip(genes, values, strict=True))
    ]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return genes, values


def _tenx(directory: Path, seed: int, sample_of_cell=None) -> np.ndarray:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    x = rng.poisson(0.7, (60, 40))
    directory.mkdir(parents=True)
    cells = [f"C{i:03d}" for i in range(60)]
    labels = [sample_of_cell(i) if sample_of_cell else SAMPLES[i % 4] for i in range(60)]
    (directory / "features.tsv").write_text(
        "".join(f"G{j}\tSYM{j}\tGene Expression\n" for j in range(40))
    )
    (directory / "barcodes.tsv").write_text(
        "".join(f"{c}\t{s}\n" for c, s in zip(cells, labels, strict=True))
    )
    gi, ci = np.nonzero(x.T)
    body = "".join(f"{g + 1} {c + 1} {x[c, g]}\n" for g, c in zip(gi, ci, strict=True))
    (directory / "matrix.mtx").write_text(
        f"%%MatrixMarket matrix coordinate integer general\n40 60 {len(gi)}\n{body}"
    )
    return x


def test_ingest_onto_s3_from_a_local_landing_zone(tmp_path, bucket, options):  # type: ignore[no-untyped-def]
    landing = tmp_path / "landing"
    ws = _workspace(tmp_path, bucket, options, str(landing))
    landed = landing / "st" / "expression" / "counts.tsv.gz"
    landed.parent.mkdir(parents=True)
    genes, values = _bulk(landed, seed=1)
    original = landed.read_bytes()

    outcome = ingest(ws, str(landed), study="st")

    assert outcome.status == "published", outcome.message
    uri = outcome.version.uri
    assert uri.startswith("datasets/st/counts/v-")  # relative to the root
    assert ws.catalog.resolve("st/counts").uri == uri
    store = open_sparse_matrix(ws.root, ws.root.to_path(uri))
    assert store.url == f"s3://{bucket}/root/{uri}"
    assert list(store.obs.index) == list(SAMPLES)
    assert list(store.var.index) == genes
    np.testing.assert_array_equal(store.cells().compute().toarray(), values.T)
    np.testing.assert_array_equal(store.genes().compute().toarray(), values.T)
    adata = ad.read_zarr(
        zarr.storage.FsspecStore.from_url(
            f"{store.url}/expression.zarr", storage_options=options, read_only=True
        )
    )
    np.testing.assert_array_equal(adata.X.toarray(), values.T)
    # the processed file left the (local) landing zone for the (S3) archive
    assert not landed.exists()
    archived = [p for p in ws.root.fs.find(ws.root.path("archive")) if p.endswith("counts.tsv.gz")]
    assert len(archived) == 1
    assert ws.root.fs.cat(archived[0]) == original
    # per-file digests work on S3 too: all match, and one changed object is named
    files = [c for c in check_integrity(ws, sample=None) if c.check == "files"]
    assert [(c.result, c.ref) for c in files] == [("ok", "st/counts@v1")]
    obs = f"{ws.root.to_path(uri)}/expression.zarr/obs/zarr.json"
    ws.root.fs.pipe(obs, ws.root.fs.cat(obs) + b" ")
    size = len(ws.root.fs.cat(obs))
    problems = [c.detail for c in check_integrity(ws, sample=None) if c.result == "problem"]
    assert problems == [f"{obs}: {size} bytes, published with {size - 1}"]
    ws.close()


def test_quarantine_onto_s3_from_a_local_landing_zone(tmp_path, bucket, options):  # type: ignore[no-untyped-def]
    landing = tmp_path / "landing"
    ws = _workspace(tmp_path, bucket, options, str(landing))
    landed = landing / "st" / "expression" / "bad"
    _tenx(landed, seed=2, sample_of_cell=lambda i: "S9" if i == 5 else SAMPLES[i % 4])
    before = ws.catalog.snapshot()

    outcome = ingest(ws, str(landed), study="st")

    assert outcome.status == "quarantined"
    assert f"{landed}/barcodes.tsv: [registered-samples] sample 'S9'" in outcome.message
    assert ws.catalog.snapshot() == before
    qpath = ws.root.to_path(outcome.quarantine_uri)
    found = sorted(p.removeprefix(qpath + "/") for p in ws.root.fs.find(qpath))
    assert found == [
        "bad/barcodes.tsv",
        "bad/features.tsv",
        "bad/matrix.mtx",
        "report.json",
        "report.md",
    ]
    assert not landed.exists()
    ws.close()


def test_ingest_from_an_s3_landing_zone(tmp_path, bucket, options):  # type: ignore[no-untyped-def]
    ws = _workspace(tmp_path, bucket, options, f"s3://{bucket}/landing")
    fs = ws.landing.fs
    x = _tenx(tmp_path / "pbmc", seed=3)
    fs.put(str(tmp_path / "pbmc"), f"{bucket}/landing/st/expression/pbmc", recursive=True)
    fs.invalidate_cache()
    landed = f"s3://{bucket}/landing/st/expression/pbmc"

    outcome = ingest(ws, landed, study="st")

    assert outcome.status == "published", outcome.message
    store = open_sparse_matrix(ws.root, ws.root.to_path(outcome.version.uri))
    np.testing.assert_array_equal(store.cells().compute().toarray(), x)
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/landing/st/expression/pbmc")

    # a bad file landed on S3: quarantined on S3, and the message names the S3 object
    bad_local = tmp_path / "bad.tsv"
    _bulk(bad_local, seed=4)
    bad_local.write_text(bad_local.read_text().replace("\tS3\t", "\tS7\t"))
    fs.put(str(bad_local), f"{bucket}/landing/st/expression/bad.tsv")
    bad = f"s3://{bucket}/landing/st/expression/bad.tsv"
    published = [v for v in ws.catalog.snapshot() if v[4] == "published"]

    outcome = ingest(ws, bad, study="st")

    assert outcome.status == "quarantined"
    assert outcome.message.startswith(f"{bad} (column 'S7'): [registered-samples]"), outcome.message
    assert [v for v in ws.catalog.snapshot() if v[4] == "published"] == published
    qpath = ws.root.to_path(outcome.quarantine_uri)
    report = json.loads(ws.root.fs.cat(f"{qpath}/report.json"))
    assert report["rule"] == "registered-samples"
    assert ws.root.fs.exists(f"{qpath}/bad.tsv")
    fs.invalidate_cache()
    assert not fs.exists(f"{bucket}/landing/st/expression/bad.tsv")
    ws.close()


def test_tables_round_trip_on_s3(bucket, options):  # type: ignore[no-untyped-def]
    root = DataRoot(f"s3://{bucket}/root", options)
    frame = pd.DataFrame(
        {
            "subject": np.repeat(["P1", "P2", "P3"], 4),
            "gene": [f"G{i}" for i in range(12)],
            "score": np.linspace(-1, 1, 12),
            "count": np.arange(12, dtype=np.int64),
        }
    )
    path = root.path("results", "scores.parquet")
    write_table(root, path, frame, metadata={"parent": "st/counts@v1"})
    pd.testing.assert_frame_equal(read_table(root, path), frame)
    assert table_metadata(root, path) == {"parent": "st/counts@v1"}

    part = root.path("results", "by_subject")
    write_table(root, part, frame, partition_cols=["subject"])
    back = read_table(root, part)
    back["subject"] = back["subject"].astype(str)
    back = back.sort_values("count").reset_index(drop=True)[frame.columns]
    pd.testing.assert_frame_equal(back, frame)


def test_dense_array_round_trip_on_s3(bucket, options):  # type: ignore[no-untyped-def]
    root = DataRoot(f"s3://{bucket}/root", options)
    values = np.random.default_rng(5).standard_normal((300, 50)).astype(np.float32)
    write_dense_array(
        root,
        root.path("scores.zarr"),
        da.from_array(values, chunks=(70, 33)),
        name="score_genes",
        chunks=(25, 25),
        shards=(100, 50),
    )
    back = read_dense_array(root, root.path("scores.zarr"), "score_genes")
    assert back.chunks[0][0] == 100
    np.testing.assert_array_equal(back.compute(), values)


def test_variant_calls_and_clonal_results_on_s3(tmp_path, bucket, options):  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.modalities.variants import clonal_evolution
    from resistomics.simulate import simulate_clonal_cohort

    landing = tmp_path / "landing"
    ws = _workspace(tmp_path, bucket, options, str(landing))
    sim = simulate_clonal_cohort(n_subjects=2, n_truncal=12, n_sensitive=6, n_resistant=5, seed=4)
    sheet = tmp_path / "dna.tsv"
    sim.samples.to_csv(sheet, sep="\t", index=False)
    ws.catalog.register_study("dna", parse_sample_sheet(sheet))
    landed = sim.write_vcf(landing / "dna" / "variants" / "calls.vcf")

    outcome = ingest(ws, str(landed), study="dna", modality="variants")
    assert outcome.status == "published", outcome.message
    uri = outcome.version.uri
    assert uri.startswith("datasets/dna/calls/v-")
    parts = ws.root.fs.ls(f"{ws.root.to_path(uri)}/calls")
    assert sorted(p.rsplit("/", 1)[1] for p in parts) == ["subject_id=P01", "subject_id=P02"]

    result = clonal_evolution(ws, "dna/calls")
    assert result.version.uri.startswith("datasets/dna/calls.clonal/v-")
    emergent = read_table(
        ws.root, f"{ws.root.to_path(result.version.uri)}/emergent_resistance.parquet"
    )
    found = {(s, g) for s, g in zip(emergent["subject_id"], emergent["gene"], strict=True)}
    assert found == {(s, gene) for s, (gene, _) in sim.drivers.items()}
    ws.close()


def test_cli_ingest_uploads_a_local_file_and_directory_to_an_s3_landing_zone(
    tmp_path, bucket, options, s3_endpoint, monkeypatch
):  # type: ignore[no-untyped-def]
    """`resistomics ingest LOCAL --study st` with the landing zone on S3: the file (or a 10x
    directory) is uploaded to `<landing>/st/expression/` and ingested from there (was:
    `Path("s3://...")` collapsed to `s3:/...` and the command refused its own target)."""
    from typer.testing import CliRunner

    from flows.cli import app

    ws = _workspace(tmp_path, bucket, options, f"s3://{bucket}/landing")
    ws.close()
    for name, value in {
        "RESISTOMICS_DATA_ROOT": f"s3://{bucket}/root",
        "RESISTOMICS_CATALOG_URL": f"sqlite:///{tmp_path}/catalog.sqlite",
        "RESISTOMICS_LANDING_ZONE": f"s3://{bucket}/landing",
        "RESISTOMICS_STORAGE_OPTIONS": json.dumps(options),
        "RESISTOMICS_CLUSTER__PROCESSES": "false",
        "RESISTOMICS_CLUSTER__N_WORKERS": "1",
        "COLUMNS": "250",
    }.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    _, values = _bulk(tmp_path / "counts.tsv", seed=5)
    x = _tenx(tmp_path / "pbmc", seed=6)

    r = runner.invoke(app, ["ingest", str(tmp_path / "counts.tsv"), "--study", "st"])
    assert r.exit_code == 0, r.output
    assert f"s3://{bucket}/landing/st/expression/counts.tsv: published st/counts@v1" in r.output
    r = runner.invoke(app, ["ingest", str(tmp_path / "pbmc"), "--study", "st"])
    assert r.exit_code == 0, r.output
    assert f"s3://{bucket}/landing/st/expression/pbmc: published st/pbmc@v1" in r.output

    ws = Workspace.open(ws.settings)
    counts = open_sparse_matrix(ws.root, ws.root.to_path(ws.catalog.resolve("st/counts").uri))
    np.testing.assert_array_equal(counts.cells().compute().toarray(), values.T)
    pbmc = open_sparse_matrix(ws.root, ws.root.to_path(ws.catalog.resolve("st/pbmc").uri))
    np.testing.assert_array_equal(pbmc.cells().compute().toarray(), x)
    # nothing left in the landing zone: no upload under its final or its hidden name
    ws.landing.fs.invalidate_cache()
    assert ws.landing.fs.find(f"{bucket}/landing") == []
    ws.close()
