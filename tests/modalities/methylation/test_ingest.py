"""Methylation ingest through the pipeline: streamed store, format parity, quarantines."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import land
from resistomics.catalog import SampleRow, VersionStatus
from resistomics.config import ClusterSettings, Settings
from resistomics.modalities.methylation._merge import contig_rank
from resistomics.modalities.methylation._simulate import (
    SimulatedMethylation,
    simulate_methylation_cohort,
    write_methylation_files,
)
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_feature_matrix
from resistomics.storage._feature_matrix import inspect_feature_matrix

STUDY = "meth"
# far smaller than the cohort: every stage streams many pieces
SMALL = {"rows_per_chunk": 53, "sites_per_chunk": 64, "samples_per_chunk": 3}


@pytest.fixture(scope="module")
def sim() -> SimulatedMethylation:
    return simulate_methylation_cohort(n_subjects=3, n_sites=1200, dropout=0.25, seed=11)


def _workspace(tmp_path: Path, sim: SimulatedMethylation, **methylation: object) -> Workspace:
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        modalities={"methylation": {**SMALL, **methylation}},
    )
    ws = Workspace.open(settings)
    ws.catalog.register_study(
        STUDY,
        [
            SampleRow(
                sample_id=r.sample_id, subject_id=r.subject_id, phase=r.phase, timepoint=r.timepoint
            )
            for r in sim.samples.itertuples()
        ],
    )
    return ws


@pytest.fixture
def ws(tmp_path: Path, sim: SimulatedMethylation) -> Iterator[Workspace]:
    w = _workspace(tmp_path, sim)
    yield w
    w.close()


def _oracle(sim: SimulatedMethylation, ids: list[str]) -> pd.DataFrame:
    joined = None
    for s in ids:
        part = sim.calls[s].set_index(["contig", "position"])[["methylated", "total"]]
        part.columns = [f"m:{s}", f"t:{s}"]
        joined = part if joined is None else joined.join(part, how="outer")
    assert joined is not None
    out = joined.fillna(0).astype("int64").reset_index()
    out["rank"] = out["contig"].map(contig_rank())
    return out.sort_values(["rank", "position"]).drop(columns="rank").reset_index(drop=True)


def test_streamed_ingest_in_every_format_stores_the_outer_join(
    ws: Workspace, sim: SimulatedMethylation, tmp_path: Path
) -> None:
    stores = {}
    for fmt in ("bismark-cov", "bismark-report", "modkit", "methyldackel", "dss"):
        folder = tmp_path / "src" / fmt
        write_methylation_files(sim, folder, fmt, gzip_files=fmt in ("bismark-cov", "dss"))
        path = land(ws, folder, STUDY, name=fmt, modality="methylation")
        out = ingest(
            ws,
            path,
            study=STUDY,
            fmt=fmt,
            options={"merge_strands": True} if fmt in ("bismark-report", "modkit") else None,
        )
        assert out.status == "published", out.message
        version = out.version
        assert version is not None and version.dataset_type == "methylation.counts"
        store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
        assert store.chunks == (64, 3) and store.sorted_by == ("contig", "position")
        inspect_feature_matrix(ws.root, ws.root.to_path(version.uri))
        assert validate_version(ws, version).success
        stores[fmt] = store
    ids = stores["dss"].samples["sample_id"].tolist()
    want = _oracle(sim, ids)
    assert len(want) > 10 * 64  # many chunk rows, every file read in many pieces
    for fmt, store in stores.items():
        feats = store.features
        assert feats["contig"].tolist() == want["contig"].tolist(), fmt
        assert feats["position"].tolist() == want["position"].tolist(), fmt
        assert store.samples["sample_id"].tolist() == ids
        m = np.asarray(store.array("methylated"))
        t = np.asarray(store.array("total"))
        assert m.dtype == np.int32 and t.dtype == np.int32
        np.testing.assert_array_equal(m, want[[f"m:{s}" for s in ids]].to_numpy(), err_msg=fmt)
        np.testing.assert_array_equal(t, want[[f"t:{s}" for s in ids]].to_numpy(), err_msg=fmt)
    samples = stores["bismark-cov"].samples
    assert {"subject_id", "phase", "timepoint", "source_file", "n_percent_discrepant"} <= set(
        samples
    )
    assert (samples["n_percent_discrepant"] == 0).all()


def test_percent_rounding_of_a_file_is_tolerated_but_not_a_wrong_percent(
    ws: Workspace, sim: SimulatedMethylation, tmp_path: Path
) -> None:
    folder = tmp_path / "cov"
    write_methylation_files(sim, folder, "bismark-cov")
    victim = folder / "P2-base.bismark.cov"
    lines = victim.read_text().splitlines()
    f = lines[10].split("\t")
    f[3] = str(float(f[3]) + 0.3 if float(f[3]) < 50 else float(f[3]) - 0.3)  # rounding: fine
    lines[10] = "\t".join(f)
    f = lines[20].split("\t")
    f[3] = "100" if float(f[3]) < 50 else "0"  # a wrong percentage
    lines[20] = "\t".join(f)
    victim.write_text("\n".join(lines) + "\n")
    before = ws.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    out = ingest(ws, land(ws, folder, STUDY, name="cov", modality="methylation"), study=STUDY)
    assert out.status == "quarantined", out.message
    assert "[validation]" in out.message and "percent-consistent" in out.message
    assert "line 21" in out.message and len(out.message.splitlines()) == 1
    assert ws.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED) == before


def _dss(folder: Path, rows: dict[str, list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for s, lines in rows.items():
        (folder / f"{s}.txt").write_text("chr\tpos\tN\tX\n" + "\n".join(lines) + "\n")
    return folder


GOOD = ["chr1\t10\t5\t2", "chr1\t20\t6\t3", "chr2\t5\t4\t4"]


def _one_bad(line: str, at: int = 1) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        bad = [*GOOD]
        bad[at] = line
        return _dss(folder, {"P1-base": GOOD, "P1-prog": bad})

    return build


def _truncated(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = "chr\tpos\tN\tX\n" + "".join(f"chr1\t{p}\t5\t2\n" for p in range(1, 30001))
    data = gzip.compress(text.encode(), mtime=0)
    (folder / "P1-base.txt.gz").write_bytes(data[: len(data) // 2])
    return folder


def _unregistered(folder: Path) -> Path:
    return _dss(folder, {"P1-base": GOOD, "P9-base": GOOD})


READ_FAILURES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "unsorted": (_one_bad("chr1\t5\t6\t3", at=1), "sorted-positions"),
    "duplicate": (_one_bad("chr1\t10\t6\t3", at=1), "duplicate-site"),
    "non-integer": (_one_bad("chr1\t20\t6\t2.5"), "integer-counts"),
    "short-row": (_one_bad("chr1\t20\t6"), "field-count"),
    "truncated-gzip": (_truncated, "gzip-integrity"),
    "unregistered": (_unregistered, "registered-samples"),
}


@pytest.mark.parametrize("kind", sorted(READ_FAILURES))
def test_unreadable_files_are_quarantined_and_nothing_changes(
    ws: Workspace, tmp_path: Path, kind: str
) -> None:
    build, rule = READ_FAILURES[kind]
    before = ws.catalog.snapshot()
    out = ingest(
        ws, land(ws, build(tmp_path / kind), STUDY, name=kind, modality="methylation"), study=STUDY
    )
    assert out.status == "quarantined", out.message
    assert f"[{rule}]" in out.message and len(out.message.splitlines()) == 1, out.message
    assert out.report["stage"] == "read" and out.report["rule"] == rule
    assert ws.catalog.snapshot() == before
    assert not (Path(ws.settings.data_root) / "datasets").exists() or not any(
        (Path(ws.settings.data_root) / "datasets").rglob("*.zarr")
    )


VALIDATION_FAILURES: dict[str, tuple[Callable[[Path], Path], str, dict[str, object]]] = {
    "methylated-above-total": (_one_bad("chr1\t20\t3\t5"), "methylated-within-total", {}),
    "negative-count": (_one_bad("chr1\t20\t-3\t-5"), "non-negative-counts", {}),
    "position-zero": (_one_bad("chr1\t0\t3\t1", at=0), "positive-position", {}),
    "unknown-contig": (_one_bad("chrZZ\t5\t4\t4", at=2), "known-contigs", {}),
    "not-in-chrom-sizes": (_one_bad("chr2\t5\t4\t4", at=2), "known-contigs", {"contigs": ["chr1"]}),
    "shallow": (lambda f: _dss(f, {"P1-base": GOOD}), "median-depth", {"min_median_depth": 8}),
    "sparse": (
        lambda f: _dss(f, {"P1-base": GOOD, "P1-prog": ["chr3\t1\t9\t9"]}),
        "fraction-covered",
        {"min_fraction_covered": 0.5},
    ),
}


@pytest.mark.parametrize("kind", sorted(VALIDATION_FAILURES))
def test_invalid_values_are_quarantined_by_validation(
    tmp_path: Path, sim: SimulatedMethylation, kind: str
) -> None:
    build, rule, settings = VALIDATION_FAILURES[kind]
    w = _workspace(tmp_path, sim, **settings)
    try:
        out = ingest(
            w,
            land(w, build(tmp_path / kind), STUDY, name=kind, modality="methylation"),
            study=STUDY,
        )
        assert out.status == "quarantined", out.message
        assert "[validation]" in out.message and rule in out.message, out.message
        assert len(out.message.splitlines()) == 1
        assert out.version is not None and out.version.status == VersionStatus.QUARANTINED
        assert not w.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    finally:
        w.close()


def test_chrom_sizes_order_contigs_and_bound_positions(
    tmp_path: Path, sim: SimulatedMethylation
) -> None:
    sizes = tmp_path / "hg.chrom.sizes"
    sizes.write_text("chr2\t100\nchr1\t15\n")
    w = _workspace(tmp_path, sim, chrom_sizes=str(sizes))
    try:
        folder = _dss(tmp_path / "ok", {"P1-base": ["chr2\t5\t4\t4", "chr1\t10\t5\t2"]})
        out = ingest(w, land(w, folder, STUDY, name="ok", modality="methylation"), study=STUDY)
        assert out.status == "published", out.message
        assert out.version is not None
        store = open_feature_matrix(w.root, w.root.to_path(out.version.uri))
        assert store.features["contig"].tolist() == ["chr2", "chr1"]
        folder = _dss(tmp_path / "long", {"P1-prog": ["chr1\t10\t5\t2", "chr1\t20\t6\t3"]})
        out = ingest(w, land(w, folder, STUDY, name="long", modality="methylation"), study=STUDY)
        assert out.status == "quarantined" and "within-contig" in out.message, out.message
    finally:
        w.close()


def test_real_rrbs_cohort_from_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 16 Bismark coverage files of ../shared/data/methylation_rrbs, as a folder,
    through ``resistomics study register`` and ``resistomics ingest``: the store is the
    outer join of the files (pandas), every count as given."""
    from typer.testing import CliRunner

    from flows.cli import app
    from shared_data import SHARED_DATA

    rrbs = SHARED_DATA / "methylation_rrbs"
    if not rrbs.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    folder = tmp_path / "rrbs"
    folder.mkdir()
    for f in rrbs.glob("*.bismark.cov.gz"):
        (folder / f.name).write_bytes(f.read_bytes())
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(tmp_path / "root"))
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    monkeypatch.setenv("RESISTOMICS_MODALITIES__METHYLATION__SITES_PER_CHUNK", "1000")
    runner = CliRunner()
    r = runner.invoke(app, ["study", "register", str(rrbs / "samples.tsv"), "--study", "rrbs"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["ingest", str(folder), "--study", "rrbs", "--modality", "methylation"])
    assert r.exit_code == 0, r.output
    assert "published rrbs/rrbs@v1" in r.output and "CpG sites x 16 samples" in r.output
    ws = Workspace.open(Settings(data_root=str(tmp_path / "root")))
    try:
        version = ws.catalog.resolve("rrbs/rrbs")
        store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
        ids = store.samples["sample_id"].tolist()
        assert sorted(ids) == sorted(f"Sample{i}" for i in range(1, 17))
        assert {"case", "cell"} <= set(store.samples.columns)  # the design travels along
        frames = []
        for s in ids:
            d = pd.read_csv(
                rrbs / f"{s}.bismark.cov.gz",
                sep="\t",
                header=None,
                names=["c", "p", "e", "pct", "m", "u"],
            ).set_index(["c", "p"])
            frames.append(pd.DataFrame({f"m:{s}": d["m"], f"t:{s}": d["m"] + d["u"]}))
        want = pd.concat(frames, axis=1).fillna(0).astype("int64").reset_index()
        want["rank"] = want["c"].map(contig_rank())
        want = want.sort_values(["rank", "p"]).reset_index(drop=True)
        assert store.features["position"].tolist() == want["p"].tolist()
        np.testing.assert_array_equal(
            np.asarray(store.array("total")), want[[f"t:{s}" for s in ids]].to_numpy()
        )
        np.testing.assert_array_equal(
            np.asarray(store.array("methylated")), want[[f"m:{s}" for s in ids]].to_numpy()
        )
    finally:
        ws.close()
    one = tmp_path / "one.CpG_report.txt"
    one.write_text("chr1\t10\t+\t2\t1\tCG\tCGT\nchr1\t11\t-\t1\t3\tCG\tCGA\n")
    r = runner.invoke(
        app,
        [
            "ingest",
            str(one),
            "--study",
            "rrbs",
            "--modality",
            "methylation",
            "--sample",
            "Sample3",
            "--merge-strands",
            "true",
        ],
    )
    assert r.exit_code == 0 and "1 CpG sites x 1 samples" in r.output, r.output
    r = runner.invoke(
        app,
        [
            "ingest",
            str(one),
            "--study",
            "rrbs",
            "--modality",
            "methylation",
            "--modification",
            "??",
        ],
    )
    assert r.exit_code == 1 and "--modification '??': [option]" in r.stderr, r.output
