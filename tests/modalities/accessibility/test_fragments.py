"""10x fragments files: stored by sample and contig, counted over a peak set against a
brute-force oracle, and every bad input quarantined with one line."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from atac_files import peaks_of, write_fragments
from resistomics.catalog import SampleRow
from resistomics.modalities.accessibility._fragments import insertion_counts
from resistomics.pipeline import Workspace, ingest, validate_version
from resistomics.storage import layout, open_sparse_matrix

STUDY = "frag"
SAMPLES = ("S1", "S2")


def _register(ws: Workspace) -> None:
    ws.catalog.register_study(STUDY, [SampleRow(sample_id=s, subject_id=s) for s in SAMPLES])


def _land(ws: Workspace, src: Path, name: str | None = None) -> str:
    target = Path(ws.settings.resolved_landing_zone) / STUDY / "accessibility" / (name or src.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    if src.is_dir():
        shutil.copytree(src, target)
    else:
        shutil.copy(src, target)
    return str(target)


def _fragments(n: int, seed: int) -> list[tuple[str, int, int, str, int]]:
    """``n`` distinct fragments of 12 barcodes over chr1/chr2, unsorted."""
    rng = np.random.default_rng(seed)
    rows = set()
    while len(rows) < n:
        c = "chr1" if rng.random() < 0.6 else "chr2"
        s = int(rng.integers(9_000, 40_000))
        rows.add(
            (
                c,
                s,
                s + int(rng.integers(40, 700)),
                f"BC{int(rng.integers(12)):02d}-1",
                int(rng.integers(1, 4)),
            )
        )
    out = sorted(rows)
    rng.shuffle(out)  # any order: no barcode or position sorting needed
    return out


def _table(path: Path, mapping: dict[str, str]) -> Path:
    path.write_text("barcode\tsample_id\n" + "".join(f"{b}\t{s}\n" for b, s in mapping.items()))
    return path


def _oracle(
    rows: list[tuple[str, int, int, str, int]],
    peaks: list[tuple[str, int, int]],
    barcodes: list[str],
) -> np.ndarray:
    """Insertions (start and end - 1) per barcode and peak, by looping over every pair."""
    out = np.zeros((len(barcodes), len(peaks)))
    index = {b: i for i, b in enumerate(barcodes)}
    for c, s, e, b, _ in rows:
        for j, (pc, ps, pe) in enumerate(peaks):
            if pc == c:
                out[index[b], j] += (ps <= s < pe) + (ps <= e - 1 < pe)
    return out


def test_insertions_count_in_every_overlapping_peak() -> None:
    peaks = pd.DataFrame({"contig": ["chr1"] * 3, "start": [100, 150, 400], "end": [200, 300, 500]})
    frag, peak, side = insertion_counts(
        np.array(["chr1", "chr1", "chr2"], dtype=object),
        np.array([160, 90, 160]),
        np.array([450, 120, 170]),
        peaks,
    )
    hits = sorted(zip(frag.tolist(), peak.tolist(), side.tolist(), strict=True))
    # fragment 0: start 160 in peaks 0 and 1, end-1 449 in peak 2; fragment 1: end-1 119 in 0
    assert hits == [(0, 0, 0), (0, 1, 0), (0, 2, 1), (1, 0, 1)]


@pytest.mark.parametrize("indexed", [True, False], ids=["tabix", "bgzip-only"])
def test_fragments_counted_over_peaks_equal_the_oracle(
    workspace: Workspace, tmp_path: Path, indexed: bool
) -> None:
    _register(workspace)
    rows = _fragments(3000, seed=1)
    if indexed:
        rows = sorted(rows)  # tabix needs position order; the reader does not
    outs = tmp_path / "outs"
    outs.mkdir()
    write_fragments(outs / "fragments.tsv.gz", rows, index=indexed)
    peaks = peaks_of(12, width=700)
    (outs / "peaks.bed").write_text("".join(f"{c}\t{s}\t{e}\n" for c, s, e in peaks))
    barcodes = sorted({r[3] for r in rows})
    mapping = {b: SAMPLES[i % 2] for i, b in enumerate(barcodes) if i != 11}  # BC11: background
    table = _table(tmp_path / "bc.tsv", mapping)

    out = ingest(
        workspace, _land(workspace, outs), study=STUDY, options={"barcode_samples": str(table)}
    )

    assert out.status == "published", out.message
    assert out.version.dataset_type == "accessibility.counts"
    path = workspace.root.to_path(out.version.uri)
    store = open_sparse_matrix(workspace.root, path)
    got = pd.DataFrame(store.cells().compute().toarray(), index=store.obs.index)
    kept = [b for b in barcodes if b in mapping]
    assert sorted(got.index) == kept
    expected = _oracle([r for r in rows if r[3] in mapping], peaks, kept)
    np.testing.assert_array_equal(got.loc[kept].to_numpy(), expected)
    assert dict(zip(store.obs.index, store.obs["sample_id"], strict=True)) == mapping
    unique = pd.Series([r[3] for r in rows]).value_counts()
    assert store.obs["unique_fragments"].to_dict() == {b: unique[b] for b in kept}
    assert ((store.obs["fraction_in_peaks"] > 0) & (store.obs["fraction_in_peaks"] <= 1)).all()
    # the fragments, by sample and contig, hold every row of the registered barcodes
    frags = layout("partitioned-table@1").read_table(workspace.root, path, "fragments")  # type: ignore[misc]
    stored = sorted(
        zip(
            frags["contig"].astype(str),
            frags["start"],
            frags["end"],
            frags["barcode"],
            frags["count"],
            strict=True,
        )
    )
    assert stored == sorted(r for r in rows if r[3] in mapping)
    assert out.version.parameters.get("tabix_contigs") == (2 if indexed else None)
    assert validate_version(workspace, out.version).success


def test_fragments_without_peaks_are_stored_as_fragments(
    workspace: Workspace, tmp_path: Path
) -> None:
    _register(workspace)
    rows = _fragments(500, seed=2)
    src = write_fragments(tmp_path / "S1.fragments.tsv.gz", rows, index=False)
    out = ingest(workspace, _land(workspace, src), study=STUDY, options={"sample": "S1"})
    assert out.status == "published", out.message
    assert out.version.dataset_type == "accessibility.fragments"
    path = workspace.root.to_path(out.version.uri)
    spec = layout("partitioned-table@1")
    assert spec.tables is not None and spec.read_table is not None
    assert spec.tables(workspace.root, path) == ["barcodes", "fragments"]
    frags = spec.read_table(workspace.root, path, "fragments")
    assert len(frags) == 500 and set(frags["sample_id"].astype(str)) == {"S1"}
    assert validate_version(workspace, out.version).success


def test_repeated_fragment_rows_fail_validation(workspace: Workspace, tmp_path: Path) -> None:
    _register(workspace)
    rows = _fragments(200, seed=3)
    rows.append(rows[10])
    src = write_fragments(tmp_path / "S1.fragments.tsv.gz", rows, index=False)
    out = ingest(workspace, _land(workspace, src), study=STUDY, options={"sample": "S1"})
    assert out.status == "quarantined", out.message
    assert "[validation]" in out.message and "unique-fragments-rows" in out.message
    c, s, e, b, _ = rows[10]
    assert f"{c}:{s}-{e} {b} twice" in out.message


def _bad(tmp_path: Path, defect: str) -> tuple[Path, dict[str, str], str, str]:
    rows = _fragments(300, seed=4)
    options = {"sample": "S1"}
    line = 3 + 7  # two '#' header lines, then row 8 of the data
    c, s, e, b, n = rows[7]
    if defect == "start-after-end":
        rows[7], rule = (c, e, s, b, n), "fragment-interval"
    elif defect == "negative-start":
        rows[7], rule = (c, -3, e, b, n), "non-negative-coordinates"
    elif defect == "unknown-contig":
        rows[7], rule = ("chrUn_x", s, e, b, n), "known-contigs"
    elif defect == "unregistered-sample":
        table = _table(tmp_path / "bc.tsv", {r[3]: ("S9" if r[3] == b else "S1") for r in rows})
        options, rule = {"barcode_samples": str(table)}, "registered-samples"
        path = write_fragments(tmp_path / "fragments.tsv.gz", rows, index=False)
        return path, options, rule, "sample 'S9'"
    elif defect in ("field-count", "truncated-gzip"):
        path = write_fragments(
            tmp_path / "fragments.tsv.gz",
            rows if defect == "field-count" else _fragments(60_000, 5),
            index=False,
        )
        data = gzip.decompress(path.read_bytes())
        if defect == "field-count":
            lines = data.decode().splitlines()
            lines[line - 1] = lines[line - 1].rsplit("\t", 1)[0]
            path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
            return path, options, "field-count", f"(line {line})"
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
        return path, options, "gzip-integrity", "(line "
    else:
        raise AssertionError(defect)
    path = write_fragments(tmp_path / "fragments.tsv.gz", rows, index=False)
    return path, options, rule, f"(line {line})"


@pytest.mark.parametrize(
    "defect",
    [
        "start-after-end",
        "negative-start",
        "unknown-contig",
        "unregistered-sample",
        "field-count",
        "truncated-gzip",
    ],
)
def test_bad_fragments_are_quarantined_with_one_line(
    workspace: Workspace, tmp_path: Path, defect: str
) -> None:
    _register(workspace)
    before = workspace.catalog.snapshot()
    path, options, rule, place = _bad(tmp_path, defect)
    landed = _land(workspace, path)
    out = ingest(workspace, landed, study=STUDY, options=options)
    assert out.status == "quarantined", out.message
    assert "\n" not in out.message and out.report["stage"] == "read"
    assert f"[{rule}]" in out.message and place in out.message, out.message
    assert workspace.catalog.snapshot() == before
    assert not list(Path(workspace.settings.data_root).glob(f"**/{STUDY}/**/*.parquet"))


def test_tss_enrichment_of_planted_fragments_is_high_and_of_uniform_ones_about_1(
    tmp_path: Path,
) -> None:
    """Planted oracle (issue 12): fragments placed on TSSs score far above 1 (ArchR's
    2 (W / 101) / max(F / 100, 0.2)); fragments uniform over +-2 kb of them score ~1."""
    from resistomics.config import ClusterSettings, Settings

    rng = np.random.default_rng(11)
    tss = [("chr1", 100_000 + 50_000 * i) for i in range(20)]
    bed = tmp_path / "tss.bed"
    bed.write_text("".join(f"{c}\t{p}\t{p + 1}\n" for c, p in tss))
    rows = set()
    for i in range(4000):
        c, p = tss[i % 20]
        s = p + int(rng.integers(-40, 20))  # on the TSS: both ends inside the window
        rows.add((c, s, s + int(rng.integers(10, 30)), "ON-1", 1))
        s = p + int(rng.integers(-2600, 2400))  # uniform over (and beyond) the +-2 kb region
        rows.add((c, s, s + int(rng.integers(50, 200)), "FLAT-1", 1))
    src = write_fragments(tmp_path / "S1.fragments.tsv.gz", sorted(rows), index=False)
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={"accessibility": {"tss_bed": str(bed), "min_tss_enrichment": 0.5}},
    )
    ws = Workspace.open(settings)
    try:
        _register(ws)
        out = ingest(ws, _land(ws, src), study=STUDY, options={"sample": "S1"})
        assert out.status == "published", out.message
        path = ws.root.to_path(out.version.uri)
        qc = layout("partitioned-table@1").read_table(ws.root, path, "barcodes")  # type: ignore[misc]
        score = dict(zip(qc["barcode"], qc["tss_enrichment"], strict=True))
        assert score["ON-1"] > 20
        assert score["FLAT-1"] == pytest.approx(1.0, abs=0.25)
    finally:
        ws.close()


def test_tile_matrix_from_fragments_equals_a_brute_force_count(tmp_path: Path) -> None:
    """500-bp tiles (setting tile_size, with chrom sizes): every insertion adds 1 to its
    tile; the stored tile store (both orientations) equals a loop over the fragments."""
    from resistomics.config import ClusterSettings, Settings

    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("chr1\t45000\nchr2\t41250\n")
    rows = _fragments(2500, seed=12)
    src = write_fragments(tmp_path / "S1.fragments.tsv.gz", rows, index=False)
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        genes_per_block=7,  # several tile blocks per contig
        modalities={"accessibility": {"chrom_sizes": str(sizes), "tile_size": 500}},
    )
    ws = Workspace.open(settings)
    try:
        _register(ws)
        out = ingest(ws, _land(ws, src), study=STUDY, options={"sample": "S1"})
        assert out.status == "published", out.message
        store = open_sparse_matrix(
            ws.root,
            ws.root.to_path(out.version.uri),
            adata="tiles/expression.zarr",
            by_gene="tiles/by_gene.zarr",
        )
        expected: dict[tuple[str, str], int] = {}
        for c, s, e, b, _ in rows:
            for site in (s, e - 1):
                tile = site // 500 * 500
                key = (b, f"{c}:{tile}-{min(tile + 500, 45000 if c == 'chr1' else 41250)}")
                expected[key] = expected.get(key, 0) + 1
        for matrix in (store.cells().compute(), store.genes().compute()):
            dense = pd.DataFrame(matrix.toarray(), index=store.obs.index, columns=store.var.index)
            got = {(b, t): int(v) for (b, t), v in dense.stack().items() if v}
            assert got == expected
        assert (store.var["end"] - store.var["start"] <= 500).all()
    finally:
        ws.close()


def test_nucleosome_signal_at_ingest_equals_signac_counts_over_every_chunk(
    tmp_path: Path,
) -> None:
    """Signac's nucleosome signal (mononucleosomal 147-294 bp over nucleosome-free < 147 bp
    fragments) per barcode, counted chunk by chunk at ingest (2 chunks here), equals the
    count over the whole file: a barcode planted with 3 mono per free fragment scores 3,
    one with only free fragments 0, one with neither class NaN; the obs and barcode table
    both hold it, and a bound below the planted 3 quarantines the file."""
    from resistomics.config import ClusterSettings, Settings

    rows = []
    for i in range(200):  # 150 mono (147..294) + 50 free (< 147) fragments
        rows.append(
            ("chr1", 10_000 + 97 * i, 10_000 + 97 * i + (200 if i % 4 else 100), "MONO-1", 1)
        )
        rows.append(("chr2", 10_000 + 89 * i, 10_000 + 89 * i + 60, "FREE-1", 1))
        rows.append(("chr1", 50_000 + 83 * i, 50_000 + 83 * i + 500, "DI-1", 1))  # neither
    rows = sorted(set(rows))
    src = write_fragments(tmp_path / "S1.fragments.tsv.gz", rows, index=False)
    peaks = tmp_path / "peaks.bed"
    peaks.write_text("chr1\t9000\t80000\nchr2\t9000\t40000\n")
    for bound, status in ((None, "published"), (2.5, "quarantined")):
        settings = Settings(
            data_root=str(tmp_path / f"root-{bound}"),
            cluster=ClusterSettings(n_workers=1, processes=False),
            modalities={
                "accessibility": {"fragments_per_chunk": 300, "max_nucleosome_signal": bound}
            },
        )
        ws = Workspace.open(settings)
        try:
            _register(ws)
            out = ingest(
                ws, _land(ws, src), study=STUDY, options={"sample": "S1", "peaks": str(peaks)}
            )
            assert out.status == status, out.message
            if status == "quarantined":
                assert "nucleosome-signal" in out.message, out.message
                continue
            path = ws.root.to_path(out.version.uri)
            qc = layout("partitioned-table@1").read_table(ws.root, path, "barcodes")  # type: ignore[misc]
            signal = dict(zip(qc["barcode"], qc["nucleosome_signal"], strict=True))
            assert signal["MONO-1"] == 3.0
            assert signal["FREE-1"] == 0.0
            assert np.isnan(signal["DI-1"])
            store = open_sparse_matrix(ws.root, path)
            assert store.obs.loc["MONO-1", "nucleosome_signal"] == 3.0
        finally:
            ws.close()


def test_tile_matrix_suite_passes_stored_tiles_and_names_each_broken_rule(
    tmp_path: Path,
) -> None:
    """The tiles/ store of a fragments ingest is validated in the same publish (suites
    ``tiles`` and ``tile_chunks``); a store whose tiles break the rules (re-validated
    with its recorded tile size changed, a planted off-grid / too-wide / beyond-end
    table, negative counts) fails with each rule named and its examples."""
    import zarr

    from resistomics.config import ClusterSettings, Settings
    from resistomics.dataset_types import dataset_type
    from resistomics.modalities.accessibility._summaries import _tile_block
    from resistomics.validation import run_expectations

    sizes = tmp_path / "chrom.sizes"
    sizes.write_text("chr1\t45000\nchr2\t41250\n")
    rows = _fragments(800, seed=13)
    src = write_fragments(tmp_path / "S1.fragments.tsv.gz", rows, index=False)
    settings = Settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False),
        modalities={"accessibility": {"chrom_sizes": str(sizes), "tile_size": 500}},
    )
    ws = Workspace.open(settings)
    try:
        _register(ws)
        out = ingest(ws, _land(ws, src), study=STUDY, options={"sample": "S1"})
        assert out.status == "published", out.message
        report = validate_version(ws, out.version)
        ran = {(o.table, o.rule) for o in report.outcomes}
        assert {("tiles", "tile-grid"), ("tile_chunks", "tile-non-negative-counts")} <= ran
        assert report.success
        # the same store read with a 300-bp tile size: starts off the grid, tiles too wide
        path = ws.root.to_path(out.version.uri)
        group = zarr.open_group(ws.root.mapper(f"{path}/tiles/by_gene.zarr"), mode="r+")
        meta = dict(group.attrs["metadata"])  # type: ignore[arg-type]
        group.attrs["metadata"] = {**meta, "tile_size": 300}
        failed = {o.rule for o in validate_version(ws, out.version).failures}
        assert {"tile-grid", "tile-width"} <= failed
        assert "tile-within-contig" not in failed
        # a planted table: each broken rule counted and shown
        bad = pd.DataFrame(
            {
                "contig": ["chr1", "chr1", "chr2", "chrZ"],
                "start": [250, 1000, 41000, 0],
                "end": [750, 1900, 41500, 500],
            },
            index=["t0", "t1", "t2", "t3"],
        )
        block = _tile_block(bad, 0, {"chr1": 45000, "chr2": 41250}, 500)
        assert block["n_misaligned"] == 1 and block["misaligned_examples"][0].startswith("t0")
        assert block["n_bad_width"] == 1 and block["width_examples"][0].startswith("t1")
        assert block["n_beyond_end"] == 1 and block["beyond_examples"][0].startswith("t2")
        assert block["n_unknown_contig"] == 1
        dt = dataset_type("accessibility.fragments")
        chunks = pd.DataFrame(
            [
                {
                    "n_nan": 0,
                    "nan_examples": [],
                    "n_negative": 2,
                    "negative_examples": ["c/t=-1"],
                    "n_non_integer": 0,
                    "non_integer_examples": [],
                }
            ]
        )
        planted = run_expectations(
            dataset_type=dt.name,
            dataset_type_version=dt.version,
            suites={k: v for k, v in dt.expectations.items() if k in ("tiles", "tile_chunks")},
            tables={"tiles": pd.DataFrame([block]), "tile_chunks": chunks},
            params={},
        )
        assert {o.rule for o in planted.failures} == {
            "tile-grid",
            "tile-width",
            "tile-within-contig",
            "tile-known-contigs",
            "tile-non-negative-counts",
        }
    finally:
        ws.close()
