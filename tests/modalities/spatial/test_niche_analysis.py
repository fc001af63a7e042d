"""The ``niches`` analysis on published spatial datasets: generated cohorts ingested one
section per dataset, program scores from the counts, and the planted oracle — fibroblasts
moved next to program-high tumour cells at progression are found in every patient, and
a null cohort finds nothing — plus idempotence, a new section making a new version, the
refusals, artifacts, plot and CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from resistomics.catalog import SampleRow, VersionInfo
from resistomics.config import ClusterSettings, Settings
from resistomics.contrasts import parse_contrast
from resistomics.errors import AnalysisNotApplicableError, InputError
from resistomics.knowledge import builtin_programs
from resistomics.modalities import modality
from resistomics.modalities.spatial import simulate_niche_cohort
from resistomics.modalities.spatial._niche_analysis import (
    _scores,
    niche_artifacts,
    niches_analysis,
    tumour_types,
)
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import open_spatial
from spatial_files import NICHE_PROGRAM, write_niche_section

CONTRAST = "phase:progression vs baseline"


def _cohort_workspace(tmp: Path, studies: dict[str, object]) -> Workspace:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    for study, cohort in studies.items():
        samples = cohort.samples  # type: ignore[attr-defined]
        ws.catalog.register_study(
            study,
            [
                SampleRow(sample_id=r.section, subject_id=r.patient, phase=r.phase)
                for r in samples.itertuples()
            ],
        )
        for name, section in cohort.sections.items():  # type: ignore[attr-defined]
            folder = tmp / "src" / study
            folder.mkdir(parents=True, exist_ok=True)
            src = write_niche_section(folder, section, seed=len(name) + int(name[1:3]))
            target = Path(ws.settings.resolved_landing_zone) / study / "spatial" / src.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, target)
            out = ingest(ws, str(target), study=study)
            assert out.status == "published", out.message
    return ws


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict[str, object]]:
    tmp = tmp_path_factory.mktemp("niches")
    studies = {
        "planted": simulate_niche_cohort(
            n_patients=6, sections_per_sample=1, n_cells=1200, crowd=0.6, planted=True, seed=4
        ),
        "null": simulate_niche_cohort(
            n_patients=4, sections_per_sample=1, n_cells=800, planted=False, seed=5
        ),
    }
    ws = _cohort_workspace(tmp, studies)
    yield ws, studies
    ws.close()


def _first(ws: Workspace, study: str) -> VersionInfo:
    versions = [v for v in ws.catalog.versions(study=study) if v.dataset_type == "spatial.cells"]
    return versions[0]


def test_program_scores_follow_the_planted_score(
    cohorts: tuple[Workspace, dict[str, object]],
) -> None:
    ws, studies = cohorts
    version = _first(ws, "planted")
    section = studies["planted"].sections[version.dataset]  # type: ignore[attr-defined]
    program = next(s for s in builtin_programs().sets if s.name == NICHE_PROGRAM)
    scores, genes = _scores(
        ws,
        version,
        [(NICHE_PROGRAM, program.genes, "up")],
        ctrl_size=50,
        n_bins=25,
        random_state=0,
    )
    cells = open_spatial(ws.root, ws.root.to_path(version.uri)).obs
    order = cells["cell_id"].str.rsplit("-c", n=1).str[1].astype(int).to_numpy()
    planted = section.values[order, 0]
    tumour = np.isfinite(planted)
    r = np.corrcoef(scores[tumour, 0], planted[tumour])[0, 1]
    assert r > 0.8, r
    assert len(genes[NICHE_PROGRAM]) == len(program.genes)
    flipped, _ = _scores(
        ws,
        version,
        [(NICHE_PROGRAM, program.genes, "down")],
        ctrl_size=50,
        n_bins=25,
        random_state=0,
    )
    np.testing.assert_allclose(flipped[:, 0], -scores[:, 0])


def test_planted_fibroblasts_found_in_every_patient(
    cohorts: tuple[Workspace, dict[str, object]], tmp_path: Path
) -> None:
    ws, _ = cohorts
    version = _first(ws, "planted")
    outcome = niches_analysis(ws, version.ref, contrast=CONTRAST, program=NICHE_PROGRAM)
    assert outcome.status == "published", outcome.message
    result = outcome.version
    assert result.dataset == f"niches.{NICHE_PROGRAM}.phase_progression_vs_baseline"
    assert result.dataset_type == "spatial.niches"
    assert len(result.parent_ids) == 12 and result.parameters["tumour"] == ["tumour"]
    sections = outcome.tables["sections"]
    assert len(sections) == 12 and set(sections["arm"]) == {"baseline", "progression"}
    cohort = outcome.tables["cohort"].set_index(["effect", "test", "neighbour_type"])
    fib = cohort.loc[("difference", "paired_t", "fibroblast")]
    assert fib["fdr"] < 0.05 and fib["mean_change"] > 0
    assert fib["n_increased"] == fib["n_subjects"] == 6
    # the planted type is the strongest change; no other type rises in every patient
    t = outcome.tables["cohort"]
    t = t[(t["effect"] == "difference") & (t["test"] == "paired_t")]
    assert t.sort_values("pvalue")["neighbour_type"].iloc[0] == "fibroblast"
    per = outcome.tables["per_subject"]
    fib_change = per[per["neighbour_type"] == "fibroblast"]["difference_change"]
    assert (fib_change > 0).all() and len(fib_change) == 6

    assert validate_version(ws, result).success
    again = niches_analysis(ws, version.ref, contrast=CONTRAST, program=NICHE_PROGRAM)
    assert again.status == "unchanged" and again.version.id == result.id

    kinds = [a.kind for a in niche_artifacts(ws, result)]
    assert kinds == ["table", "table", "markdown"]
    plot = modality("spatial").analysis("niches").plot
    assert plot is not None
    png = Path(plot(ws, result, tmp_path / "niches.png"))
    assert png.stat().st_size > 5000


def test_null_cohort_finds_nothing(cohorts: tuple[Workspace, dict[str, object]]) -> None:
    ws, _ = cohorts
    version = _first(ws, "null")
    outcome = niches_analysis(
        ws, version.ref, contrast=parse_contrast(CONTRAST), program=NICHE_PROGRAM
    )
    t = outcome.tables["cohort"]
    paired = t[(t["effect"] == "difference") & (t["test"] == "paired_t")]
    assert (paired["fdr"].dropna() > 0.05).all(), paired
    fib = paired.set_index("neighbour_type").loc["fibroblast"]
    assert fib["n_increased"] < fib["n_subjects"] or abs(fib["mean_change"]) < 0.01


def test_default_programs_and_one_dataset_only(
    cohorts: tuple[Workspace, dict[str, object]],
) -> None:
    ws, _ = cohorts
    version = _first(ws, "planted")
    # the panel holds all 14 genes of the persister program and 3+ of EMT? only those
    # programs with >= 3 panel genes are scored by default
    outcome = niches_analysis(ws, version.ref, contrast=CONTRAST, cohort=False)
    programs = outcome.version.parameters["programs"]
    assert NICHE_PROGRAM in programs
    assert set(outcome.tables["per_section"]["program"]) == set(programs)
    assert len(outcome.tables["sections"]) == 1 and len(outcome.version.parent_ids) == 1


def test_refusals_name_the_rule(cohorts: tuple[Workspace, dict[str, object]]) -> None:
    ws, _ = cohorts
    version = _first(ws, "planted")
    with pytest.raises(InputError, match=r"\[program\].*did you mean 'DRUG_TOLERANT_PERSISTER'"):
        niches_analysis(ws, version.ref, contrast=CONTRAST, program="DRUG_TOLERANT_PERSISTR")
    with pytest.raises(InputError, match=r"\[tumour-label\]"):
        niches_analysis(ws, version.ref, contrast=CONTRAST, tumour="melanocyte")
    with pytest.raises(InputError, match=r"\[contrast-column\]"):
        niches_analysis(ws, version.ref, contrast="arm:late vs early")
    with pytest.raises(InputError, match=r"\[contrast-arm\].*did you mean 'baseline'"):
        niches_analysis(ws, version.ref, contrast="phase:progression vs basline")
    other = parse_contrast(CONTRAST, ["subject_id=P02"])  # not the subject of P01's section
    with pytest.raises(AnalysisNotApplicableError, match=r"\[contrast-sections\]"):
        niches_analysis(ws, version.ref, contrast=other, cohort=False)
    with pytest.raises(AnalysisNotApplicableError, match=r"\[tumour-label\]"):
        tumour_types(["fibroblast", "T cell"], None, "x")
    assert tumour_types(["Malignant", "T cell", "tumor_2"], None, "x") == ["Malignant", "tumor_2"]


def test_cli_niches(
    cohorts: tuple[Workspace, dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    ws, _ = cohorts
    version = _first(ws, "planted")
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", ws.settings.data_root)
    monkeypatch.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
    monkeypatch.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
    runner = CliRunner()
    r = runner.invoke(app, ["spatial", "niches", "--help"])
    assert r.exit_code == 0 and "--contrast" in r.output and "--tumour" in r.output, r.output
    args = ["spatial", "niches", version.ref, "--program", NICHE_PROGRAM, "--contrast", CONTRAST]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "fibroblast" in r.output and "12 section(s) of 6 subject(s)" in r.output, r.output
    r = runner.invoke(app, [*args[:-1], "phase:progression vs basline"])
    assert r.exit_code != 0 and "did you mean 'baseline'" in r.output, r.output


def test_the_analyse_plan_runs_niches_per_contrast(
    cohorts: tuple[Workspace, dict[str, object]],
) -> None:
    from resistomics.pipeline import analysis_plan, run_step

    ws, _ = cohorts
    version = _first(ws, "planted")
    assert [s.analysis for s in analysis_plan(ws, version.ref).steps] == ["nhood"]
    ws.catalog.save_contrast("planted", column="phase", group_a="progression", group_b="baseline")
    plan = analysis_plan(ws, version.ref)
    steps = [s for s in plan.steps if s.analysis == "niches"]
    assert len(steps) == 1 and steps[0].contrast == "phase:progression vs baseline"
    # the deployment's default programs are those with 3 genes in the panel: here only
    # the persister program, so it finds the result the explicit call published
    run = run_step(ws, version.ref, steps[0])
    assert run.outcome.version.dataset == f"niches.{NICHE_PROGRAM}.phase_progression_vs_baseline"
