"""Integrity reads data: per-file digests recorded at publish, verified by the check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resistomics.catalog import SampleRow
from resistomics.config import Settings
from resistomics.pipeline import Workspace, check_integrity, ingest
from resistomics.storage import MANIFEST

SAMPLES = ["P1_BL", "P1_PD", "P2_BL", "P2_PD"]
MAF = (
    "Hugo_Symbol\tChromosome\tStart_Position\tEnd_Position\tVariant_Classification\t"
    "Reference_Allele\tTumor_Seq_Allele2\tTumor_Sample_Barcode\tHGVSp_Short\t"
    "t_ref_count\tt_alt_count\tt_depth\n"
    "ESR1\t6\t152419920\t152419920\tMissense_Mutation\tA\tC\tP1_PD\tp.Y537S\t60\t40\t100\n"
    "TP53\t17\t7577120\t7577120\tMissense_Mutation\tC\tT\tP2_PD\tp.R273H\t70\t30\t100\n"
)


def _land(ws: Workspace, modality: str, name: str, text: str) -> str:
    path = Path(ws.settings.resolved_landing_zone) / "st" / modality / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@pytest.fixture
def published(workspace: Workspace) -> Workspace:
    """An expression store and a variant-calls table, published with manifests."""
    workspace.catalog.register_study("st", [SampleRow(s, s[:2]) for s in SAMPLES])
    rows = [f"G{g:02d}\t" + "\t".join(str((g * 5 + s) % 40) for s in range(4)) for g in range(50)]
    counts = "gene_id\t" + "\t".join(SAMPLES) + "\n" + "\n".join(rows) + "\n"
    for modality, name, text in (("expression", "c.tsv", counts), ("variants", "v.maf", MAF)):
        out = ingest(
            workspace, _land(workspace, modality, name, text), study="st", modality=modality
        )
        assert out.status == "published", out.message
        assert out.version is not None and out.version.manifest_digest is not None
    return workspace


def _flip_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _problems(ws: Workspace, **kwargs: object) -> list[str]:
    return [c.detail for c in check_integrity(ws, **kwargs) if c.result == "problem"]  # type: ignore[arg-type]


def test_manifest_lists_every_stored_file(published: Workspace) -> None:
    for v in published.catalog.versions():
        folder = Path(published.root.to_path(v.uri))
        listed = json.loads((folder / MANIFEST).read_text())["files"]
        stored = {
            str(p.relative_to(folder))
            for p in folder.rglob("*")
            if p.is_file() and p.name != MANIFEST
        }
        assert set(listed) == stored and stored
        assert all(e["size"] == (folder / f).stat().st_size for f, e in listed.items())
    assert _problems(published, sample=None) == []


def test_one_flipped_byte_in_a_zarr_chunk_or_a_parquet_file_is_a_problem(
    published: Workspace,
) -> None:
    counts = published.catalog.resolve("st/c")
    calls = published.catalog.resolve("st/v")
    store = Path(published.root.to_path(counts.uri))
    chunk = next(
        p
        for p in sorted((store / "expression.zarr" / "X" / "data").rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    )
    parquet = next(Path(published.root.to_path(calls.uri)).rglob("*.parquet"))
    _flip_one_byte(chunk)
    _flip_one_byte(parquet)

    problems = _problems(published, sample=None)
    assert len(problems) == 2, problems
    assert any(d.startswith(f"{chunk}: SHA-256 differs") for d in problems), problems
    assert any(d.startswith(f"{parquet}: SHA-256 differs") for d in problems), problems
    # the sampled (nightly) check finds them too once the sample covers the version
    assert len(_problems(published, sample=10_000)) == 2


def test_missing_extra_and_resized_files_are_found_without_rehashing(published: Workspace) -> None:
    counts = published.catalog.resolve("st/c")
    store = Path(published.root.to_path(counts.uri))
    var = store / "expression.zarr" / "var" / "zarr.json"
    var.unlink()
    (store / "stray.bin").write_bytes(b"x")
    obs = store / "expression.zarr" / "obs" / "zarr.json"
    obs.write_text(obs.read_text() + " ")
    details = "\n".join(_problems(published, sample=0))
    assert f"{var}: file is missing" in details
    assert f"{store / 'stray.bin'}: file not in the published manifest" in details
    assert f"{obs}: " in details and "bytes, published with" in details


def test_a_changed_manifest_is_a_problem(published: Workspace) -> None:
    counts = published.catalog.resolve("st/c")
    manifest = Path(published.root.to_path(counts.uri)) / MANIFEST
    doc = json.loads(manifest.read_text())
    victim = next(iter(doc["files"]))
    doc["files"][victim]["sha256"] = "0" * 64
    manifest.write_text(json.dumps(doc))
    assert any("manifest.json differs from the one published" in d for d in _problems(published))


def test_versions_without_a_manifest_are_warnings(published: Workspace) -> None:
    from resistomics.catalog._models import Version

    with published.catalog.session() as s:  # as published before manifests existed
        for v in s.query(Version):
            v.manifest_digest = None
    checks = check_integrity(published)
    warnings = [c for c in checks if c.check == "files"]
    assert {c.result for c in warnings} == {"warning"} and len(warnings) == 2
    assert all("no manifest" in c.detail for c in warnings)
    assert not [c for c in checks if c.result == "problem"]


def test_catalog_verify_cli(
    published: Workspace, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resistomics.cli import app

    monkeypatch.setenv("RESISTOMICS_DATA_ROOT", settings.data_root)
    ok = CliRunner().invoke(app, ["catalog", "verify", "--all"])
    assert ok.exit_code == 0, ok.output
    assert ", 0 problem(s), 0 warning(s)" in ok.output
    calls = published.catalog.resolve("st/v")
    parquet = next(Path(published.root.to_path(calls.uri)).rglob("*.parquet"))
    _flip_one_byte(parquet)
    bad = CliRunner().invoke(app, ["catalog", "verify", "--all"])
    assert bad.exit_code == 1
    assert f"problem: st/v@v1 [files] {parquet}: SHA-256 differs" in bad.output
