"""Bad instrument output folders through the whole pipeline: ``ingest`` and the CLI.

Each case is a good synthetic section (written by ``_instruments.py``) with one thing
broken: a NaN coordinate, a cell ID twice, a transcript assigned to a cell that is not
there, a section that is not a registered sample, a truncated Parquet / HDF5 / CSV file,
a wrong Visium scale-factors file. Each must be refused while it is read: quarantined
with one line naming the file, the place in it and the rule, the catalog as it was (no
staged, quarantined or published version) and nothing published; and
``resistomics ingest`` must exit 1 with that one line on stderr.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tests.modalities.spatial._instruments import (
    synthetic_section,
    write_cosmx,
    write_merscope,
    write_visium,
    write_xenium,
)
from typer.testing import CliRunner

from flows.cli import app
from resistomics.catalog import SampleRow, VersionStatus
from resistomics.cluster import dask_client
from resistomics.config import ClusterSettings, Settings
from resistomics.pipeline import Workspace, ingest

STUDY = "bad"
COSMX = "Run5573_TMA1"
CLUSTER = ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB")
WRITERS: dict[str, Callable[..., Path]] = {
    "xenium": write_xenium,
    "merscope": write_merscope,
    "cosmx": write_cosmx,
    "visium": write_visium,
}
runner = CliRunner()


# -- what is broken --------------------------------------------------------------------


def _edit_csv(path: Path, edit: Callable[[pd.DataFrame], None]) -> None:
    """Rewrite a CSV with ``edit`` applied, every field kept as the text it was."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(frame)
    frame.to_csv(path, index=False)


def _edit_parquet(path: Path, edit: Callable[[pd.DataFrame], None]) -> None:
    frame = pq.read_table(path).to_pandas()
    edit(frame)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _rename_barcode(h5: Path, i: int, name: str) -> None:
    with h5py.File(h5, "a") as f:
        barcodes = f["matrix/barcodes"][()]
        barcodes[i] = name.encode()
        f["matrix/barcodes"][...] = barcodes


def _cut(path: Path) -> None:
    """Keep the first half of the file (a copy that stopped half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _set(frame: pd.DataFrame, row: int, column: str, value: str) -> None:
    frame.loc[row, column] = value


def _xenium_dup(folder: Path) -> None:
    # the second cell renamed as the first, in the matrix and the cells table alike
    _rename_barcode(folder / "cell_feature_matrix.h5", 1, "cell000")
    _edit_parquet(folder / "cells.parquet", lambda f: _set(f, 1, "cell_id", "cell000"))


def _merscope_dup(folder: Path) -> None:
    for name in ("cell_by_gene.csv", "cell_metadata.csv"):

        def second_as_first(frame: pd.DataFrame) -> None:
            ids = frame[frame.columns[0]]
            first, second = sorted(ids)[:2]
            frame.loc[ids == second, frame.columns[0]] = first

        _edit_csv(folder / name, second_as_first)


def _cosmx_dup(folder: Path) -> None:
    # cell 1_2 renamed 1_1 (fov 1, cell_ID 1) in the matrix and the metadata alike
    for name in (f"{COSMX}_exprMat_file.csv", f"{COSMX}_metadata_file.csv"):

        def rename(frame: pd.DataFrame) -> None:
            frame.loc[(frame["fov"] == "1") & (frame["cell_ID"] == "2"), "cell_ID"] = "1"

        _edit_csv(folder / name, rename)


def _visium_dup(folder: Path) -> None:
    _rename_barcode(folder / "filtered_feature_bc_matrix.h5", 1, "AAACAAGTATCTCCCA-0")
    _edit_csv(
        folder / "spatial" / "tissue_positions.csv",
        lambda f: f.replace(
            {"barcode": {"AAACAAGTATCTCCCA-1": "AAACAAGTATCTCCCA-0"}}, inplace=True
        ),
    )


def _visium_positions_parquet(folder: Path) -> None:
    csv = folder / "spatial" / "tissue_positions.csv"
    pd.read_csv(csv).to_parquet(csv.with_suffix(".parquet"), index=False)
    csv.unlink()
    _cut(csv.with_suffix(".parquet"))


def _scale_factors(text: str) -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        (folder / "spatial" / "scalefactors_json.json").write_text(text)

    return write


@dataclass(frozen=True)
class Case:
    platform: str
    name: str
    breaks: Callable[[Path], None] | None  # None: the folder as written (sample S9)
    file: str  # the file the line must name, relative to the folder ("": the folder)
    rule: str
    place: str  # where: the line must say this too

    @property
    def id(self) -> str:
        return f"{self.platform}-{self.name}"


_UNREGISTERED = "(column 'section'): [registered-sections] section 'S9' is not a sample"
CASES = [
    # -- Xenium: Parquet cells and transcripts, an HDF5 matrix
    Case(
        "xenium",
        "nan-coordinate",
        lambda d: _edit_parquet(d / "cells.parquet", lambda f: _set(f, 2, "x_centroid", np.nan)),
        "cells.parquet",
        "finite-coordinates",
        "(row 'cell002', column 'x_centroid')",
    ),
    Case(
        "xenium",
        "duplicate-cell",
        _xenium_dup,
        "cell_feature_matrix.h5",
        "unique-cells",
        "(row 'cell000')",
    ),
    Case(
        "xenium",
        "transcript-to-missing-cell",
        lambda d: _edit_parquet(
            d / "transcripts.parquet", lambda f: _set(f, 5, "cell_id", "ghost")
        ),
        "transcripts.parquet",
        "transcripts-cells",
        "(row 'ghost', column 'cell_id'): [transcripts-cells] a transcript (row 5,",
    ),
    Case("xenium", "unregistered", None, "", "registered-sections", _UNREGISTERED),
    Case(
        "xenium",
        "truncated-parquet",
        lambda d: _cut(d / "transcripts.parquet"),
        "transcripts.parquet",
        "parquet",
        "magic bytes not found in footer",
    ),
    Case(
        "xenium",
        "truncated-h5",
        lambda d: _cut(d / "cell_feature_matrix.h5"),
        "cell_feature_matrix.h5",
        "tenx-matrix",
        "truncated file",
    ),
    # -- MERSCOPE: CSV files (metadata written in reverse order: file line 4 is cell 7)
    Case(
        "merscope",
        "nan-coordinate",
        lambda d: _edit_csv(d / "cell_metadata.csv", lambda f: _set(f, 2, "center_x", "")),
        "cell_metadata.csv",
        "finite-coordinates",
        "(line 4, row '110883424764611924400221639916314253476', column 'center_x')",
    ),
    Case(
        "merscope",
        "duplicate-cell",
        _merscope_dup,
        "cell_by_gene.csv",
        "unique-cells",
        "(line 3, row '110883424764611924400221639916314253469', column 'cell')",
    ),
    Case(
        "merscope",
        "transcript-to-missing-cell",
        lambda d: _edit_csv(
            d / "detected_transcripts.csv", lambda f: _set(f, 5, "cell_id", "424242")
        ),
        "detected_transcripts.csv",
        "transcripts-cells",
        "(line 7, row '424242', column 'cell_id')",
    ),
    Case("merscope", "unregistered", None, "", "registered-sections", _UNREGISTERED),
    Case(
        "merscope",
        "truncated-csv",
        lambda d: _cut(d / "detected_transcripts.csv"),
        "detected_transcripts.csv",
        "field-count",
        "(line 41)",
    ),
    # -- CosMx: CSV flat files, cells named {fov}_{cell_ID}
    Case(
        "cosmx",
        "nan-coordinate",
        lambda d: _edit_csv(
            d / f"{COSMX}_metadata_file.csv", lambda f: _set(f, 2, "CenterX_global_px", "nan")
        ),
        f"{COSMX}_metadata_file.csv",
        "finite-coordinates",
        "(line 4, row '1_2', column 'CenterX_global_px')",
    ),
    Case(
        "cosmx",
        "duplicate-cell",
        _cosmx_dup,
        f"{COSMX}_exprMat_file.csv",
        "unique-cells",
        "(line 6, row '1_1', column 'cell_ID')",
    ),
    Case(
        "cosmx",
        "transcript-to-missing-cell",
        lambda d: _edit_csv(d / f"{COSMX}_tx_file.csv", lambda f: _set(f, 5, "cell_ID", "99")),
        f"{COSMX}_tx_file.csv",
        "transcripts-cells",
        "(line 7, row '2_99', column 'cell_ID')",
    ),
    Case("cosmx", "unregistered", None, "", "registered-sections", _UNREGISTERED),
    Case(
        "cosmx",
        "truncated-csv",
        lambda d: _cut(d / f"{COSMX}_tx_file.csv"),
        f"{COSMX}_tx_file.csv",
        "field-count",
        "(line 41)",
    ),
    # -- Visium: spots (no transcripts), positions CSV or Parquet, scale factors JSON
    Case(
        "visium",
        "nan-coordinate",
        lambda d: _edit_csv(
            d / "spatial" / "tissue_positions.csv",
            lambda f: _set(f, 2, "pxl_row_in_fullres", "nan"),
        ),
        "spatial/tissue_positions.csv",
        "finite-coordinates",
        "(line 4, row 'AAACAAGTATCTCCCA-8', column 'pxl_row_in_fullres')",
    ),
    Case(
        "visium",
        "duplicate-cell",
        _visium_dup,
        "filtered_feature_bc_matrix.h5",
        "unique-cells",
        "(row 'AAACAAGTATCTCCCA-0')",
    ),
    Case("visium", "unregistered", None, "", "registered-sections", _UNREGISTERED),
    Case(
        "visium",
        "truncated-csv",
        lambda d: _cut(d / "spatial" / "tissue_positions.csv"),
        "spatial/tissue_positions.csv",
        "field-count",
        "(line 7)",
    ),
    Case(
        "visium",
        "truncated-parquet",
        _visium_positions_parquet,
        "spatial/tissue_positions.parquet",
        "parquet",
        "magic bytes not found in footer",
    ),
    Case(
        "visium",
        "scale-factors-missing-key",
        _scale_factors(json.dumps({"tissue_hires_scalef": 0.15})),
        "spatial/scalefactors_json.json",
        "scale-factors",
        "spot_diameter_fullres is missing",
    ),
    Case(
        "visium",
        "scale-factors-not-a-number",
        _scale_factors(json.dumps({"spot_diameter_fullres": "89.4", "tissue_hires_scalef": 0.15})),
        "spatial/scalefactors_json.json",
        "scale-factors",
        "spot_diameter_fullres is '89.4', expected a positive number",
    ),
    Case(
        "visium",
        "scale-factors-not-json",
        _scale_factors('{"spot_diameter_fullres": 89.4,'),
        "spatial/scalefactors_json.json",
        "scale-factors",
        "(line 1): [scale-factors] not valid JSON",
    ),
]


# -- one workspace, one Dask client for the module --------------------------------------


@dataclass
class Env:
    ws: Workspace
    sources: Path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One workspace for every case (each compares the catalog before and after its
    own ingest); the CLI opens the same data root from the environment and reuses the
    module's Dask client instead of starting a cluster per command."""
    base = tmp_path_factory.mktemp("bad-instruments")
    with pytest.MonkeyPatch.context() as mp, dask_client(CLUSTER, reuse=False):
        mp.setenv("RESISTOMICS_DATA_ROOT", str(base / "root"))
        mp.setenv("RESISTOMICS_CLUSTER__PROCESSES", "false")
        mp.setenv("RESISTOMICS_CLUSTER__N_WORKERS", "1")
        mp.setenv("COLUMNS", "250")
        ws = Workspace.open(Settings(data_root=str(base / "root"), cluster=CLUSTER))
        ws.catalog.register_study(
            STUDY, [SampleRow(sample_id="S0", subject_id="P0", phase="baseline")]
        )
        yield Env(ws, base / "sources")
        ws.close()


def _write(env: Env, case: Case, suffix: str) -> Path:
    folder = env.sources / f"{case.id}{suffix}"
    WRITERS[case.platform](folder, synthetic_section(n_cells=10, seed=2))
    if case.breaks is not None:
        case.breaks(folder)
    return folder


def _sample(case: Case) -> str:
    return "S9" if case.breaks is None else "S0"


def _check_line(line: str, folder: str, case: Case) -> None:
    assert "\n" not in line, line
    named = f"{folder}/{case.file}" if case.file else folder
    assert line.startswith(named), line
    assert f"[{case.rule}]" in line, line
    assert case.place in line, line


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ingest_quarantines_with_one_line_and_the_catalog_unchanged(env: Env, case: Case) -> None:
    src = _write(env, case, "")
    landed = Path(env.ws.settings.resolved_landing_zone) / STUDY / "spatial" / src.name
    landed.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src, landed)
    before = env.ws.catalog.snapshot()
    out = ingest(
        env.ws,
        str(landed),
        study=STUDY,
        modality="spatial",
        fmt=case.platform,
        options={"sample": _sample(case)},
    )
    assert out.status == "quarantined", out.message
    assert out.report["stage"] == "read" and out.report["rule"] == case.rule, out.report
    _check_line(out.message, str(landed), case)
    assert env.ws.catalog.snapshot() == before
    assert not env.ws.catalog.versions(study=STUDY, status=VersionStatus.PUBLISHED)
    assert not landed.exists()  # moved to the quarantine, with its report
    assert out.quarantine_uri is not None


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_cli_exits_non_zero_with_one_line(env: Env, case: Case) -> None:
    src = _write(env, case, "-cli")
    before = env.ws.catalog.snapshot()
    r = runner.invoke(
        app,
        [
            "ingest",
            str(src),
            "--study",
            STUDY,
            "--modality",
            "spatial",
            "--format",
            case.platform,
            "--sample",
            _sample(case),
        ],
    )
    assert r.exit_code == 1, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, r.stderr
    landed = Path(env.ws.settings.resolved_landing_zone) / STUDY / "spatial" / src.name
    _check_line(lines[0].removeprefix("error: "), str(landed), case)
    assert env.ws.catalog.snapshot() == before
