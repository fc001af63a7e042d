"""Hostile files under a memory cap: each ends in one line, a non-zero exit and quarantine.

Measured by a new user before these bounds: a 1.1 MB TSV with one 1 MiB gene name took
4.4 GB (the bulk reader sized every cell by the longest field), a 0.5 MB gzip whose
header inflates to 512 MiB ran past 8 GB, 2 MB VCF/MAF gzip bombs reached 4.4 GB, and a
FIFO in the landing zone hung the ingest forever. Here each file goes through
``resistomics ingest`` (or the pipeline, for what sits in the landing zone already) in a
subprocess whose address space is capped at 2 GiB (``RLIMIT_AS``) and whose run time
is bounded: it must exit 1 with one ``error:`` line naming the file and the rule, the
file must be quarantined with its report, and the catalog and the data root must hold
nothing new.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest

from modalities.variants.test_maf import COLUMNS as MAF_COLUMNS
from modalities.variants.test_maf import ROWS as MAF_ROWS
from modalities.variants.variant_files import GOOD_RECORDS, vcf_header
from resistomics._text_files import input_limits, open_checked_text
from resistomics.catalog import parse_sample_sheet
from resistomics.config import ClusterSettings, InputLimits, Settings
from resistomics.errors import InputError
from resistomics.pipeline import Workspace

MEMORY_CAP = 2048 << 20  # bytes of address space (the unbounded reads took 4.4-8 GB)
# seconds: a hang (a FIFO read) fails the test instead of the suite; the rows bomb is
# parsed up to the 16 MiB inflation floor first (93 s at a load average of 10)
RUN_TIMEOUT = 240
STUDY = "hostile"
SAMPLES = ("S1", "S2", "P1_baseline", "P1_relapse", "P1_relapse2", "TCGA-AB-01", "TCGA-AB-02")

# Caps the child's address space, then runs the library CLI (``resistomics``, minus the
# Prefect commands) or one pipeline ingest of a path already in the landing zone.
_CAPPED = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
    if sys.argv[1] == "pipeline":
        from resistomics.config import load_settings
        from resistomics.pipeline import Workspace, ingest
        ws = Workspace.open(load_settings())
        outcome = ingest(ws, sys.argv[2], study=sys.argv[3])
        print(outcome.status, file=sys.stderr)
        print("error: " + outcome.message, file=sys.stderr)
        sys.exit(1 if outcome.status == "quarantined" else 0)
    from resistomics.cli import app
    sys.argv = ["resistomics", *sys.argv[1:]]
    app()
    """
)


def _gzip_repeated(path: Path, head: bytes, block: bytes, times: int, tail: bytes = b"") -> Path:
    """A gzip file of ``head``, ``block`` x ``times`` and ``tail``, written without the
    inflated bytes ever existing at once. ``block`` is deflated once, after a full flush
    (which resets the compressor's window, so the same input gives the same bytes), and
    those bytes are written ``times`` times: a valid DEFLATE stream of the repeated input
    (RFC 1951), in a gzip member whose trailer holds the CRC-32 and length of the whole
    inflated content (RFC 1952)."""
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    packed_block = raw.compress(block) + raw.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + len(block) * times + len(tail)
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")  # deflate, no name, no mtime
        head_packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        f.write(head_packer.compress(head) + head_packer.flush(zlib.Z_FULL_FLUSH))
        for _ in range(times):
            f.write(packed_block)
        tail_packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        f.write(tail_packer.compress(tail) + tail_packer.flush(zlib.Z_FINISH))
        f.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    return path


@dataclass(frozen=True)
class Hostile:
    """A hostile input, the modality it is given as and the rule that must refuse it."""

    name: str
    modality: str
    rule: str


def _long_gene_name(d: Path) -> Path:
    rows = ["gene_id\tS1\tS2", *(f"G{i}\t{i}\t{i + 1}" for i in range(10_000))]
    rows[5] = "G" + "x" * ((1 << 20) - 100) + "\t1\t2"  # one line, just under 1 Mi characters
    path = d / "long_gene_name.tsv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _header_bomb(d: Path) -> Path:
    # 0.5 MB of gzip whose header line inflates to 512 MiB
    return _gzip_repeated(
        d / "header_bomb.tsv.gz", b"gene_id\tS1", b"\tS2" * (1 << 18), 683, b"\nG1\t1\n"
    )


def _rows_bomb(d: Path) -> Path:
    # valid short rows, ~0.3 MB inflating to 256 MiB
    return _gzip_repeated(d / "rows_bomb.tsv.gz", b"gene_id\tS1\tS2\n", b"G\t1\t2\n" * 65536, 683)


def _vcf_bomb(d: Path) -> Path:
    record = GOOD_RECORDS[0].encode()
    return _gzip_repeated(
        d / "calls_bomb.vcf.gz", vcf_header().encode(), record * ((1 << 20) // len(record)), 256
    )


def _maf_bomb(d: Path) -> Path:
    head = ("#version 2.4\n" + "\t".join(MAF_COLUMNS) + "\n").encode()
    row = ("\t".join(MAF_ROWS[0]) + "\n").encode()
    return _gzip_repeated(d / "calls_bomb.maf.gz", head, row * ((1 << 20) // len(row)), 256)


def _barcodes_bomb(d: Path) -> Path:
    run = d / "tenx_barcodes_bomb"
    run.mkdir()
    (run / "features.tsv.gz").write_bytes(gzip.compress(b"G1\tSYM1\tGene Expression\n"))
    _gzip_repeated(run / "barcodes.tsv.gz", b"", b"AAACCTGAGAAACCAT-1\tS1\n" * 50_000, 256)
    (run / "matrix.mtx.gz").write_bytes(
        gzip.compress(b"%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 5\n")
    )
    return run


def _h5ad_bomb(d: Path) -> Path:
    # 16 GB of dense X declared in a file of a few KB: chunks never written read as zeros
    path = d / "declared_bomb.h5ad"
    with h5py.File(path, "w") as f:
        for key, names in (("obs", ["C1", "C2"]), ("var", ["G1"])):
            g = f.create_group(key)
            g.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0"})
            g.attrs["_index"] = "_index"
            g.attrs["column-order"] = np.array([], dtype="S")
            g.create_dataset(
                "_index", data=np.array(names, dtype=object), dtype=h5py.string_dtype()
            )
        f.create_dataset(
            "X", shape=(100_000, 20_000), dtype="f8", chunks=(1000, 1000), compression="gzip"
        )
        f["X"].attrs.update({"encoding-type": "array", "encoding-version": "0.2.0"})
    return path


HOSTILE = {
    "long_gene_name.tsv": (
        _long_gene_name,
        Hostile("long_gene_name.tsv", "expression", "field-length"),
    ),
    "header_bomb.tsv.gz": (
        _header_bomb,
        Hostile("header_bomb.tsv.gz", "expression", "line-length"),
    ),
    "rows_bomb.tsv.gz": (_rows_bomb, Hostile("rows_bomb.tsv.gz", "expression", "gzip-ratio")),
    "calls_bomb.vcf.gz": (_vcf_bomb, Hostile("calls_bomb.vcf.gz", "variants", "gzip-ratio")),
    "calls_bomb.maf.gz": (_maf_bomb, Hostile("calls_bomb.maf.gz", "variants", "gzip-ratio")),
    "tenx_barcodes_bomb": (
        _barcodes_bomb,
        Hostile("tenx_barcodes_bomb", "expression", "gzip-ratio"),
    ),
    "declared_bomb.h5ad": (_h5ad_bomb, Hostile("declared_bomb.h5ad", "expression", "gzip-ratio")),
}


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    return {name: build(d) for name, (build, _) in HOSTILE.items()}


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    settings = Settings(data_root=str(tmp_path / "root"))
    ws = Workspace.open(settings)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(
        "sample_id\tsubject_id\tphase\n"
        + "".join(
            f"{s}\tP{i}\t{'baseline' if i % 2 else 'progression'}\n" for i, s in enumerate(SAMPLES)
        )
    )
    ws.catalog.register_study(STUDY, parse_sample_sheet(sheet))
    ws.close()
    yield tmp_path / "root"


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # none of the session's Prefect/platform settings (other tests set some): the capped
    # child runs with these and the machine's environment only
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RESISTOMICS_"))},
        "RESISTOMICS_DATA_ROOT": str(root),
        "RESISTOMICS_CLUSTER__PROCESSES": "false",
        "RESISTOMICS_CLUSTER__N_WORKERS": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc's per-thread arenas reserve address space
    }
    return subprocess.run(
        [sys.executable, "-c", _CAPPED.format(cap=MEMORY_CAP), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )


def _snapshot(root: Path) -> tuple[list[tuple[object, ...]], list[str]]:
    ws = Workspace.open(Settings(data_root=str(root), cluster=ClusterSettings(processes=False)))
    try:
        versions = ws.catalog.snapshot()
    finally:
        ws.close()
    datasets = root / "datasets"
    # files only: a refused read may leave its dataset's (empty) directory
    stored = sorted(str(p) for p in datasets.rglob("*") if not p.is_dir())
    return versions, stored


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    line = lines[0]
    assert len(line) < 2000, line[:300]
    return line


def _quarantine_report(root: Path) -> dict[str, object]:
    (report,) = (root / "quarantine" / STUDY).glob("*/report.json")
    return dict(json.loads(report.read_text()))


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_file_is_refused_in_one_line_within_the_memory_cap(
    root: Path, hostile_files: dict[str, Path], name: str
) -> None:
    hostile = HOSTILE[name][1]
    before = _snapshot(root)

    result = _run(
        root, "ingest", str(hostile_files[name]), "--study", STUDY, "--modality", hostile.modality
    )

    assert result.returncode == 1, result.stderr[-3000:]
    line = _error_line(result)
    assert f"{hostile.name}" in line and f"[{hostile.rule}]" in line, line
    assert "quarantined, report at" in line
    report = _quarantine_report(root)
    assert report["rule"] == hostile.rule
    assert _snapshot(root) == before


def _fifo_in_landing(root: Path) -> Path:
    landed = root / "landing" / STUDY / "expression" / "counts.tsv"
    landed.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(landed)
    return landed


def _fifo_in_landed_directory(root: Path) -> Path:
    run = root / "landing" / STUDY / "expression" / "tenx_run"
    run.mkdir(parents=True)
    (run / "features.tsv").write_text("G1\tSYM1\tGene Expression\n")
    (run / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 5\n"
    )
    os.mkfifo(run / "barcodes.tsv")
    return run


@pytest.mark.parametrize("make", [_fifo_in_landing, _fifo_in_landed_directory])
def test_a_fifo_in_the_landing_zone_is_quarantined_unread(root: Path, make) -> None:  # type: ignore[no-untyped-def]
    landed = make(root)
    before = _snapshot(root)

    result = _run(root, "pipeline", str(landed), STUDY)  # would block forever on open()

    assert result.returncode == 1, result.stderr[-3000:]
    line = _error_line(result)
    assert "[file-type]" in line and "not a regular file" in line, line
    assert _quarantine_report(root)["rule"] == "file-type"
    assert not landed.exists()
    assert _snapshot(root) == before


def test_the_cli_refuses_a_fifo_before_copying_it(root: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "counts.tsv"
    os.mkfifo(fifo)

    result = _run(root, "ingest", str(fifo), "--study", STUDY, "--modality", "expression")

    assert result.returncode == 1, result.stderr[-3000:]
    assert "[file-type]" in _error_line(result)
    assert not list((root / "landing").rglob("counts.tsv*"))


def test_a_sample_sheet_bomb_is_refused_within_the_memory_cap(root: Path, tmp_path: Path) -> None:
    sheet = _gzip_repeated(
        tmp_path / "sheet.tsv.gz", b"sample_id\tsubject_id\n", b"S9\tP9\n" * 100_000, 256
    )
    result = _run(root, "study", "register", str(sheet), "--study", "other")

    assert result.returncode == 1, result.stderr[-3000:]
    assert "[gzip-ratio]" in _error_line(result)


def _dense_single_cell_export(path: Path) -> bytes:
    """A count matrix exported dense (as GEO series often are): 2,000 genes x 3,000
    cells, 99.9 % zeros (negative binomial counts where not zero), gzip -6; returns the
    inflated bytes."""
    rng = np.random.default_rng(12)
    counts = rng.negative_binomial(2, 0.3, size=(2000, 3000)) + 1
    counts[rng.random(counts.shape) < 0.999] = 0
    lines = ["gene_id\t" + "\t".join(f"AAACCTGAGA{c:06d}-1" for c in range(3000))]
    lines += [f"ENSG{g:011d}\t" + "\t".join(map(str, row)) for g, row in enumerate(counts)]
    raw = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(raw, 6))
    return raw


def test_a_near_all_zero_table_of_a_few_mb_is_not_taken_for_a_bomb(tmp_path: Path) -> None:
    path = tmp_path / "dense_export.tsv.gz"
    raw = _dense_single_cell_export(path)
    ratio = len(raw) / path.stat().st_size
    # past the old rule (200x once past 4 MiB): it was refused as a bomb
    assert ratio > 200 and len(raw) > 4 << 20, (ratio, len(raw))

    with open_checked_text(path) as f:
        assert sum(len(line) for line in f) == len(raw)  # read whole, every line

    with (
        input_limits(InputLimits(inflation_floor_bytes=4 << 20)),
        open_checked_text(path) as f,
        pytest.raises(InputError) as refused,
    ):
        for _ in f:
            pass
    assert refused.value.rule == "gzip-ratio"
