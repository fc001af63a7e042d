"""``accessibility qc`` on published datasets: planted TSS signal recovered from the
stored fragments (out of core, per partition), fragment sizes and FRiP against direct
counts, pass/fail against the settings' bounds, count-only QC of a peak matrix."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from atac_files import peaks_of, write_fragments, write_peak_matrix
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.modalities.accessibility._qc_analysis import (
    CELL_COLUMNS,
    SAMPLE_COLUMNS,
    accessibility_qc,
    qc_artifacts,
)
from resistomics.pipeline import Workspace, ingest
from resistomics.publishing import result_table
from resistomics.storage import layout

STUDY = "atqc"
TSS = [("chr1", 100_000 + 50_000 * i) for i in range(20)] + [
    ("chr2", 100_000 + 50_000 * i) for i in range(10)
]


def _workspace(tmp_path: Path, **accessibility: Any) -> Workspace:
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={"accessibility": accessibility},
    )
    ws = Workspace.open(settings)
    ws.catalog.register_study(
        STUDY,
        [
            SampleRow(sample_id="ON", subject_id="P1", phase="baseline"),
            SampleRow(sample_id="FLAT", subject_id="P1", phase="progression"),
        ],
    )
    return ws


def _land(ws: Workspace, src: Path) -> str:
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / src.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy(src, target)
    return str(target)


def _rows(seed: int) -> list[tuple[str, int, int, str, int]]:
    """Sample ON: 6 barcodes with fragments on the TSSs (both ends in ArchR's 101-bp
    window) and a few in the flanks; sample FLAT: 6 barcodes uniform over +-2.6 kb."""
    rng = np.random.default_rng(seed)
    rows = set()
    for i in range(6000):
        c, p = TSS[i % len(TSS)]
        s = p + int(rng.integers(-40, 20))
        rows.add((c, s, s + int(rng.integers(10, 30)), f"ON{i % 6}-1", 1))
        if i % 10 == 0:  # a little background (the flanks need insertions)
            s = p + int(rng.integers(-2600, 2400))
            rows.add((c, s, s + int(rng.integers(50, 400)), f"ON{i % 6}-1", 1))
        s = p + int(rng.integers(-2600, 2400))
        rows.add((c, s, s + int(rng.integers(50, 400)), f"FLAT{i % 6}-1", 1))
    return sorted(rows)


@pytest.fixture
def planted(tmp_path: Path) -> tuple[Workspace, list[tuple[str, int, int, str, int]], Path]:
    bed = tmp_path / "tss.bed"
    bed.write_text("".join(f"{c}\t{p}\t{p + 1}\n" for c, p in TSS))
    # min_tss_enrichment 3: the FLAT barcodes (score ~1) fail; the ingest's suite bounds
    # are the same settings, so the dataset is published under a looser bound first
    ws = _workspace(tmp_path, fragments_per_chunk=2500)  # several row groups per partition
    rows = _rows(3)
    outs = tmp_path / "outs"
    outs.mkdir()
    write_fragments(outs / "fragments.tsv.gz", rows, index=False)
    peaks = [(c, p - 250, p + 250) for c, p in TSS]
    (outs / "peaks.bed").write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in peaks))
    table = tmp_path / "bc.tsv"
    table.write_text(
        "barcode\tsample_id\n" + "".join(f"ON{i}-1\tON\nFLAT{i}-1\tFLAT\n" for i in range(6))
    )
    out = ingest(ws, _land(ws, outs), study=STUDY, options={"barcode_samples": str(table)})
    assert out.status == "published", out.message
    ws.close()
    ws = Workspace.open(
        ws.settings.model_copy(
            update={
                "modalities": {"accessibility": {"tss_bed": str(bed), "min_tss_enrichment": 3.0}}
            }
        )
    )
    return ws, rows, tmp_path


def test_qc_recovers_planted_tss_enrichment_sizes_and_frip(
    planted: tuple[Workspace, list[tuple[str, int, int, str, int]], Path],
) -> None:
    ws, rows, tmp = planted
    try:
        outcome = accessibility_qc(ws, f"{STUDY}/outs")
        assert outcome.status == "published", outcome.message
        result = outcome.version
        assert result.dataset_type == "accessibility.qc"
        cells = result_table(ws, result, "cells")
        assert list(cells.columns) == list(CELL_COLUMNS)
        cells = cells.set_index("barcode")
        on = cells.loc[[f"ON{i}-1" for i in range(6)]]
        flat = cells.loc[[f"FLAT{i}-1" for i in range(6)]]
        assert (on["tss_enrichment"] > 10).all()
        np.testing.assert_allclose(flat["tss_enrichment"], 1.0, atol=0.35)
        assert on["passes"].all() and not flat["passes"].any()
        assert set(flat["failed"]) == {"tss_enrichment<3"}
        # unique fragments, nucleosome signal, FRiP: direct counts over the rows
        frame = pd.DataFrame(rows, columns=["contig", "start", "end", "barcode", "count"])
        frame["length"] = frame["end"] - frame["start"]
        per = frame.groupby("barcode")
        np.testing.assert_array_equal(cells.loc[per.size().index, "unique_fragments"], per.size())
        free = per["length"].agg(lambda v: (v < 147).sum())
        mono = per["length"].agg(lambda v: ((v >= 147) & (v <= 294)).sum())
        np.testing.assert_allclose(cells.loc[free.index, "nucleosome_signal"], mono / free)
        peaks = {c: [] for c in ("chr1", "chr2")}
        for c, p in TSS:
            peaks[c].append((p - 250, p + 250))
        overlap = [
            any(a < e and b > s for a, b in peaks[c])
            for c, s, e in frame[["contig", "start", "end"]].itertuples(index=False)
        ]
        frip = frame.assign(inside=overlap).groupby("barcode")["inside"].mean()
        np.testing.assert_allclose(cells.loc[frip.index, "fraction_in_peaks"], frip)
        # the ingest stored the same FRiP (one definition in both places)
        version = ws.catalog.resolve(f"{STUDY}/outs")
        qc = layout("partitioned-table@1").read_table(  # type: ignore[misc]
            ws.root, ws.root.to_path(version.uri), "barcodes"
        )
        stored = dict(zip(qc["barcode"], qc["fraction_in_peaks"], strict=True))
        np.testing.assert_allclose([stored[b] for b in frip.index], frip)
        assert (cells["counts_in_peaks"] > 0).all()
        # fragment sizes per sample equal a direct count
        sizes = result_table(ws, result, "fragment_sizes")
        for sample, prefix in (("ON", "ON"), ("FLAT", "FLAT")):
            mine = frame[frame["barcode"].str.startswith(prefix)]
            direct = np.bincount(mine["length"], minlength=1001)[1:1001]
            got = sizes[sizes["sample_id"] == sample].sort_values("length")["fragments"]
            np.testing.assert_array_equal(got.to_numpy(), direct)
        # the profile of ON peaks at the TSS, FLAT's stays ~1
        profile = result_table(ws, result, "tss_profile")
        on_p = profile[profile["sample_id"] == "ON"].set_index("offset")["enrichment"]
        flat_p = profile[profile["sample_id"] == "FLAT"].set_index("offset")["enrichment"]
        assert abs(int(on_p.idxmax())) <= 40 and on_p.max() > 20
        assert flat_p.loc[-1000:1000].mean() == pytest.approx(1.0, abs=0.3)
        samples = result_table(ws, result, "samples").set_index("sample_id")
        assert list(samples.reset_index().columns[: len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
        assert samples.loc["ON", "n_passing"] == 6 and samples.loc["FLAT", "n_passing"] == 0
        assert samples.loc["FLAT", "phase"] == "progression"  # joined to the design
        assert samples["fragments"].sum() == len(rows)
        # idempotent; artifacts and the plot
        assert accessibility_qc(ws, f"{STUDY}/outs").status == "unchanged"
        arts = qc_artifacts(ws, result)
        assert [a.key_parts[-1] for a in arts] == ["qc", "qc-summary"]
        assert "failing tss_enrichment: 6 cells" in (arts[1].markdown or "")
        from matplotlib.image import imread

        from resistomics.modalities import plot_dataset

        both = imread(plot_dataset(ws, result, tmp / "qc.png"))
        one = imread(plot_dataset(ws, result, tmp / "tss.png", kind="tss"))
        assert one.shape[1] < both.shape[1]
    finally:
        ws.close()


def test_qc_of_a_peak_matrix_without_fragments_is_count_based(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, min_counts_in_peaks=0.0)
    try:
        x = np.random.default_rng(4).poisson(2.0, (9, 8)).astype(float)
        x[0] = 0
        src = write_peak_matrix(tmp_path / "m", x, peaks_of(8), [f"B{i}-1" for i in range(9)], None)
        out = ingest(ws, _land(ws, src), study=STUDY, options={"sample": "ON"})
        assert out.status == "published", out.message
        result = accessibility_qc(ws, f"{STUDY}/m").version
        cells = result_table(ws, result, "cells").set_index("barcode")
        np.testing.assert_array_equal(
            cells.loc[[f"B{i}-1" for i in range(9)], "counts_in_peaks"], x.sum(axis=1)
        )
        np.testing.assert_array_equal(
            cells.loc[[f"B{i}-1" for i in range(9)], "peaks_detected"], (x > 0).sum(axis=1)
        )
        assert cells["unique_fragments"].isna().all() and cells["tss_enrichment"].isna().all()
        assert len(result_table(ws, result, "fragment_sizes")) == 0
        assert len(result_table(ws, result, "tss_profile")) == 0
        samples = result_table(ws, result, "samples")
        assert samples["median_counts_in_peaks"].iloc[0] == np.median(x.sum(axis=1))
    finally:
        ws.close()


def test_qc_does_not_apply_to_a_peak_set(tmp_path: Path) -> None:
    from atac_files import write_narrowpeak
    from resistomics.errors import AnalysisNotApplicableError

    ws = _workspace(tmp_path)
    try:
        src = write_narrowpeak(tmp_path / "set.narrowPeak", peaks_of(5))
        out = ingest(ws, _land(ws, src), study=STUDY)
        assert out.status == "published", out.message
        with pytest.raises(AnalysisNotApplicableError, match=r"accessibility\.peaks"):
            accessibility_qc(ws, out.version.ref)
    finally:
        ws.close()
