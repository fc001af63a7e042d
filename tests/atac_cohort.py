"""The generated scATAC cohort (``_simulate.simulate_atac_cohort``) ingested into a fresh
workspace, for the accessibility analysis tests: its genes optionally renamed (so that
built-in program genes sit on the planted peaks)."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.modalities.accessibility._simulate import SimulatedAtac, simulate_atac_cohort
from resistomics.pipeline import Workspace, ingest

__all__ = ["Cohort", "ingest_cohort"]

STUDY = "sim"


@dataclass
class Cohort:
    ws: Workspace
    ref: str
    sim: SimulatedAtac
    genes_bed: Path


def ingest_cohort(
    base: Path,
    *,
    rename: Mapping[str, str] | None = None,
    modality_settings: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Cohort:
    """Generate the cohort under ``base``, ingest its fragments (counted over its peaks),
    and write its genes BED with ``rename`` applied (old name -> new name)."""
    sim = simulate_atac_cohort(base / "cohort", **kwargs)
    genes = pd.read_csv(sim.genes_bed, sep="\t", header=None, comment="#")
    genes[3] = genes[3].astype(str).replace(dict(rename or {}))
    genes_bed = base / "genes.bed"
    genes.to_csv(genes_bed, sep="\t", header=False, index=False)
    settings = Settings(
        data_root=str(base / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={
            "accessibility": {"chrom_sizes": str(sim.chrom_sizes), **(modality_settings or {})}
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
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / "aggr"
    target.parent.mkdir(parents=True)
    shutil.copytree(sim.directory, target)
    out = ingest(
        ws, str(target), study=STUDY, options={"barcode_samples": str(sim.barcode_samples)}
    )
    assert out.status == "published", out.message
    assert out.version is not None
    return Cohort(ws=ws, ref=out.version.ref, sim=sim, genes_bed=genes_bed)
