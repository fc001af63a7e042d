"""Make the squidpy references the spatial parity tests compare against.

squidpy 1.8.3 is in the test environment (the ``test`` extra): the parity tests compute
:func:`reference` live, and also read the stored ``data/squidpy_reference.npz`` (the same
arrays, written by ``python tests/modalities/spatial/make_squidpy_reference.py``) so a
change of squidpy's output between versions shows as a difference between the two.

The section (inputs stored in the reference too, so the tests do not depend on this
generator): 2,000 cells in a 1,000 x 1,000 um field, 5 cell types, with fibroblasts
planted around resistant tumour cells, and 20 genes whose spatial autocorrelation ranges
from none (pure noise) to strong (a smooth field of Gaussian bumps plus noise).
Each file records the squidpy, scanpy, numpy and scipy versions it was made with.
"""

from __future__ import annotations

import hashlib
import sys
import warnings
from pathlib import Path

import numpy as np

DATA = Path(__file__).parent / "data"
TYPES = ("fibroblast", "macrophage", "t_cell", "tumour_resistant", "tumour_sensitive")
SEED = 20261202
NHOOD_SEED = 11
NHOOD_PERMS = 1000
MORAN_SEED = 7
MORAN_PERMS = 200
RADIUS = 30.0


def make_section(seed: int = SEED) -> dict[str, np.ndarray]:
    """Coordinates, cell-type codes (into ``TYPES``) and 20 genes of the planted section."""
    rng = np.random.default_rng(seed)
    side = 1000.0
    centres = rng.uniform(100, 900, size=(6, 2))
    resistant = centres[rng.integers(0, 6, 300)] + rng.normal(0, 40, (300, 2))
    sensitive = rng.uniform(0, side, (500, 2))
    near = resistant[rng.integers(0, 300, 280)] + rng.normal(0, 15, (280, 2))
    fibroblast = np.vstack([near, rng.uniform(0, side, (120, 2))])
    macrophage = rng.uniform(0, side, (400, 2))
    t_cell = rng.uniform(0, side, (400, 2))
    coords = np.vstack([fibroblast, macrophage, t_cell, resistant, sensitive])
    codes = np.repeat(np.arange(5, dtype=np.int8), [400, 400, 400, 300, 500])
    order = rng.permutation(len(coords))
    coords, codes = np.clip(coords[order], 0, side), codes[order]

    n_genes = 20
    strength = np.linspace(0.0, 1.0, n_genes)  # gene_00: noise only ... gene_19: field only
    values = np.empty((len(coords), n_genes))
    for g in range(n_genes):
        bumps = rng.uniform(0, side, (8, 2))
        d2 = ((coords[:, None, :] - bumps[None, :, :]) ** 2).sum(axis=2)
        field = np.exp(-d2 / (2 * 120.0**2)).sum(axis=1)
        field = (field - field.mean()) / field.std()
        values[:, g] = strength[g] * field + (1 - strength[g]) * rng.normal(size=len(coords))
    # thousandths as int16: a small file and an exact input (values = milli / 1000)
    milli = np.round((values + 3.0) * 1000).astype(np.int16)
    return {"coords": coords, "codes": codes, "values_milli": milli}


def reference() -> dict[str, np.ndarray]:
    """Everything the parity tests compare against, computed now with the squidpy
    installed (the stored ``.npz`` holds the same arrays); warnings are silenced only
    inside the call."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _reference()


def _reference() -> dict[str, np.ndarray]:
    import anndata as ad
    import pandas as pd
    import scanpy
    import scipy
    import squidpy as sq

    section = make_section()
    values = section["values_milli"] / 1000.0
    genes = [f"gene_{g:02d}" for g in range(values.shape[1])]
    adata = ad.AnnData(
        X=values,
        obs=pd.DataFrame(
            {"cell_type": pd.Categorical.from_codes(section["codes"], categories=TYPES)},
            index=[f"cell_{i}" for i in range(len(section["codes"]))],
        ),
        var=pd.DataFrame(index=genes),
    )
    adata.obsm["spatial"] = section["coords"]

    graphs: dict[str, np.ndarray] = {}
    built = {
        "knn": sq.gr.spatial_neighbors_knn(adata, n_neighs=6, copy=True),
        "radius": sq.gr.spatial_neighbors_radius(adata, radius=RADIUS, copy=True),
        "delaunay": sq.gr.spatial_neighbors_delaunay(adata, copy=True),
    }
    for name, res in built.items():
        conn, dist = res.connectivities.tocsr(), res.distances.tocsr()
        conn.sort_indices()
        dist.sort_indices()
        graphs[f"{name}_indptr"] = conn.indptr.astype(np.int32)
        graphs[f"{name}_indices"] = conn.indices.astype(np.int16)
        graphs[f"{name}_conn_dtype"] = np.array(str(conn.dtype))
        graphs[f"{name}_conn_data_unique"] = np.unique(conn.data)
        graphs[f"{name}_dist_indptr"] = dist.indptr.astype(np.int32)
        graphs[f"{name}_dist_indices"] = dist.indices.astype(np.int16)
        # full lengths for kNN; for the others their digest (the tests ask for bit equality)
        if name == "knn":
            graphs[f"{name}_dist_data"] = dist.data.astype(np.float64)
        graphs[f"{name}_dist_sha256"] = np.array(
            hashlib.sha256(np.ascontiguousarray(dist.data, dtype="<f8").tobytes()).hexdigest()
        )

    sq.gr.spatial_neighbors_knn(adata, n_neighs=6)
    nhood = sq.gr.nhood_enrichment(
        adata,
        cluster_key="cell_type",
        n_perms=NHOOD_PERMS,
        seed=NHOOD_SEED,
        n_jobs=1,
        copy=True,
        show_progress_bar=False,
    )
    occ, interval = sq.gr.co_occurrence(adata, cluster_key="cell_type", copy=True)
    moran = sq.gr.spatial_autocorr(
        adata,
        mode="moran",
        n_perms=MORAN_PERMS,
        seed=MORAN_SEED,
        n_jobs=1,
        copy=True,
        show_progress_bar=False,
    ).loc[genes]
    moran_two = sq.gr.spatial_autocorr(
        adata, mode="moran", two_tailed=True, n_jobs=1, copy=True, show_progress_bar=False
    ).loc[genes]

    moran_raw = sq.gr.spatial_autocorr(
        adata, mode="moran", transformation=False, n_jobs=1, copy=True, show_progress_bar=False
    ).loc[genes]

    versions = {
        "squidpy": sq.__version__,
        "scanpy": scanpy.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "python": sys.version.split()[0],
    }
    return dict(
        **section,
        types=np.array(TYPES),
        genes=np.array(genes),
        versions=np.array([f"{k}={v}" for k, v in versions.items()]),
        params=np.array(
            [NHOOD_SEED, NHOOD_PERMS, MORAN_SEED, MORAN_PERMS, RADIUS], dtype=np.float64
        ),
        **graphs,
        nhood_counts=np.asarray(nhood.counts).astype(np.int64),
        nhood_zscore=np.asarray(nhood.zscore, dtype=np.float64),
        cooc_ratio=np.asarray(occ, dtype=np.float64),
        cooc_interval=np.asarray(interval),
        moran_columns=np.array(list(moran.columns)),
        moran=moran.to_numpy(dtype=np.float64),
        moran_two_columns=np.array(list(moran_two.columns)),
        moran_two=moran_two.to_numpy(dtype=np.float64),
        moran_raw_columns=np.array(list(moran_raw.columns)),
        moran_raw=moran_raw.to_numpy(dtype=np.float64),
    )


def main() -> None:
    r = reference()
    DATA.mkdir(exist_ok=True)
    out = DATA / "squidpy_reference.npz"
    np.savez_compressed(out, **r)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KB) with {r['versions'].tolist()}")


if __name__ == "__main__":
    main()
