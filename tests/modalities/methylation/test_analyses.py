"""Methylation analyses through the pipeline: planted MGMT promoter hypermethylation at
progression is called and flagged by the default ``markers`` analysis; ``regions`` finds
planted DMRs between the arms of a contrast; the CLI's ``methylation regions``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import land
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.contrasts import parse_contrast
from resistomics.knowledge import builtin_methylation_markers
from resistomics.modalities.methylation._artifacts import marker_artifacts
from resistomics.modalities.methylation._simulate import (
    SimulatedMethylation,
    simulate_methylation_cohort,
    write_methylation_files,
)
from resistomics.pipeline import Workspace, analyse, default_analyses, ingest
from shared_data import SHARED_DATA

STUDY = "gbm"
MGMT = next(e for e in builtin_methylation_markers().entries if e.gene == "MGMT")
MLH1 = next(e for e in builtin_methylation_markers().entries if e.gene == "MLH1")


@pytest.fixture(scope="module")
def sim() -> SimulatedMethylation:
    return simulate_methylation_cohort(
        n_subjects=4,
        n_sites=1500,
        seed=5,
        planted_regions=[
            # the real hg19 MGMT promoter CpG island: unmethylated at baseline, then
            # hypermethylated in every progression sample
            {
                "contig": "chr10",
                "start": 131264949,
                "end": 131265710,
                "n_cpgs": 30,
                "baseline": 0.04,
                "progression": 0.8,
            },
            # MLH1's promoter: unmethylated throughout
            {
                "contig": "chr3",
                "start": 37034229,
                "end": 37035356,
                "n_cpgs": 25,
                "baseline": 0.04,
                "progression": 0.04,
            },
        ],
    )


@pytest.fixture(scope="module")
def published(
    tmp_path_factory: pytest.TempPathFactory, sim: SimulatedMethylation
) -> Iterator[tuple[Workspace, str]]:
    tmp = tmp_path_factory.mktemp("meth-analyses")
    settings = Settings(
        data_root=str(tmp / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        modalities={
            "methylation": {
                "sites_per_chunk": 128,
                "annotation_dir": str(SHARED_DATA / "annotation_hg19"),
            }
        },
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
    write_methylation_files(sim, tmp / "src", "bismark-cov")
    out = ingest(ws, land(ws, tmp / "src", STUDY, name="cov", modality="methylation"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version is not None
    yield ws, out.version.ref
    ws.close()


def test_markers_is_a_default_analysis_that_calls_and_flags_planted_mgmt_methylation(
    published: tuple[Workspace, str], sim: SimulatedMethylation
) -> None:
    ws, ref = published
    assert "markers" in default_analyses(ws, ref, study=STUDY)
    run = analyse(ws, ref, "markers", study=STUDY)
    assert run.outcome.status == "published", run.outcome.message
    calls = run.outcome.tables["calls"]
    phase = sim.samples.set_index("sample_id")["phase"]
    mgmt = calls[calls["gene"] == "MGMT"].set_index("sample_id")
    for sid, p in phase.items():
        want = "methylated" if p == "progression" else "unmethylated"
        assert mgmt.loc[sid, "call"] == want, (sid, mgmt.loc[sid].to_dict())
    assert (calls.loc[calls["gene"] == "MLH1", "call"] == "unmethylated").all()
    # no reads at BRCA1 or RAD51C: not covered, and NaN (never 0) methylation
    absent = calls[calls["gene"].isin(["BRCA1", "RAD51C"])]
    assert (absent["call"] == "not-covered").all() and absent["mean_methylation"].isna().all()
    changes = run.outcome.tables["changes"]
    flagged = run.outcome.tables["flagged"]
    assert set(flagged["gene"]) == {"MGMT"} and len(flagged) == 4  # every subject
    assert (flagged["change"] == "gained").all()
    assert (flagged["implication"] == "sensitivity").all()  # MGMT methylation: TMZ response
    assert flagged["flag"].str.contains("temozolomide").all()
    assert flagged["mean_change"].min() > 0.5
    mlh1 = changes[changes["gene"] == "MLH1"]
    assert (mlh1["change"] == "unchanged").all() and not mlh1["flagged"].any()
    assert (changes.loc[changes["gene"] == "RAD51C", "change"] == "not-covered").all()
    qc = run.outcome.tables["qc"].set_index("sample_id")
    assert set(qc.index) == set(phase.index)
    assert (qc["median_depth"] > 5).all() and qc["fraction_covered"].between(0.5, 1).all()
    # the run's artifacts: QC table, marker calls, the flagged changes, a summary
    kinds = {a.key_parts[-1]: a for a in marker_artifacts(ws, run.outcome.version)}
    assert set(kinds) == {"qc", "marker-calls", "marker-changes", "markers"}
    assert "changes flagged under treatment: 4" in (kinds["markers"].markdown or "")
    # idempotent: same input, catalogue and code find the published result
    again = analyse(ws, ref, "markers", study=STUDY)
    assert again.outcome.status == "unchanged"
    assert again.outcome.version.id == run.outcome.version.id


def test_regions_with_a_contrast_finds_the_planted_promoter(
    published: tuple[Workspace, str], sim: SimulatedMethylation, tmp_path: Path
) -> None:
    from resistomics.modalities.methylation._analyses import methylation_regions

    ws, ref = published
    contrast = parse_contrast("phase:progression vs baseline")
    out = methylation_regions(ws, ref, regions="promoters", contrast=contrast, study=STUDY)
    assert out.status == "published", out.message
    regions = out.tables["regions"]
    tested = regions[regions["pval"].notna()]
    # the MGMT and MLH1 promoters are the only promoters with sites; MGMT's differs
    assert len(tested) >= 1
    top = tested.iloc[0]
    assert top["contig"] == "chr10" and top["start"] <= MGMT.start + 1000 <= top["end"]
    assert top["pval_adj"] < 0.05 and top["diff"] > 0.5
    mlh1 = tested[(tested["contig"] == "chr3")]
    assert (mlh1["pval_adj"] > 0.05).all()
    samples = out.tables["region_samples"]
    assert samples["mean_methylation"].isna().any()  # uncovered promoters: NaN
    assert out.version.parameters["regions"] == "promoters"
    # a user BED of the planted DMRs (0-based starts), no contrast
    bed = tmp_path / "dmrs.bed"
    d = sim.dmrs
    bed.write_text(
        "".join(
            f"{r.contig}\t{r.start - 1}\t{r.end}\tdmr{i}\n" for i, r in enumerate(d.itertuples())
        )
    )
    plain = methylation_regions(ws, ref, regions=str(bed), study=STUDY)
    table = plain.tables["regions"].set_index("region_id")
    assert (table["n_sites"] > 0).all() and table["pval"].isna().all()
    got = plain.tables["region_samples"]
    prog = got["sample_id"].map(sim.samples.set_index("sample_id")["phase"]) == "progression"
    for i, r in enumerate(d.itertuples()):
        rows = got["region_id"] == f"dmr{i}"
        diff = (
            got.loc[rows & prog, "mean_methylation"].mean()
            - got.loc[rows & ~prog, "mean_methylation"].mean()
        )
        assert abs(diff - r.delta) < 0.15, (i, diff)  # the planted shift (0 for MLH1)


def test_cli_methylation_regions_help_and_run(
    published: tuple[Workspace, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from resistomics.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["methylation", "regions", "--help"])
    assert res.exit_code == 0, res.output
    for word in ("--bed", "promoters", "cpg-islands", "gene-bodies", "--contrast"):
        assert word in res.output
    ws, ref = published
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", ws.settings.data_root)
    monkeypatch.setenv(
        "RESISTOMICS_MODALITIES__METHYLATION__ANNOTATION_DIR", str(SHARED_DATA / "annotation_hg19")
    )
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    res = runner.invoke(
        app,
        [
            "methylation",
            "regions",
            ref,
            "--bed",
            "cpg-islands",
            "--contrast",
            "phase:progression vs baseline",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "published" in res.output and "chr10" in res.output
    bad = runner.invoke(app, ["methylation", "regions", ref, "--bed", "/no/such.bed"])
    assert bad.exit_code != 0 and "[file-exists]" in bad.output
    assert len(bad.output.strip().splitlines()) == 1
