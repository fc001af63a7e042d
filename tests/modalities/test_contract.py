"""The modality contract: every registered modality, built-in or plugin, must pass these.

Each modality provides a good file, a file its reader refuses and a file that reads but
fails validation (:data:`SAMPLES`); the suite then checks what the platform promises for
any modality: reader errors are one-line ``InputError``s naming file, rule and place; a
bad file is quarantined and the catalog and stored bytes stay as they were; a published
version re-validates, passes the integrity check, survives garbage collection, exports,
and its default analyses publish results. A new modality gets these tests by adding its
samples here (the first test fails until it does).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import toy_modality
from atac_files import break_peaks, peaks_of, write_peak_matrix
from resistomics.catalog import SampleRow, VersionStatus
from resistomics.errors import AnalysisNotApplicableError
from resistomics.knowledge import builtin_programs
from resistomics.modalities import modality, modality_names
from resistomics.pipeline import (
    Workspace,
    analysis_plan,
    check_integrity,
    collect_garbage,
    ingest,
    run_step,
    validate_version,
)
from resistomics.publishing import layout_of
from resistomics.simulate import MAF_COLUMNS
from spatial_files import write_sdata

STUDY = "contract"
SAMPLES_IDS = [f"S{i}" for i in range(6)]


def _counts(folder: Path) -> Path:
    """Counts of every built-in program gene plus filler (scoring needs control bins)."""
    programs = builtin_programs().as_mapping()
    genes = sorted({g for members in programs.values() for g in members})
    genes += [f"GENE{i:04d}" for i in range(400 - len(genes))]
    rng = np.random.default_rng(0)
    means = rng.lognormal(3.0, 1.0, size=len(genes))
    lines = ["gene_id\t" + "\t".join(SAMPLES_IDS)]
    for g, mu in zip(genes, means, strict=True):
        lines.append(f"{g}\t" + "\t".join(str(int(v)) for v in rng.poisson(mu, len(SAMPLES_IDS))))
    path = folder / "counts.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _counts_bad(folder: Path) -> Path:
    path = folder / "counts.tsv"
    path.write_text("gene_id\tS0\tS1\nG1\t3\t4\nG2\t5\tlots\n")
    return path


def _counts_invalid(folder: Path) -> Path:
    path = folder / "counts.tsv"
    path.write_text("gene_id\tS0\tS1\nG1\t3\t4\nG1\t5\t6\n")  # a gene ID twice
    return path


def _maf(folder: Path, *, vaf_above_one: bool = False) -> Path:
    rows = []
    for i, s in enumerate(SAMPLES_IDS):
        for gene, pos in (("ESR1", 152419920), ("TP53", 7675088)):
            alt = 30 if i % 2 else 0
            depth = 100 if not vaf_above_one else 20
            rows.append(
                [
                    gene,
                    "6",
                    str(pos),
                    "A",
                    "C",
                    s,
                    "p.Y537S",
                    "Missense_Mutation",
                    str(max(depth - alt, 0)),
                    str(alt),
                    str(depth),
                ]
            )
    path = folder / "calls.maf"
    path.write_text("\n".join("\t".join(r) for r in [MAF_COLUMNS, *rows]) + "\n")
    return path


def _maf_bad(folder: Path) -> Path:
    path = folder / "calls.maf"
    path.write_text("\t".join(MAF_COLUMNS[:3]) + "\nESR1\t6\t1\n")  # required columns missing
    return path


def _toy(folder: Path) -> Path:
    return toy_modality.write_good(folder / "values.toy", SAMPLES_IDS)


def _toym_bad(folder: Path) -> Path:
    """A toym file whose sixth row is not a number (rule toym-number, line 7)."""
    path = toy_modality.write_matrix(folder / "values.toym", SAMPLES_IDS)
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace("\t5\t", "\tlots\t", 1)
    path.write_text("\n".join(lines) + "\n")
    return path


def _cov_folder(folder: Path, *, bad: str | None = None) -> Path:
    """A folder of Bismark coverage files, one per sample, with different site sets;
    ``bad="integer"`` puts a non-integer count on line 3 of S2's file, ``"above"`` makes
    S1's file hold more methylated than total reads (through a negative unmethylated
    count), which reads but fails validation."""
    out = folder / "cohort"
    out.mkdir(parents=True, exist_ok=True)
    for i, s in enumerate(SAMPLES_IDS):
        lines = []
        for k in range(40):
            if (k + i) % 7 == 0:
                continue  # each sample misses other sites
            m, u = (k * 3 + i) % 11, (k + 2 * i) % 5 + 1
            lines.append(
                f"chr{1 + k // 20}\t{1000 + 37 * k}\t{1000 + 37 * k}\t{100 * m / (m + u):.4f}\t{m}\t{u}"
            )
        if bad == "integer" and s == "S2":
            fields = lines[2].split("\t")
            lines[2] = "\t".join([*fields[:4], "2.5", fields[5]])
        if bad == "above" and s == "S1":
            lines[4] = "chr1\t9\t9\t0\t5\t-2"
            lines = [lines[4], *lines[:4], *lines[5:]]
        (out / f"{s}.bismark.cov").write_text("\n".join(lines) + "\n")
    return out


def _metab(folder: Path, *, bad: str | None = None) -> Path:
    """A MetaboAnalyst table, samples as rows, with a pooled QC and a blank (never
    registered); ``bad="number"`` puts text in a cell, ``"negative"`` a negative abundance
    (reads, fails validation)."""
    features = [f"M{i}" for i in range(8)]
    lines = ["Sample,Label," + ",".join(features)]
    for j, s in enumerate([*SAMPLES_IDS, "QC_pool_1", "blank_01"]):
        values = [f"{(i + 1) * (j + 1) / 3:.6g}" for i in range(len(features))]
        if j == 2:
            values[3] = ""  # missing
        if bad == "number" and j == 3:
            values[5] = "high"
        if bad == "negative" and j == 1:
            values[2] = "-0.5"
        lines.append(f"{s},{'A' if j % 2 else 'B'}," + ",".join(values))
    path = folder / "abundance.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _peak_matrix(folder: Path, *, bad: str | None = None) -> Path:
    """A Cell Ranger ATAC peak matrix, 30 barcodes of the six samples x 24 peaks;
    ``bad="interval"`` plants a peak with start >= end (refused by the reader),
    ``"negative"`` a negative count (reads, fails validation)."""
    x = np.random.default_rng(2).poisson(1.0, (30, 24)).astype(np.float64)
    if bad == "negative":
        x[4, 7] = -3
    peaks = peaks_of(24)
    if bad == "interval":
        peaks = break_peaks(peaks, "start-after-end")
    barcodes = [f"AAACG{i:05d}-1" for i in range(30)]
    samples = [SAMPLES_IDS[i % len(SAMPLES_IDS)] for i in range(30)]
    return write_peak_matrix(folder / "filtered_peak_bc_matrix", x, peaks, barcodes, samples)


@dataclass(frozen=True)
class Samples:
    """A modality's sample files: each writer puts one file (or folder) into a folder."""

    good: Callable[[Path], Path]
    bad: Callable[[Path], Path]
    invalid: Callable[[Path], Path]


SAMPLES: dict[str, Samples] = {
    "expression": Samples(_counts, _counts_bad, _counts_invalid),
    "variants": Samples(_maf, _maf_bad, lambda f: _maf(f, vaf_above_one=True)),
    "toy": Samples(
        _toy,
        lambda f: toy_modality.write_bad(f / "values.toy", SAMPLES_IDS),
        lambda f: toy_modality.write_invalid(f / "values.toy", SAMPLES_IDS),
    ),
    "methylation": Samples(
        _cov_folder,
        lambda f: _cov_folder(f, bad="integer"),
        lambda f: _cov_folder(f, bad="above"),
    ),
    "metabolomics": Samples(
        _metab, lambda f: _metab(f, bad="number"), lambda f: _metab(f, bad="negative")
    ),
    "spatial": Samples(
        lambda f: write_sdata(f, "S0"),
        lambda f: write_sdata(f, "S0", bad="no-gene"),
        lambda f: write_sdata(f, "S0", bad="nan"),
    ),
    "accessibility": Samples(
        _peak_matrix,
        lambda f: _peak_matrix(f, bad="interval"),
        lambda f: _peak_matrix(f, bad="negative"),
    ),
    # the dense feature-matrix@1 layout, as methylation and metabolomics store it
    "toymatrix": Samples(
        lambda f: toy_modality.write_matrix(f / "values.toym", SAMPLES_IDS),
        _toym_bad,
        lambda f: toy_modality.write_matrix(f / "values.toym", SAMPLES_IDS, negative=True),
    ),
}


def test_every_registered_modality_has_contract_samples(toy_plugin: Path) -> None:
    missing = set(modality_names()) - set(SAMPLES)
    assert not missing, f"add sample files for {sorted(missing)} to SAMPLES"


@pytest.fixture(params=sorted(SAMPLES))
def name(request: pytest.FixtureRequest, toy_plugin: Path) -> str:
    return str(request.param)


@pytest.fixture
def study(workspace: Workspace) -> Workspace:
    rows = [
        SampleRow(
            sample_id=s,
            subject_id=f"P{i // 2}",
            phase="baseline" if i % 2 == 0 else "relapse",
            timepoint=0 if i % 2 == 0 else 100,
        )
        for i, s in enumerate(SAMPLES_IDS)
    ]
    workspace.catalog.register_study(STUDY, rows)
    return workspace


def _land(ws: Workspace, name: str, write: Callable[[Path], Path], tmp: Path) -> str:
    folder = Path(ws.settings.resolved_landing_zone) / STUDY / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    src = write(tmp)
    target = folder / src.name
    src.rename(target)
    return str(target)


def _stored(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not {"quarantine", "landing"} & set(p.parts)
        and not p.name.startswith("catalog.sqlite")
    }


@pytest.fixture
def published(study: Workspace, name: str, tmp_path: Path) -> Iterator[tuple[Workspace, str]]:
    out = ingest(study, _land(study, name, SAMPLES[name].good, tmp_path / "good"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None and out.version.modality == name
    yield study, out.version.ref


def test_bad_file_is_quarantined_with_one_line_and_nothing_changes(
    published: tuple[Workspace, str], name: str, tmp_path: Path
) -> None:
    ws, _ = published
    before = ws.catalog.snapshot()
    root = Path(ws.settings.data_root)
    stored = _stored(root)
    path = _land(ws, name, SAMPLES[name].bad, tmp_path / "bad")
    out = ingest(ws, path, study=STUDY)
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1
    assert Path(path).name in out.message and f"[{out.report['rule']}]" in out.message
    assert out.report["stage"] == "read" and out.report["location"], out.report  # the place
    assert ws.catalog.snapshot() == before
    assert _stored(root) == stored
    assert not ws.catalog.versions(study=STUDY, status=VersionStatus.STAGED)
    assert out.quarantine_uri is not None and (Path(out.quarantine_uri) / "report.json").exists()


def test_invalid_file_is_quarantined_by_validation(
    study: Workspace, name: str, tmp_path: Path
) -> None:
    out = ingest(
        study, _land(study, name, SAMPLES[name].invalid, tmp_path / "invalid"), study=STUDY
    )
    assert out.status == "quarantined", out.message
    assert "[validation]" in out.message and len(out.message.splitlines()) == 1
    assert out.version is not None and out.version.status == VersionStatus.QUARANTINED
    assert not study.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)


def test_published_version_revalidates(published: tuple[Workspace, str]) -> None:
    ws, ref = published
    report = validate_version(ws, ws.catalog.resolve(ref))
    assert report.success, report.markdown()


def test_published_version_passes_the_integrity_check(published: tuple[Workspace, str]) -> None:
    ws, ref = published
    mine = [c for c in check_integrity(ws) if c.ref == ref]
    assert {c.check for c in mine} >= {"exists", "opens", "source-digest"}
    assert all(c.result == "ok" for c in mine), mine


def test_garbage_collection_keeps_published_data(published: tuple[Workspace, str]) -> None:
    ws, ref = published
    version = ws.catalog.resolve(ref)
    found = collect_garbage(ws, older_than=timedelta(0))
    assert not [f for f in found if ws.root.to_path(version.uri) in f.path]
    assert Path(ws.root.to_path(version.uri)).is_dir()


def test_published_version_exports_and_revalidates_through_the_cli(
    published: tuple[Workspace, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cli import app

    ws, ref = published
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", ws.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    runner = CliRunner()
    r = runner.invoke(app, ["validate", ref])
    assert r.exit_code == 0, r.output
    version = ws.catalog.resolve(ref)
    spec = layout_of(version)
    assert spec.tables is not None
    first = spec.tables(ws.root, ws.root.to_path(version.uri))[0]
    out = tmp_path / "export.tsv"
    r = runner.invoke(app, ["export", ref, "--table", first, "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert len(out.read_text().splitlines()) > 1
    for fmt in spec.exports:  # whole-store formats of the layout (h5ad of a matrix)
        whole = tmp_path / f"export.{fmt}"
        r = runner.invoke(app, ["export", ref, "--format", fmt, "-o", str(whole)])
        assert r.exit_code == 0, r.output
        if fmt == "h5ad":
            import anndata

            adata = anndata.read_h5ad(whole, backed="r")
            assert sorted(adata.shape) == sorted(version.shape), (adata.shape, version.shape)


def test_default_analyses_publish_results(published: tuple[Workspace, str], name: str) -> None:
    ws, ref = published
    plan = analysis_plan(ws, ref)
    plugin = modality(name)
    assert plan.steps or not plugin.default_analyses(), plan.notes
    done: dict[str, str] = {}
    for step in plan.steps:
        a = plugin.analysis(step.analysis)
        given = done[step.consumes] if step.consumes else None
        try:
            runs = [run_step(ws, ref, step, input_ref=given) for _ in range(2)]
        except AnalysisNotApplicableError as exc:
            # a default analysis this sample cannot have (e.g. no identifiers): the
            # deployment notes it; it names its place and rule like any refusal
            assert f"[{exc.rule}]" in str(exc) and "\n" not in str(exc), exc
            continue
        assert runs[0].outcome.status == "published", runs[0].outcome.message
        result = runs[0].outcome.version
        assert result.kind == "result" and result.dataset_type == a.result_type
        assert result.modality == name
        assert runs[1].outcome.status == "unchanged"
        done[step.key] = result.ref
