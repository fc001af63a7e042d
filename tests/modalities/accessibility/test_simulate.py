"""The generated scATAC cohort (``_simulate``): its files ingest as one aggregated
fragments file, and its planted structure is what the ingest measures."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.catalog import SampleRow
from resistomics.modalities.accessibility._simulate import simulate_atac_cohort
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import layout, open_sparse_matrix

STUDY = "sim"


def _ingest(tmp_path: Path, **kwargs: object) -> tuple[object, pd.DataFrame, object]:
    from resistomics.config import ClusterSettings, Settings

    sim = simulate_atac_cohort(tmp_path / "cohort", seed=3, **kwargs)  # type: ignore[arg-type]
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={
            "accessibility": {
                "tss_bed": str(sim.tss_bed),
                "chrom_sizes": str(sim.chrom_sizes),
                "tile_size": 500,
            }
        },
    )
    ws = Workspace.open(settings)
    try:
        ws.catalog.register_study(
            STUDY,
            [
                SampleRow(
                    sample_id=r.sample_id,
                    subject_id=r.subject_id,
                    phase=r.phase,
                    timepoint=r.timepoint,
                )
                for r in sim.samples.itertuples()
            ],
        )
        target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / "aggr"
        target.parent.mkdir(parents=True)
        shutil.copytree(sim.directory, target)
        out = ingest(
            ws,
            str(target),
            study=STUDY,
            options={"barcode_samples": str(sim.barcode_samples)},
        )
        assert out.status == "published", out.message
        path = ws.root.to_path(out.version.uri)
        qc = layout("partitioned-table@1").read_table(ws.root, path, "barcodes")  # type: ignore[misc]
        store = open_sparse_matrix(ws.root, path)
        return sim, qc, store
    finally:
        ws.close()


def test_generated_cohort_ingests_with_its_truth(tmp_path: Path) -> None:
    """Every cell lands in its sample; the peak matrix holds every planted peak; the
    persisters' share of planted-peak counts exceeds the others' (open_fold 8); the
    persister fraction rises at progression; fragments on TSSs give TSS enrichment > 3."""
    sim, qc, store = _ingest(tmp_path, n_subjects=2, cells_per_sample=40)
    cells = sim.cells.set_index("barcode")  # type: ignore[attr-defined]
    obs = store.obs  # type: ignore[attr-defined]
    assert set(obs.index) == set(cells.index)
    assert (obs["sample_id"].astype(str) == cells.loc[obs.index, "sample_id"]).all()
    planted = set(sim.planted_peaks)  # type: ignore[attr-defined]
    assert planted <= set(store.var.index)  # type: ignore[attr-defined]
    x = store.cells().compute().tocsr()  # type: ignore[attr-defined]
    in_set = np.asarray(store.var.index.isin(list(planted)))  # type: ignore[attr-defined]
    share = np.asarray(x[:, in_set].sum(axis=1)).ravel() / np.asarray(x.sum(axis=1)).ravel()
    persister = cells.loc[obs.index, "persister"].to_numpy()
    assert share[persister].mean() > 2.5 * share[~persister].mean()
    by_phase = sim.cells.merge(sim.samples, on="sample_id").groupby("phase")["persister"].mean()  # type: ignore[attr-defined]
    assert by_phase["progression"] > by_phase["baseline"] + 0.25
    assert qc["tss_enrichment"].median() > 3


def test_uniform_fragments_have_tss_enrichment_about_1(tmp_path: Path) -> None:
    """``uniform=True``: no fragment prefers a TSS, so the median enrichment is ~1 (deep
    cells: ArchR's flank floor of 0.2 per 100 bp biases shallow cells' scores down)."""
    _, qc, _ = _ingest(
        tmp_path, n_subjects=1, cells_per_sample=6, fragments_per_cell=8000, uniform=True
    )
    assert qc["tss_enrichment"].median() == pytest.approx(1.0, abs=0.35)
