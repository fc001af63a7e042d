"""A folder of methylation files mapped to samples by its manifest, and DSS guessing.

The manifest (``manifest.tsv`` or ``manifest.csv`` beside the files; columns ``file`` and
``sample_id``) is read on the real ingest path: a good one maps files whose names say
nothing about their samples (each sample's counts must land in its own column), a bad
row is quarantined with one line naming the manifest line and the catalog unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import land
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.modalities import guess_modality
from resistomics.modalities.methylation._simulate import (
    SimulatedMethylation,
    simulate_methylation_cohort,
    write_methylation_files,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import open_feature_matrix

STUDY = "meth"


@pytest.fixture(scope="module")
def sim() -> SimulatedMethylation:
    return simulate_methylation_cohort(n_subjects=2, n_sites=300, dropout=0.2, seed=5)


@pytest.fixture
def ws(tmp_path: Path, sim: SimulatedMethylation) -> Iterator[Workspace]:
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        modalities={"methylation": {"rows_per_chunk": 50, "sites_per_chunk": 64}},
    )
    w = Workspace.open(settings)
    w.catalog.register_study(
        STUDY,
        [
            SampleRow(sample_id=r.sample_id, subject_id=r.subject_id, phase=r.phase)
            for r in sim.samples.itertuples()
        ],
    )
    yield w
    w.close()


def _opaque_folder(sim: SimulatedMethylation, folder: Path) -> dict[str, str]:
    """Bismark coverage files renamed ``run<k>`` in reverse sample order, so neither a
    name nor the sorted order says which sample a file holds. Returns file -> sample."""
    write_methylation_files(sim, folder, "bismark-cov", gzip_files=True)
    ids = list(sim.calls)
    mapping = {}
    for k, sample in enumerate(reversed(ids)):
        name = f"run{k}.cov.gz"
        (folder / f"{sample}.bismark.cov.gz").rename(folder / name)
        mapping[name] = sample
    return mapping


def _write_manifest(folder: Path, rows: list[tuple[str, str]], *, csv: bool = False) -> None:
    sep = "," if csv else "\t"
    lines = [sep.join(["file", "sample_id", "note"])]
    lines += [sep.join([f, s, "lane 1"]) for f, s in rows]
    (folder / ("manifest.csv" if csv else "manifest.tsv")).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("csv", [False, True], ids=["tsv", "csv"])
def test_a_manifest_maps_files_to_registered_samples(
    ws: Workspace, sim: SimulatedMethylation, tmp_path: Path, csv: bool
) -> None:
    folder = tmp_path / "cohort"
    mapping = _opaque_folder(sim, folder)
    _write_manifest(folder, sorted(mapping.items()), csv=csv)
    assert guess_modality(str(folder)).name == "methylation"  # the manifest is no data file
    out = ingest(ws, land(ws, folder, STUDY, name="cohort", modality="methylation"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None
    store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))
    ids = store.samples["sample_id"].tolist()
    assert ids == [mapping[f] for f in sorted(mapping)]  # the manifest's order
    assert store.samples["source_file"].tolist() == sorted(mapping)
    sites = store.features.set_index(["contig", "position"]).index
    m = np.asarray(store.array("methylated"))
    t = np.asarray(store.array("total"))
    for j, sample in enumerate(ids):  # each sample's own counts in its own column
        calls = sim.calls[sample]
        at = sites.get_indexer(list(zip(calls["contig"], calls["position"], strict=True)))
        assert (at >= 0).all()
        np.testing.assert_array_equal(m[at, j], calls["methylated"].to_numpy(), err_msg=sample)
        np.testing.assert_array_equal(t[at, j], calls["total"].to_numpy(), err_msg=sample)
        assert t[:, j].sum() == calls["total"].sum()  # and nothing else


def _bad(edit: Callable[[list[tuple[str, str]]], list[tuple[str, str]]]) -> Callable[..., None]:
    def build(sim: SimulatedMethylation, folder: Path) -> None:
        mapping = _opaque_folder(sim, folder)
        _write_manifest(folder, edit(sorted(mapping.items())))

    return build


def _no_sample_column(sim: SimulatedMethylation, folder: Path) -> None:
    mapping = _opaque_folder(sim, folder)
    rows = ["file\tsample"] + [f"{f}\t{s}" for f, s in sorted(mapping.items())]
    (folder / "manifest.tsv").write_text("\n".join(rows) + "\n")


# kind -> (folder builder, rule, what the one line must also say)
BAD_MANIFESTS: dict[str, tuple[Callable[..., None], str, str]] = {
    "missing-file": (
        _bad(lambda r: [*r[:2], ("run9.cov.gz", r[2][1]), *r[3:]]),
        "manifest-file",
        "manifest.tsv (line 4, column 'file'): [manifest-file] file 'run9.cov.gz' is not in",
    ),
    "unregistered-sample": (
        _bad(lambda r: [r[0], (r[1][0], "P9-base"), *r[2:]]),
        "registered-samples",
        "manifest.tsv (line 3): [registered-samples] sample 'P9-base' is not a registered",
    ),
    "duplicate-sample": (
        _bad(lambda r: [r[0], (r[1][0], r[0][1]), *r[2:]]),
        "duplicate-sample",
        "(line 3, column 'sample_id'): [duplicate-sample] sample 'P2-prog' again (also line 2)",
    ),
    "unlisted-file": (
        _bad(lambda r: r[:-1]),
        "folder-contents",
        "run3.cov.gz: [folder-contents] not listed in manifest.tsv",
    ),
    "no-sample-column": (
        _no_sample_column,
        "manifest-columns",
        "manifest.tsv (line 1): [manifest-columns] needs the columns 'file' and 'sample_id'",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD_MANIFESTS))
def test_a_bad_manifest_row_is_quarantined_with_one_line(
    ws: Workspace, sim: SimulatedMethylation, tmp_path: Path, kind: str
) -> None:
    build, rule, says = BAD_MANIFESTS[kind]
    folder = tmp_path / kind
    build(sim, folder)
    before = ws.catalog.snapshot()
    out = ingest(ws, land(ws, folder, STUDY, name=kind, modality="methylation"), study=STUDY)
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1 and says in out.message, out.message
    assert out.report["stage"] == "read" and out.report["rule"] == rule
    assert ws.catalog.snapshot() == before
    datasets = Path(ws.settings.data_root) / "datasets"
    assert not datasets.exists() or not any(datasets.rglob("*.zarr"))


def test_a_dss_text_file_is_guessed_as_methylation(tmp_path: Path) -> None:
    """``.txt`` is claimed by expression's bulk table and by DSS: DSS's reader checks the
    header, so a ``chr pos N X`` file is methylation and any other table expression."""
    dss = tmp_path / "P1-base.txt"
    dss.write_text("chr\tpos\tN\tX\nchr1\t10\t5\t2\nchr1\t20\t6\t3\n")
    counts = tmp_path / "counts.txt"
    counts.write_text("gene_id\tP1-base\nG1\t5\n")
    assert guess_modality(str(dss)).name == "methylation"
    assert guess_modality(str(counts)).name == "expression"
    gz = tmp_path / "P1-base.tsv.gz"
    import gzip

    gz.write_bytes(gzip.compress(dss.read_bytes()))
    assert guess_modality(str(gz)).name == "methylation"


def test_a_dss_text_file_ingests_without_modality_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("sample_id\tsubject_id\tphase\nP1-base\tP1\tbaseline\n")
    dss = tmp_path / "P1-base.txt"
    dss.write_text("chr\tpos\tN\tX\nchr1\t10\t5\t2\nchr1\t20\t6\t3\nchr2\t5\t4\t4\n")
    runner = CliRunner()
    assert runner.invoke(app, ["study", "register", str(sheet), "--study", "s"]).exit_code == 0
    r = runner.invoke(app, ["ingest", str(dss), "--study", "s"])
    assert r.exit_code == 0, r.output
    assert "published s/P1-base@v1" in r.output and "3 CpG sites x 1 samples" in r.output
    w = Workspace.open(Settings(data_root=str(tmp_path / "root")))
    try:
        version = w.catalog.resolve("s/P1-base")
        assert (version.modality, version.dataset_type) == ("methylation", "methylation.counts")
    finally:
        w.close()
