"""Small instrument output folders written from one synthetic section with known truth.

:func:`synthetic_section` makes the truth (cells with micrometre coordinates, integer
counts of genes and control probes, transcripts assigned or not, a nucleus flag);
``write_xenium`` / ``write_merscope`` / ``write_cosmx`` / ``write_visium`` write it with
each platform's file names, columns and units, so a reader's output can be compared with
the truth exactly.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

COSMX_UM_PER_PX = 0.12028


@dataclass
class Truth:
    cell_ids: list[str]  # as the platform names them (Xenium/MERSCOPE/Visium barcodes)
    x: np.ndarray  # micrometres
    y: np.ndarray
    genes: list[str]
    kinds: list[str]  # expected feature_type of each gene
    counts: np.ndarray  # (n_cells, n_genes) int
    tx_gene: np.ndarray  # index into genes
    tx_cell: np.ndarray  # index into cells, -1 unassigned
    tx_x: np.ndarray
    tx_y: np.ndarray
    tx_z: np.ndarray
    tx_nuclear: np.ndarray  # bool


def synthetic_section(
    *, n_cells: int = 12, controls: tuple[tuple[str, str], ...] = (), seed: int = 0
) -> Truth:
    """A section of ``n_cells`` cells and 5 genes plus ``controls`` ((name, kind) pairs);
    the counts are the per-cell tallies of the assigned transcripts."""
    rng = np.random.default_rng(seed)
    genes = ["EPCAM", "VIM", "CD68", "COL1A1", "MKI67"] + [c[0] for c in controls]
    kinds = ["gene"] * 5 + [c[1] for c in controls]
    x = np.round(rng.uniform(10, 990, n_cells), 3)
    y = np.round(rng.uniform(10, 790, n_cells), 3)
    n_tx = 8 * n_cells
    tx_gene = rng.integers(0, len(genes), n_tx)
    tx_cell = rng.integers(-1, n_cells, n_tx)
    tx_cell[:3] = -1  # at least some unassigned
    jitter = rng.normal(0, 2, (n_tx, 2))
    base_x = np.where(tx_cell >= 0, x[tx_cell], 500.0)
    base_y = np.where(tx_cell >= 0, y[tx_cell], 400.0)
    counts = np.zeros((n_cells, len(genes)), dtype=np.int64)
    np.add.at(counts, (tx_cell[tx_cell >= 0], tx_gene[tx_cell >= 0]), 1)
    return Truth(
        cell_ids=[f"cell{i:03d}" for i in range(n_cells)],
        x=x,
        y=y,
        genes=genes,
        kinds=kinds,
        counts=counts,
        tx_gene=tx_gene,
        tx_cell=tx_cell,
        tx_x=np.round(base_x + jitter[:, 0], 3),
        tx_y=np.round(base_y + jitter[:, 1], 3),
        tx_z=np.round(rng.uniform(0, 10, n_tx), 3),
        tx_nuclear=(rng.uniform(size=n_tx) < 0.4) & (tx_cell >= 0),
    )


XENIUM_CONTROLS = (
    ("NegControlProbe_00001", "negative_control_probe"),
    ("NegControlCodeword_0500", "negative_control_codeword"),
    ("BLANK_0001", "unassigned_codeword"),
    ("GenomicControl_01", "genomic_control"),
)
_XENIUM_KIND = {
    "gene": "Gene Expression",
    "negative_control_probe": "Negative Control Probe",
    "negative_control_codeword": "Negative Control Codeword",
    "unassigned_codeword": "Unassigned Codeword",
    "genomic_control": "Genomic Control",
}


def _write_tenx_h5(path: Path, truth: Truth, kinds: list[str], barcodes: list[str]) -> None:
    import h5py
    import scipy.sparse as sp

    m = sp.csc_matrix(truth.counts.T)
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = np.array(barcodes, dtype="S")
        g["data"] = m.data.astype(np.uint32)
        g["indices"] = m.indices.astype(np.int64)
        g["indptr"] = m.indptr.astype(np.int64)
        g["shape"] = np.array(m.shape, dtype=np.int32)
        feats = g.create_group("features")
        feats["id"] = np.array([f"ID_{n}" for n in truth.genes], dtype="S")
        feats["name"] = np.array(truth.genes, dtype="S")
        feats["feature_type"] = np.array(kinds, dtype="S")
        feats["genome"] = np.array(["GRCh38"] * len(truth.genes), dtype="S")


def _write_mex(folder: Path, truth: Truth, kinds: list[str], barcodes: list[str]) -> None:
    import scipy.io
    import scipy.sparse as sp

    folder.mkdir(parents=True)
    with gzip.open(folder / "matrix.mtx.gz", "wb") as f:
        scipy.io.mmwrite(f, sp.coo_matrix(truth.counts.T))
    feats = "".join(f"ID_{n}\t{n}\t{k}\n" for n, k in zip(truth.genes, kinds, strict=True))
    with gzip.open(folder / "features.tsv.gz", "wt") as f:
        f.write(feats)
    with gzip.open(folder / "barcodes.tsv.gz", "wt") as f:
        f.write("".join(f"{b}\n" for b in barcodes))


def write_xenium(
    folder: Path,
    truth: Truth,
    *,
    mex: bool = False,
    cells_csv: bool = False,
    legacy_ids: bool = False,
) -> Path:
    """A Xenium output folder. ``legacy_ids``: integer cell IDs and ``-1`` unassigned
    transcripts (early Xenium), cell IDs then ``"1".."n"``."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [str(i + 1) for i in range(len(truth.cell_ids))] if legacy_ids else truth.cell_ids
    kinds = [_XENIUM_KIND[k] for k in truth.kinds]
    if mex:
        _write_mex(folder / "cell_feature_matrix", truth, kinds, ids)
    else:
        _write_tenx_h5(folder / "cell_feature_matrix.h5", truth, kinds, ids)
    is_gene = np.array([k == "gene" for k in truth.kinds])
    cells = pd.DataFrame(
        {
            "cell_id": [int(i) for i in ids] if legacy_ids else ids,
            "x_centroid": truth.x,
            "y_centroid": truth.y,
            "transcript_counts": truth.counts[:, is_gene].sum(axis=1),
            "control_probe_counts": truth.counts[:, ~is_gene].sum(axis=1),
            "cell_area": np.full(len(ids), 50.5),
            "nucleus_area": np.full(len(ids), 20.25),
        }
    )
    if cells_csv:
        with gzip.open(folder / "cells.csv.gz", "wt") as f:
            cells.to_csv(f, index=False)
    else:
        cells.to_parquet(folder / "cells.parquet", index=False)
    if legacy_ids:
        tx_cell: pa.Array = pa.array(
            np.where(truth.tx_cell >= 0, truth.tx_cell + 1, -1), pa.int64()
        )
    else:
        tx_cell = pa.array([ids[c] if c >= 0 else "UNASSIGNED" for c in truth.tx_cell], pa.string())
    pq.write_table(
        pa.table(
            {
                "transcript_id": pa.array(np.arange(len(truth.tx_gene), dtype=np.uint64)),
                "cell_id": tx_cell,
                "overlaps_nucleus": pa.array(truth.tx_nuclear.astype(np.uint8)),
                "feature_name": pa.array(
                    [truth.genes[g].encode() for g in truth.tx_gene], pa.binary()
                ),
                "x_location": pa.array(truth.tx_x.astype(np.float32)),
                "y_location": pa.array(truth.tx_y.astype(np.float32)),
                "z_location": pa.array(truth.tx_z.astype(np.float32)),
                "qv": pa.array(np.full(len(truth.tx_gene), 40.0, dtype=np.float32)),
            }
        ),
        folder / "transcripts.parquet",
    )
    angles = np.linspace(0, 2 * np.pi, 7)[:-1]
    for name, radius in (("cell_boundaries.parquet", 5.0), ("nucleus_boundaries.parquet", 2.0)):
        pd.DataFrame(
            {
                "cell_id": np.repeat(ids, len(angles)),
                "vertex_x": (truth.x[:, None] + radius * np.cos(angles)).ravel().astype(np.float32),
                "vertex_y": (truth.y[:, None] + radius * np.sin(angles)).ravel().astype(np.float32),
            }
        ).to_parquet(folder / name, index=False)
    (folder / "experiment.xenium").write_text(
        json.dumps({"run_name": "synthetic", "panel_name": "test", "pixel_size": 0.2125})
    )
    return folder


MERSCOPE_CONTROLS = (("Blank-0", "blank"), ("Blank-1", "blank"))


def write_merscope(folder: Path, truth: Truth, *, entity_id: bool = False) -> Path:
    """A MERSCOPE output folder with long integer cell IDs (as Vizgen writes them) and an
    ``images/`` manifest and transform. ``entity_id``: the metadata's first column is
    named ``EntityID`` (newer MERSCOPE), else unnamed."""
    folder.mkdir(parents=True, exist_ok=True)
    ids = [str(110883424764611924400221639916314253469 + i) for i in range(len(truth.cell_ids))]
    matrix = pd.DataFrame(truth.counts, columns=truth.genes)
    matrix.insert(0, "cell", ids)
    matrix.to_csv(folder / "cell_by_gene.csv", index=False)
    first = "EntityID" if entity_id else ""
    meta = pd.DataFrame(
        {
            first: ids,
            "fov": np.arange(len(ids)) % 3,
            "volume": np.full(len(ids), 1234.5),
            "center_x": truth.x,
            "center_y": truth.y,
            "min_x": truth.x - 4,
            "max_x": truth.x + 4,
            "min_y": truth.y - 4,
            "max_y": truth.y + 4,
        }
    )
    # metadata in another order than the matrix: the reader joins on the ID
    meta.iloc[::-1].to_csv(folder / "cell_metadata.csv", index=False)
    pd.DataFrame(
        {
            "": np.arange(len(truth.tx_gene)),
            "barcode_id": truth.tx_gene,
            "global_x": truth.tx_x,
            "global_y": truth.tx_y,
            "global_z": truth.tx_z,
            "x": truth.tx_x * 9.259,
            "y": truth.tx_y * 9.259,
            "fov": 0,
            "gene": [truth.genes[g] for g in truth.tx_gene],
            "transcript_id": [f"tx{i}" for i in range(len(truth.tx_gene))],
            "cell_id": [ids[c] if c >= 0 else "-1" for c in truth.tx_cell],
        }
    ).to_csv(folder / "detected_transcripts.csv", index=False)
    images = folder / "images"
    images.mkdir()
    # mosaic pixel = 9.259 * micron + 100: the mosaic covers [-100/9.259, ...] um
    (images / "micron_to_mosaic_pixel_transform.csv").write_text(
        "9.259 0.0 100.0\n0.0 9.259 200.0\n0.0 0.0 1.0\n"
    )
    (images / "manifest.json").write_text(
        json.dumps(
            {"mosaic_width_pixels": 10000, "mosaic_height_pixels": 8000, "microns_per_pixel": 0.108}
        )
    )
    return folder


COSMX_CONTROLS = (
    ("NegPrb1", "negative_control_probe"),
    ("NegPrb2", "negative_control_probe"),
    ("SystemControl1", "negative_control_codeword"),
)


def cosmx_ids(truth: Truth) -> list[str]:
    """The reader's cell IDs of :func:`write_cosmx`'s cells: ``"{fov}_{cell_ID}"``."""
    return [f"{1 + i % 2}_{1 + i // 2}" for i in range(len(truth.cell_ids))]


def write_cosmx(folder: Path, truth: Truth, *, run: str = "Run5573_TMA1") -> Path:
    """A CosMx flat-file export: two fields of view, cell_ID restarting in each, a
    background row (cell_ID 0) per fov, pixel coordinates at 0.12028 um/px."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(truth.cell_ids)
    fov = np.array([1 + i % 2 for i in range(n)])
    cid = np.array([1 + i // 2 for i in range(n)])
    background = np.full((2, len(truth.genes)), 7, dtype=np.int64)
    expr = pd.DataFrame(np.vstack([background, truth.counts]), columns=truth.genes)
    expr.insert(0, "cell_ID", np.concatenate([[0, 0], cid]))
    expr.insert(0, "fov", np.concatenate([[1, 2], fov]))
    expr.to_csv(folder / f"{run}_exprMat_file.csv", index=False)
    pd.DataFrame(
        {
            "fov": fov,
            "cell_ID": cid,
            "Area": np.full(n, 4000),
            "AspectRatio": np.full(n, 1.1),
            "CenterX_local_px": np.full(n, 100),
            "CenterY_local_px": np.full(n, 100),
            "CenterX_global_px": truth.x / COSMX_UM_PER_PX,
            "CenterY_global_px": truth.y / COSMX_UM_PER_PX,
            "Width": np.full(n, 60),
            "Height": np.full(n, 70),
        }
    ).to_csv(folder / f"{run}_metadata_file.csv", index=False)
    comp = np.where(truth.tx_nuclear, "Nuclear", np.where(truth.tx_cell >= 0, "Cytoplasm", "None"))
    pd.DataFrame(
        {
            "fov": np.where(truth.tx_cell >= 0, fov[truth.tx_cell], 1),
            "cell_ID": np.where(truth.tx_cell >= 0, cid[truth.tx_cell], 0),
            "x_local_px": 0.0,
            "y_local_px": 0.0,
            "x_global_px": truth.tx_x / COSMX_UM_PER_PX,
            "y_global_px": truth.tx_y / COSMX_UM_PER_PX,
            "z": np.arange(len(truth.tx_gene)) % 8,
            "target": [truth.genes[g] for g in truth.tx_gene],
            "CellComp": comp,
        }
    ).to_csv(folder / f"{run}_tx_file.csv", index=False)
    return folder


VISIUM_SPOT_PX = 89.43  # spot_diameter_fullres of a typical Visium run
HIRES_SCALEF = 0.15


def write_visium(
    folder: Path,
    truth: Truth,
    *,
    positions: str = "csv",
    mex: bool = False,
    hd_bin_um: int | None = None,
) -> Path:
    """A Space Ranger output folder. ``positions``: ``csv`` (tissue_positions.csv with a
    header), ``list`` (tissue_positions_list.csv, no header) or ``parquet``;
    ``hd_bin_um``: a Visium HD run (``binned_outputs/square_XXXum/``; also a coarser bin
    the reader must not pick)."""
    barcodes = [f"AAACAAGTATCTCCCA-{i}" for i in range(len(truth.cell_ids))]
    if hd_bin_um is not None:
        run = folder / "binned_outputs" / f"square_{hd_bin_um:03d}um"
        coarse = folder / "binned_outputs" / "square_016um"
        coarse.mkdir(parents=True)
        um_per_px = 0.2738
        spot_px = hd_bin_um / um_per_px
        factors = {
            "spot_diameter_fullres": spot_px,
            "bin_size_um": float(hd_bin_um),
            "microns_per_pixel": um_per_px,
            "tissue_hires_scalef": HIRES_SCALEF,
        }
    else:
        run = folder
        um_per_px = 55.0 / VISIUM_SPOT_PX
        factors = {
            "spot_diameter_fullres": VISIUM_SPOT_PX,
            "tissue_hires_scalef": HIRES_SCALEF,
            "fiducial_diameter_fullres": 144.5,
            "tissue_lowres_scalef": 0.045,
        }
    spatial = run / "spatial"
    spatial.mkdir(parents=True, exist_ok=True)
    kinds = ["Gene Expression"] * len(truth.genes)
    if mex:
        _write_mex(run / "filtered_feature_bc_matrix", truth, kinds, barcodes)
    else:
        _write_tenx_h5(run / "filtered_feature_bc_matrix.h5", truth, kinds, barcodes)
    (spatial / "scalefactors_json.json").write_text(json.dumps(factors))
    n = len(barcodes)
    frame = pd.DataFrame(
        {
            "barcode": [*barcodes, "TTTTTTTTTTTTTTTT-1"],  # an out-of-tissue spot
            "in_tissue": [1] * n + [0],
            "array_row": [*list(range(n)), 77],
            "array_col": [*list(range(0, 2 * n, 2)), 127],
            "pxl_row_in_fullres": [*list(truth.y / um_per_px), 5.0],
            "pxl_col_in_fullres": [*list(truth.x / um_per_px), 5.0],
        }
    ).iloc[::-1]
    if positions == "parquet":
        frame.to_parquet(spatial / "tissue_positions.parquet", index=False)
    elif positions == "list":
        frame.to_csv(spatial / "tissue_positions_list.csv", index=False, header=False)
    else:
        frame.to_csv(spatial / "tissue_positions.csv", index=False)
    # a PNG header of 2000 x 1600 pixels: the hires image
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 2000, 1600, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
    png += struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    (spatial / "tissue_hires_image.png").write_bytes(png)
    return folder
