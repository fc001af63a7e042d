"""The analyse flow on a new accessibility dataset counted from fragments: the default ``qc``
analysis runs, finds the planted TSS enrichment of sample S0's barcodes (and ~1 for
S1's uniform ones), and leaves the per-sample QC table and its summary as artifacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from atac_files import write_fragments
from flows._runtime import artifact_key
from flows.analyse import analyse_flow
from flows.ingest import ingest_flow
from resistomics.modalities.accessibility._qc_analysis import SAMPLE_COLUMNS
from resistomics.pipeline import Workspace

STUDY = "trial"  # the flows conftest study: S0..S7


def _rows(artifact: Any) -> list[dict[str, Any]]:
    data = artifact.data
    return json.loads(data) if isinstance(data, str) else data


def test_analyse_flow_runs_qc_on_new_fragments(
    workspace: Workspace, probe: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tss = [("chr1", 100_000 + 40_000 * i) for i in range(15)]
    bed = tmp_path / "tss.bed"
    bed.write_text("".join(f"{c}\t{p}\t{p + 1}\n" for c, p in tss))
    monkeypatch.setenv("RESISTOMICS_MODALITIES__ACCESSIBILITY__TSS_BED", str(bed))
    rng = np.random.default_rng(5)
    rows = set()
    for i in range(3000):
        c, p = tss[i % len(tss)]
        s = p + int(rng.integers(-40, 20))
        rows.add((c, s, s + int(rng.integers(10, 30)), f"A{i % 4}-1", 1))
        s = p + int(rng.integers(-2600, 2400))
        rows.add(
            (
                c,
                s,
                s + int(rng.integers(50, 400)),
                f"A{i % 4}-1" if i % 5 == 0 else f"B{i % 4}-1",
                1,
            )
        )
    folder = Path(workspace.settings.resolved_landing_zone) / STUDY / "accessibility" / "atac"
    folder.mkdir(parents=True)
    write_fragments(folder / "fragments.tsv.gz", sorted(rows), index=False)
    # a peak set beside it: the dataset is accessibility.counts counted from the fragments
    (folder / "peaks.bed").write_text("".join(f"{c}\t{p - 300}\t{p + 300}\n" for c, p in tss))
    table = tmp_path / "barcodes.tsv"  # outside the landing zone (the entry moves)
    table.write_text(
        "barcode\tsample_id\n" + "".join(f"A{i}-1\tS0\nB{i}-1\tS1\n" for i in range(4))
    )
    (folder.parent / ".ingest-options.yaml").write_text(f"barcode_samples: {table}\n")
    ref = ingest_flow(str(folder), STUDY, modality="accessibility")["ref"]
    state = analyse_flow(ref, STUDY, return_state=True)
    assert state.name == "Completed", state.message
    assert "qc" in state.result()["results"]
    result = workspace.catalog.resolve(state.result()["results"]["qc"]["ref"])
    assert result.dataset_type == "accessibility.qc"
    dataset = result.dataset.removesuffix(".qc")
    (qc,) = probe.artifacts(artifact_key("accessibility", STUDY, dataset, "qc"))
    by_sample = {r["sample_id"]: r for r in _rows(qc)}
    assert sorted(by_sample) == ["S0", "S1"]
    assert all(list(r) == list(SAMPLE_COLUMNS) for r in by_sample.values())
    assert by_sample["S0"]["median_tss_enrichment"] > 5
    assert by_sample["S1"]["median_tss_enrichment"] == pytest.approx(1.0, abs=0.35)
    assert by_sample["S0"]["n_cells"] == 4 and by_sample["S1"]["n_cells"] == 4
    assert by_sample["S0"]["median_fraction_in_peaks"] > by_sample["S1"]["median_fraction_in_peaks"]
    (summary,) = probe.artifacts(artifact_key("accessibility", STUDY, dataset, "qc-summary"))
    assert "Accessibility QC" in str(summary.data)
    again = analyse_flow(ref, STUDY, return_state=True)
    assert again.name == "Unchanged"
