"""The MAF reader: the real APL cohort (CR line endings, no read counts) and GDC-style MAFs."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from modalities.variants.variant_files import read_all, write_text
from resistomics.errors import InputError, UnregisteredSampleError
from resistomics.modalities import reader_for
from resistomics.modalities.variants import CANONICAL_COLUMNS, VariantReadContext, read_maf
from shared_data import APL

COLUMNS = [
    "Hugo_Symbol",
    "Entrez_Gene_Id",
    "Chromosome",
    "Start_Position",
    "End_Position",
    "Variant_Classification",
    "Reference_Allele",
    "Tumor_Seq_Allele1",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
    "HGVSp_Short",
    "t_depth",
    "t_ref_count",
    "t_alt_count",
]
ROWS = [
    ["PML", "5371", "chr15", "74315213", "74315213", "Missense_Mutation", "C", "C", "T",
     "TCGA-AB-01", "p.A216V", "100", "60", "40"],
    ["RARA", "5914", "chr17", "38504568", "38504568", "Missense_Mutation", "G", "G", "A",
     "TCGA-AB-02", "p.R276Q", "", "30", "10"],
    ["FLT3", "2322", "chr13", "28608139", "28608140", "In_Frame_Ins", "-", "-", "CAT",
     "TCGA-AB-01", "p.D600_L601insXX", "NA", "NA", "NA"],
]  # fmt: skip
SAMPLES = frozenset({"TCGA-AB-01", "TCGA-AB-02"})


def maf_text(rows: list[list[str]] = ROWS, columns: list[str] = COLUMNS, nl: str = "\n") -> str:
    lines = ["#version 2.4", "\t".join(columns), *("\t".join(r) for r in rows)]
    return nl.join(lines) + nl


def ctx(samples: frozenset[str] = SAMPLES, **kw: int) -> VariantReadContext:
    return VariantReadContext(
        registered_samples=samples, subjects={s: s[:10] for s in samples}, **kw
    )


def apl_oracle(path: Path) -> pd.DataFrame:
    """The file parsed independently of the reader: CR-separated lines, tab-separated fields."""
    lines = [x for x in gzip.decompress(path.read_bytes()).decode().split("\r") if x.strip()]
    header = lines[0].split("\t")
    return pd.DataFrame([x.split("\t") for x in lines[1:]], columns=header)


@pytest.mark.parametrize("name", ["APL_primary.maf.gz", "APL_relapse.maf.gz"])
def test_real_apl_cohort_reads(name: str) -> None:
    path = APL / name
    oracle = apl_oracle(path)
    fmt, reader = reader_for("variants", str(path))
    assert fmt == "maf"
    frame = read_all(reader(path, ctx(frozenset(oracle.Tumor_Sample_Barcode), rows_per_batch=64)))
    assert list(frame.columns) == list(CANONICAL_COLUMNS)
    assert len(frame) == len(oracle)
    assert frame.sample_id.tolist() == oracle.Tumor_Sample_Barcode.tolist()
    assert set(frame.gene.dropna()) == set(oracle.Hugo_Symbol) - {"Unknown"}
    # no read counts in these files: counts and VAF are missing, not zero
    assert frame[["ref_count", "alt_count", "depth"]].isna().all().all()
    assert frame.vaf.isna().all()
    # protein changes come from the amino_acid_change column, without 'p.'
    pml = frame[frame.gene == "PML"]
    assert not pml.protein_change.str.startswith("p.").any()
    assert pml.consequence.notna().all()


def test_apl_relapse_enriched_for_pml_rara() -> None:
    """Known biology (../shared/data/README.md): relapse after ATRA/arsenic is enriched
    for mutations in the drug targets PML and RARA."""
    share = {}
    for phase in ("primary", "relapse"):
        path = APL / f"APL_{phase}.maf.gz"
        samples = frozenset(apl_oracle(path).Tumor_Sample_Barcode)
        frame = read_all(read_maf(path, ctx(samples)))
        hit = frame[frame.gene.isin(["PML", "RARA"])].sample_id.nunique()
        share[phase] = hit / frame.sample_id.nunique()
        if phase == "relapse":
            assert {"PML", "RARA"} <= set(frame.gene.dropna())
    assert share["relapse"] > 2 * share["primary"]


def test_apl_relapse_known_row() -> None:
    path = APL / "APL_relapse.maf.gz"
    oracle = apl_oracle(path)
    frame = read_all(read_maf(path, ctx(frozenset(oracle.Tumor_Sample_Barcode))))
    first = frame.iloc[0]
    assert (first.gene, first.chrom, first.pos, first.ref, first.alt, first.sample_id) == (
        "AARSD1",
        "chr17",
        41103836,
        "C",
        "A",
        "DS2R",
    )
    assert (first.protein_change, first.consequence) == ("V536L", "missense_variant")
    # the FLT3-ITD row (no coordinates, no allele) becomes a symbolic tandem duplication
    itd = frame[frame.pos.isna()]
    assert len(itd) == 1 and itd.alt.tolist() == ["<DUP:TANDEM>"]


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_line_endings_give_identical_frames(tmp_path: Path, compression: str) -> None:
    frames = []
    for label, nl in (("lf", "\n"), ("crlf", "\r\n"), ("cr", "\r")):
        path = write_text(tmp_path / f"{label}.maf", maf_text(nl=nl), compression)
        frames.append(read_all(read_maf(path, ctx())))
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])
    f = frames[0]
    assert f.gene.tolist() == ["PML", "RARA", "FLT3"]
    assert f.protein_change.tolist() == ["A216V", "R276Q", "D600_L601insXX"]
    assert f.consequence.tolist() == ["missense_variant", "missense_variant", "inframe_insertion"]
    assert f.ref_count.tolist()[:2] == [60, 30]
    assert f.depth.tolist()[:2] == [100, 40]  # t_depth, else ref + alt
    assert f.vaf.tolist()[:2] == pytest.approx([0.4, 0.25])
    assert pd.isna(f.vaf.iloc[2]) and pd.isna(f.alt_count.iloc[2])
    assert f.subject_id.tolist() == ["TCGA-AB-01", "TCGA-AB-02", "TCGA-AB-01"]


def test_batches_are_bounded(tmp_path: Path) -> None:
    rows = [[*ROWS[0][:3], str(1000 + i), *ROWS[0][4:]] for i in range(250)]
    path = write_text(tmp_path / "big.maf.gz", maf_text(rows), "gzip")
    sizes = [len(b) for b in read_maf(path, ctx(rows_per_batch=100)).batches]
    assert sizes == [100, 100, 50]


def test_missing_column_suggests_the_near_miss(tmp_path: Path) -> None:
    columns = [c if c != "Tumor_Sample_Barcode" else "Tumor_Sample_Barcod" for c in COLUMNS]
    path = write_text(tmp_path / "bad.maf", maf_text(columns=columns))
    with pytest.raises(InputError) as err:
        read_maf(path, ctx())
    assert err.value.rule == "maf-columns"
    assert "'Tumor_Sample_Barcode' (did you mean 'Tumor_Sample_Barcod'?)" in str(err.value)
    assert err.value.location.line == 2


def test_non_numeric_counts(tmp_path: Path) -> None:
    rows = [ROWS[0], [*ROWS[1][:-1], "ten"]]
    path = write_text(tmp_path / "counts.maf", maf_text(rows))
    with pytest.raises(InputError) as err:
        read_all(read_maf(path, ctx()))
    assert err.value.rule == "numeric-counts"
    assert (err.value.location.line, err.value.location.column) == (4, "t_alt_count")


def test_unknown_sample_names_it_and_its_line(tmp_path: Path) -> None:
    rows = [ROWS[0], [*ROWS[1][:9], "TCGA-AB-03", *ROWS[1][10:]]]
    path = write_text(tmp_path / "s.maf", maf_text(rows, nl="\r"))
    with pytest.raises(UnregisteredSampleError) as err:
        read_all(read_maf(path, ctx()))
    assert err.value.rule == "registered-samples"
    assert "'TCGA-AB-03'" in str(err.value)
    assert err.value.location.line == 4


def test_truncated_gzip(tmp_path: Path) -> None:
    rows = [[*ROWS[0][:3], str(1000 + i), *ROWS[0][4:]] for i in range(5000)]
    data = gzip.compress(maf_text(rows).encode())
    path = tmp_path / "cut.maf.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        read_all(read_maf(path, ctx()))
    assert err.value.rule == "gzip-integrity"


@pytest.mark.parametrize("text", ["", "#version 2.4\n", maf_text(rows=[])])
def test_empty(tmp_path: Path, text: str) -> None:
    path = write_text(tmp_path / "empty.maf", text)
    with pytest.raises(InputError) as err:
        read_all(read_maf(path, ctx()))
    assert err.value.rule == "not-empty"


def test_integer_columns_fast_and_checked_paths_agree(tmp_path: Path) -> None:
    # All-integer chunks take pyarrow's cast; a chunk with blanks, NA or "12.0" takes the
    # checked path. Both must give the same numbers, with NA where the file has none.
    plain = [ROWS[0], [*ROWS[1][:11], "40", "30", "10"]]
    mixed = [ROWS[0], [*ROWS[1][:11], "40.0", " 30", ""]]
    a = read_all(read_maf(write_text(tmp_path / "a.maf", maf_text(plain)), ctx()))
    b = read_all(read_maf(write_text(tmp_path / "b.maf", maf_text(mixed)), ctx()))
    assert a["pos"].tolist() == b["pos"].tolist() == [74315213, 38504568]
    assert a["depth"].tolist() == [100, 40] and b["depth"].tolist() == [100, 40]
    assert a["ref_count"].tolist() == b["ref_count"].tolist() == [60, 30]
    assert a["alt_count"].tolist() == [40, 10]
    assert b["alt_count"].iloc[0] == 40 and pd.isna(b["alt_count"].iloc[1])
    assert str(a["depth"].dtype) == str(b["depth"].dtype) == "Int64"
