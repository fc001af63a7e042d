"""Small SpatialData Zarr stores written with spatialdata's own API (the reader's input).

``write_sdata(folder, name)`` writes ``<name>.zarr``: one section of ``n`` cells (circles
``cells``), an annotating table (counts of 6 genes and one negative-control probe,
``obsm["spatial"]``, a ``cell_type`` column) and ``transcripts`` points, each molecule
assigned to the cell whose counts it makes up, plus ``n_unassigned`` unassigned ones.
``planted`` makes EPCAM follow a smooth spatial field ``f(x, y)`` (Poisson with mean
``6 f``) and KRT8 its complement (mean ``6 (1 - f)``), so a cell's library size does not
depend on ``f`` and the other genes stay spatially random (Moran's I oracle).
``bad`` breaks one thing: ``nan`` (a NaN coordinate), ``orphan`` (a transcript naming a cell that does not exist), ``no-gene`` (points
without a gene column), ``controls`` (a negative-control rate of 50 %), ``two-sections`` (a table column
``section`` naming two sections; ``own-section``: one, another name than the store's).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

GENES = ["EPCAM", "KRT8", "COL1A1", "CD68", "PTPRC", "MKI67", "NegControlProbe_001"]


def write_sdata(
    folder: Path,
    name: str = "S0",
    *,
    n: int = 40,
    n_unassigned: int = 7,
    bad: str | None = None,
    seed: int = 0,
    planted: bool = False,
) -> Path:
    import anndata as ad
    import dask.dataframe as dd
    import geopandas as gpd
    import scipy.sparse as sp
    import spatialdata as sd
    from spatialdata.models import PointsModel, ShapesModel, TableModel
    from spatialdata.transformations import Identity

    rng = np.random.default_rng(seed)
    ids = [f"{name}-c{i}" for i in range(n)]
    xy = rng.uniform(0, 500, size=(n, 2))
    counts = rng.poisson(3.0, size=(n, len(GENES))).astype(np.float64)
    if planted:
        # drawn from a stream of its own, so the other genes' counts are unchanged
        field = 0.5 + 0.5 * np.sin(2 * np.pi * xy[:, 0] / 500) * np.cos(2 * np.pi * xy[:, 1] / 500)
        extra_rng = np.random.default_rng(seed + 10_000)
        counts[:, 0] = extra_rng.poisson(6.0 * field)
        counts[:, 1] = extra_rng.poisson(6.0 * (1.0 - field))
    counts[:, -1] = 0
    counts[rng.random(n) < 0.1, -1] = 1  # a few negative-control molecules
    if bad == "controls":
        counts[:, -1] = counts[:, :-1].sum(axis=1)
    if bad == "nan":
        xy[3, 0] = np.nan
    table_ids = list(ids)  # spatialdata itself refuses duplicate instance IDs
    # the molecules: one per count, at the cell (plus jitter), then unassigned ones
    rows, cols = np.nonzero(counts)
    reps = counts[rows, cols].astype(int)
    cell_of = np.repeat(rows, reps)
    gene_of = np.repeat(cols, reps)
    tx = pd.DataFrame(
        {
            "x": np.nan_to_num(xy[cell_of, 0], nan=1.0) + rng.normal(0, 1, len(cell_of)),
            "y": xy[cell_of, 1] + rng.normal(0, 1, len(cell_of)),
            "gene": pd.Categorical(np.array(GENES)[gene_of], categories=GENES),
            "cell_id": np.array(table_ids, dtype=object)[cell_of],
            "overlaps_nucleus": rng.random(len(cell_of)) < 0.4,
        }
    )
    extra = pd.DataFrame(
        {
            "x": rng.uniform(0, 500, n_unassigned),
            "y": rng.uniform(0, 500, n_unassigned),
            "gene": pd.Categorical(rng.choice(GENES[:-1], n_unassigned), categories=GENES),
            "cell_id": [""] * n_unassigned,
            "overlaps_nucleus": [False] * n_unassigned,
        }
    )
    tx = pd.concat([tx, extra], ignore_index=True)
    if bad == "orphan":
        tx.loc[0, "cell_id"] = f"{name}-ghost"
    if bad == "no-gene":
        tx = tx.rename(columns={"gene": "target_name"})
    circles = gpd.GeoDataFrame(
        {"radius": np.full(n, 6.0)},
        geometry=gpd.points_from_xy(np.nan_to_num(xy[:, 0], nan=0.0), xy[:, 1]),
        index=pd.Index(ids),
    )
    obs = pd.DataFrame(
        {
            "region": pd.Categorical(["cells"] * n),
            "cell_id": table_ids,
            "cell_type": rng.choice(["tumour", "fibroblast", "macrophage"], n),
        },
        index=[str(i) for i in range(n)],
    )
    if bad in ("two-sections", "own-section"):
        # a section column of the store's own: two sections, or one other name
        obs["section"] = ["A", "B"] * (n // 2) + ["A"] * (n % 2) if bad == "two-sections" else "A"
    table = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=GENES))
    table.obsm["spatial"] = xy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points_kwargs = {} if bad == "no-gene" else {"feature_key": "gene"}
        sdata = sd.SpatialData(
            shapes={"cells": ShapesModel.parse(circles, transformations={"global": Identity()})},
            points={
                "transcripts": PointsModel.parse(
                    dd.from_pandas(tx, npartitions=1),
                    instance_key="cell_id",
                    transformations={"global": Identity()},
                    **points_kwargs,
                )
            },
            tables={
                "table": TableModel.parse(
                    table, region="cells", region_key="region", instance_key="cell_id"
                )
            },
        )
        out = folder / f"{name}.zarr"
        sdata.write(out)
    return out


#: The program the niche cohort's tumour cells express by their planted score.
NICHE_PROGRAM = "DRUG_TOLERANT_PERSISTER"
#: Panel genes besides the program's (markers and housekeeping-like fillers).
NICHE_FILLERS = [
    "EPCAM",
    "KRT8",
    "COL1A2",
    "DCN",
    "CD68",
    "CD163",
    "CD3E",
    "CD8A",
    "MS4A1",
    "PECAM1",
    "VWF",
    "NKG7",
    "CLEC9A",
    "ACTB",
    "GAPDH",
    "RPLP0",
    "TPT1",
    "EEF1A1",
    "MALAT1",
    "B2M",
    *[f"PANEL{i:03d}" for i in range(1, 101)],
]


def write_niche_section(folder: Path, section: object, *, seed: int = 0) -> Path:
    """``<section.name>.zarr``: a table-only SpatialData store of a generated section
    (:func:`resistomics.modalities.spatial.simulate_niche_cohort`): its coordinates and
    cell types, and counts of :data:`NICHE_PROGRAM`'s genes that rise with the planted
    program score in tumour cells (Poisson, mean ``2 * exp(score)``; 0.5 elsewhere)
    plus 120 filler genes (Poisson, means spread over 0.2-3, as the program genes, so every expression bin of
    ``score_genes`` has control genes)."""
    import anndata as ad
    import geopandas as gpd
    import scipy.sparse as sp
    import spatialdata as sd
    from spatialdata.models import ShapesModel, TableModel
    from spatialdata.transformations import Identity

    from resistomics.knowledge import builtin_programs

    program = next(s for s in builtin_programs().sets if s.name == NICHE_PROGRAM)
    genes = [*program.genes, *[g for g in NICHE_FILLERS if g not in program.genes]]
    rng = np.random.default_rng(seed)
    xy = np.asarray(section.coords, dtype=np.float64)  # type: ignore[attr-defined]
    labels = section.labels  # type: ignore[attr-defined]
    score = np.asarray(section.values, dtype=np.float64)[:, 0]  # type: ignore[attr-defined]
    n = xy.shape[0]
    tumour = np.isfinite(score)
    lam = np.full((n, len(program.genes)), 0.5)
    lam[tumour] = 2.0 * np.exp(score[tumour])[:, None]
    n_fill = len(genes) - len(program.genes)
    fill = np.linspace(0.2, 3.0, n_fill)
    counts = np.hstack([rng.poisson(lam), rng.poisson(fill, size=(n, n_fill))]).astype(np.float64)
    name = str(section.name)  # type: ignore[attr-defined]
    ids = [f"{name}-c{i}" for i in range(n)]
    circles = gpd.GeoDataFrame(
        {"radius": np.full(n, 5.0)},
        geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]),
        index=pd.Index(ids),
    )
    obs = pd.DataFrame(
        {
            "region": pd.Categorical(["cells"] * n),
            "cell_id": ids,
            "cell_type": np.asarray(labels, dtype=object),
        },
        index=[str(i) for i in range(n)],
    )
    table = ad.AnnData(sp.csr_matrix(counts), obs=obs, var=pd.DataFrame(index=genes))
    table.obsm["spatial"] = xy
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = sd.SpatialData(
            shapes={"cells": ShapesModel.parse(circles, transformations={"global": Identity()})},
            tables={
                "table": TableModel.parse(
                    table, region="cells", region_key="region", instance_key="cell_id"
                )
            },
        )
        out = folder / f"{name}.zarr"
        sdata.write(out)
    return out
