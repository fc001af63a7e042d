"""``enrich`` and ``programs`` on published Su 2020 results: the analyses, their
artifacts, plots and CLI (oracle: the tryptophan-kynurenine shift of COVID-19)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scipy import stats

import su2020
from conftest import land
from resistomics.catalog import parse_sample_sheet
from resistomics.config import ClusterSettings, Settings
from resistomics.contrasts import parse_contrast
from resistomics.errors import InputError, MethodInputError
from resistomics.knowledge import builtin_metabolic_programs
from resistomics.modalities import modality
from resistomics.modalities.metabolomics._analyses import differential_abundance
from resistomics.modalities.metabolomics._enrich_analysis import enrich_sets, score_programs
from resistomics.pipeline import Workspace, ingest

COVID = "group:COVID19 vs Healthy Donor"


@pytest.fixture(scope="module")
def su_da(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, Path, str]]:
    """Su 2020's raw table ingested and tested COVID19 vs Healthy Donor once."""
    if not su2020.SU2020.is_dir():
        pytest.skip("shared Su 2020 data not present")
    root = tmp_path_factory.mktemp("su-enrich") / "root"
    ws = Workspace.open(
        Settings(
            data_root=str(root),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    ws.catalog.register_study("su", parse_sample_sheet(su2020.SU2020 / "samples.tsv"))
    path = land(ws, su2020.SU2020 / "Su_metab_data_raw.csv.gz", "su", modality="metabolomics")
    out = ingest(
        ws,
        path,
        study="su",
        modality="metabolomics",
        options={"extra_columns": ["WHO_status"], "keep_all_missing": True},
    )
    assert out.status == "published", out.message
    da = differential_abundance(ws, "su/Su_metab_data_raw", parse_contrast(COVID))
    yield ws, root, da.version.ref
    ws.close()


def test_enrich_builtin_and_reactome_on_su2020(
    su_da: tuple[Workspace, Path, str], tmp_path: Path
) -> None:
    ws, _, da = su_da
    out = enrich_sets(ws, da, sets="builtin")
    assert out.status == "published"
    table = out.tables["enrichment"].set_index("set_id")
    trp = table.loc["TRYPTOPHAN_KYNURENINE"]
    assert trp["method"] == "fry" and trp["direction"] == "Up" and trp["q"] < 1e-6
    assert trp["n_measured"] >= 5
    features = out.tables["features"]
    assert len(features) == out.version.parameters["n_features"]  # every feature listed
    assert features.set_index("feature_id").loc["quinolinate", "chebi"] == "CHEBI:16675"
    assert features["reason"].notna().sum() == features["chebi"].isna().sum()
    assert out.version.parameters["set_version"] == "2026.12.1"
    assert enrich_sets(ws, da, sets="builtin").status == "unchanged"
    # Reactome through the settings-free parameter; Tryptophan catabolism has its row
    rx = enrich_sets(ws, da, sets="reactome", reactome=str(su2020.REACTOME))
    row = rx.tables["enrichment"].set_index("set_id").loc["R-HSA-71240"]
    assert row["name"] == "Tryptophan catabolism" and row["tested"] and row["q"] < 0.05
    for method in ("rank", "ora"):
        res = enrich_sets(ws, da, sets="builtin", method=method).tables["enrichment"]
        assert res["tested"].all() and set(res["method"]) == {method}
    plugin = modality("metabolomics")
    analysis = plugin.analysis("enrich")
    arts = analysis.artifacts(ws, out.version)  # type: ignore[misc]
    assert arts[0].table is not None and arts[0].table.iloc[0]["set_id"] in set(table.index)
    assert "features have a ChEBI ID" in arts[1].markdown  # type: ignore[operator]
    png = analysis.plot(ws, out.version, tmp_path / "bars.png", top=9)  # type: ignore[misc]
    assert Path(png).stat().st_size > 10_000
    with pytest.raises(InputError, match="reactome"):
        enrich_sets(ws, da, sets="reactome")
    with pytest.raises(MethodInputError, match=r"metabolomics\.da"):
        enrich_sets(ws, "su/Su_metab_data_raw", sets="builtin")


def test_reactome_ora_on_su2020_ranks_tryptophan_catabolism_first_but_cannot_reach_fdr(
    su_da: tuple[Workspace, Path, str],
) -> None:
    """ORA (hypergeometric, universe the measured features with a ChEBI ID) on Reactome:
    every measured member of Tryptophan catabolism (R-HSA-71240) is selected, and the set
    comes first of all sets by p; yet its p is the hypergeometric's floor for a set of
    that size, C(n, K) / C(N, K), because 35 of the 45 features with a ChEBI ID are at
    FDR < 0.05 (two thirds of Su 2020's metabolites changed): no selection of 8 members
    can be rarer than about (35/45)^8, so the set is not enriched at FDR < 0.05 after BH
    over the tested sets. Not the identifiers (no measured member is missed) nor the
    universe (with the 216 names the Su 2020 tables pair: N 228, n 148, p 0.029, q 0.99): the test's
    power. fry, self-contained, finds it (q < 0.05, above)."""
    ws, _, da = su_da
    out = enrich_sets(ws, da, sets="reactome", method="ora", reactome=str(su2020.REACTOME))
    table = out.tables["enrichment"]
    row = table.set_index("set_id").loc["R-HSA-71240"]
    big_n = int(out.version.parameters["n_with_chebi"])
    big_k, k = int(row["n_measured"]), int(row["n_selected"])
    n = round(row["expected"] * big_n / big_k)
    assert row["name"] == "Tryptophan catabolism" and row["tested"]
    assert (big_n, n, big_k, k) == (45, 35, 8, 8)  # every measured member selected
    assert table.sort_values("p").iloc[0]["set_id"] == "R-HSA-71240"
    floor = stats.hypergeom.pmf(big_k, big_n, big_k, n)  # = C(n, K) / C(N, K)
    assert row["p"] == pytest.approx(floor, rel=1e-10) and row["p"] == pytest.approx(
        0.1092, abs=1e-4
    )
    assert row["q"] >= 0.05


def test_programs_follow_covid_on_su2020(
    su_da: tuple[Workspace, Path, str], tmp_path: Path
) -> None:
    ws, _, _ = su_da
    out = score_programs(ws, "su/Su_metab_data_raw")
    scores = out.tables["scores"]
    trp = scores[scores["program"] == "TRYPTOPHAN_KYNURENINE"]
    covid = trp.loc[trp["group"] == "COVID19", "score"]
    healthy = trp.loc[trp["group"] == "Healthy Donor", "score"]
    assert stats.mannwhitneyu(covid, healthy).pvalue < 1e-10 and covid.median() > 0
    assert set(scores["program"]) == {s.set_id for s in builtin_metabolic_programs().sets}
    analysis = modality("metabolomics").analysis("programs")
    assert analysis.artifacts(ws, out.version)[0].table is not None  # type: ignore[misc]
    png = analysis.plot(ws, out.version, tmp_path / "programs.png")  # type: ignore[misc]
    assert Path(png).stat().st_size > 10_000


def test_cli_enrich_and_programs(
    su_da: tuple[Workspace, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    _, root, da = su_da
    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", str(root))
    runner = CliRunner()
    for args in (["metabolomics", "enrich", "--help"], ["metabolomics", "programs", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and "Usage" in r.output and "Example" in r.output, r.output
    r = runner.invoke(
        app,
        ["metabolomics", "enrich", da, "--sets", "builtin", "--method", "rank", "--min-size", "2"],
    )
    assert r.exit_code == 0, r.output
    flat = "".join(r.output.split())
    assert ".enrich.rank.builtin@v" in flat and "setstested" in flat and "TRYPTOPHAN" in r.output
    r = runner.invoke(
        app, ["metabolomics", "programs", "su/Su_metab_data_raw", "--min-measured", "3"]
    )
    assert r.exit_code == 0 and "TRYPTOPHAN_KYNURENINE" in r.output, r.output
    r = runner.invoke(app, ["metabolomics", "enrich", da, "--method", "gsea"])
    assert r.exit_code != 0 and "[option]" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["metabolomics", "enrich", da, "--sets", "reactome"])
    assert r.exit_code != 0 and "[reactome-file]" in r.output, r.output
