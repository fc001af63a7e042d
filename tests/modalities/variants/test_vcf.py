"""The VCF reader on files written as Mutect2 + VEP/SnpEff write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modalities.variants.variant_files import (
    ANN_FORMAT,
    BRAF,
    GOOD_RECORDS,
    SAMPLES,
    bgzip_bytes,
    read_all,
    record,
    study_context,
    vcf_header,
    write_text,
)
from resistomics.errors import InputError, UnregisteredSampleError
from resistomics.modalities import reader_for
from resistomics.modalities.variants import CANONICAL_COLUMNS, read_vcf

GOOD = vcf_header() + "".join(GOOD_RECORDS)


def call(frame: pd.DataFrame, sample: str, pos: int, alt: str) -> pd.Series:
    hit = frame[(frame.sample_id == sample) & (frame.pos == pos) & (frame.alt == alt)]
    assert len(hit) == 1, hit
    return hit.iloc[0]


@pytest.mark.parametrize("compression", ["none", "gzip", "bgzip"])
def test_reads_calls_per_sample_and_allele(tmp_path: Path, compression: str) -> None:
    suffix = {"none": ".vcf", "gzip": ".vcf.gz", "bgzip": ".vcf.gz"}[compression]
    path = write_text(tmp_path / f"calls{suffix}", GOOD, compression)
    fmt, reader = reader_for("variants", str(path))
    assert fmt == "vcf"
    source = reader(path, study_context())
    assert source.samples == list(SAMPLES)
    assert source.details["compression"] == compression
    frame = read_all(source)
    assert list(frame.columns) == list(CANONICAL_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        c: str(pd.Series(dtype=t).dtype) for c, t in CANONICAL_COLUMNS.items()
    }
    # BRAF: 3 samples; KRAS: 3 samples x 2 alleles; TP53: 2 covered samples.
    assert len(frame) == 3 + 6 + 2
    assert set(frame.subject_id) == {"P1"}

    baseline = call(frame, "P1_baseline", 140453136, "T")
    assert (baseline.ref_count, baseline.alt_count, baseline.depth, baseline.vaf) == (40, 0, 40, 0)
    relapse = call(frame, "P1_relapse", 140453136, "T")
    assert (relapse.gene, relapse.protein_change, relapse.consequence) == (
        "BRAF",
        "V600E",
        "missense_variant",
    )
    assert (relapse.ref_count, relapse.alt_count, relapse.depth) == (30, 10, 40)
    assert relapse.vaf == pytest.approx(0.25)

    g12v = call(frame, "P1_relapse2", 25398284, "A")
    assert (g12v.ref, g12v.protein_change, g12v.ref_count, g12v.alt_count) == ("C", "G12V", 20, 15)
    assert g12v.vaf == pytest.approx(0.3)
    assert call(frame, "P1_relapse", 25398284, "T").protein_change == "G12D"

    stop = call(frame, "P1_relapse", 7578406, "T")
    assert (stop.gene, stop.consequence, stop.protein_change) == ("TP53", "stop_gained", "R213*")
    assert "P1_relapse2" not in set(frame[frame.pos == 7578406].sample_id)


def test_batches_are_bounded_and_stream(tmp_path: Path) -> None:
    n = 3000
    body = "".join(BRAF.replace("140453136", str(140453136 + i)) for i in range(n))
    path = write_text(tmp_path / "many.vcf.gz", vcf_header() + body, "bgzip")
    batches = read_vcf(path, study_context(rows_per_batch=1000)).batches
    first = next(batches)  # a batch is ready before the file has been read
    sizes = [len(first), *(len(b) for b in batches)]
    assert max(sizes) == 1000
    assert sum(sizes) == 3 * n


def test_vaf_from_counts_without_af_and_snpeff_annotation(tmp_path: Path) -> None:
    ann = (
        "ANN=T|missense_variant|MODERATE|BRAF|ENSG00000157764|transcript|ENST00000288602|"
        "protein_coding|15/18|c.1799T>A|p.Val600Glu|1860/2480|1799/2301|600/766||,"
        "T|upstream_gene_variant|MODIFIER|AC006344.1|ENSG0001|transcript|ENST0001|"
        "lincRNA||n.-1A>T|||||1234|"
    )
    text = vcf_header(annotation="ANN") + record(
        "chr7",
        140453136,
        "A",
        "T",
        ann,
        "0/0:40,0:40",
        "0/1:30,10:40",
        "0/1:12,36:.",
        fmt="GT:AD:DP",
    )
    assert "Gene_Name" in ANN_FORMAT
    frame = read_all(read_vcf(write_text(tmp_path / "snpeff.vcf", text), study_context()))
    assert frame.gene.tolist() == ["BRAF"] * 3
    assert frame.protein_change.tolist() == ["V600E"] * 3
    assert frame.vaf.tolist() == pytest.approx([0.0, 0.25, 0.75])
    # DP missing: depth is the sum of the allele counts
    assert frame.depth.tolist() == [40, 40, 48]


def test_af_above_one_is_read_not_refused(tmp_path: Path) -> None:
    text = vcf_header() + BRAF.replace("0/1:10,30:40:0.75", "0/1:10,30:40:1.3")
    frame = read_all(read_vcf(write_text(tmp_path / "af.vcf", text), study_context()))
    assert frame.vaf.max() == pytest.approx(1.3)


# -- bad input -----------------------------------------------------------------------------


def test_truncated_bgzip(tmp_path: Path) -> None:
    body = "".join(BRAF.replace("140453136", str(140453136 + i)) for i in range(5000))
    data = bgzip_bytes((vcf_header() + body).encode(), block=4096)
    path = tmp_path / "cut.vcf.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as err:
        read_all(read_vcf(path, study_context()))
    assert err.value.rule == "gzip-integrity"
    assert str(path) in str(err.value)


def test_truncated_gzip_names_the_place(tmp_path: Path) -> None:
    import gzip

    body = "".join(BRAF.replace("140453136", str(140453136 + i)) for i in range(5000))
    data = gzip.compress((vcf_header() + body).encode())
    path = tmp_path / "cut.vcf.gz"
    path.write_bytes(data[: len(data) // 2])
    source = read_vcf(path, study_context())
    with pytest.raises(InputError) as err:
        read_all(source)
    assert err.value.rule == "gzip-integrity"
    assert err.value.location.line is not None and err.value.location.line > 15
    assert err.value.location.row is not None and "chr7:" in err.value.location.row


def test_malformed_header(tmp_path: Path) -> None:
    text = vcf_header().replace("\t", " ", 3) + BRAF  # #CHROM line with spaces, not tabs
    path = write_text(tmp_path / "bad.vcf", text)
    with pytest.raises(InputError) as err:
        read_vcf(path, study_context())
    assert err.value.rule == "vcf-header"


def test_not_a_vcf(tmp_path: Path) -> None:
    path = write_text(tmp_path / "notes.vcf", "these are my notes\nnot a VCF\n")
    with pytest.raises(InputError) as err:
        read_vcf(path, study_context())
    assert err.value.rule == "vcf-header"


def test_unknown_sample(tmp_path: Path) -> None:
    samples = ("P1_baseline", "P1_relapse", "P1_relaps3")
    text = vcf_header(samples) + BRAF
    with pytest.raises(UnregisteredSampleError) as err:
        read_vcf(write_text(tmp_path / "s.vcf", text), study_context())
    assert err.value.rule == "registered-samples"
    assert "'P1_relaps3'" in str(err.value)
    assert "did you mean" in str(err.value)


@pytest.mark.parametrize("text", ["", vcf_header()])
def test_empty(tmp_path: Path, text: str) -> None:
    path = write_text(tmp_path / "empty.vcf", text)
    with pytest.raises(InputError) as err:
        read_all(read_vcf(path, study_context()))
    assert err.value.rule == "not-empty"


def test_no_coverage_no_call_no_row(tmp_path: Path) -> None:
    text = vcf_header() + record(
        "chr7", 140453136, "A", "T", ".", "./.:0,0:0:.", "./.:.:.:.", "0/1:.:.:."
    )
    frame = read_all(read_vcf(write_text(tmp_path / "sparse.vcf", text), study_context()))
    # only the called genotype carries information
    assert frame.sample_id.tolist() == ["P1_relapse2"]
    assert np.isnan(frame.vaf.iloc[0])
    assert frame.gene.isna().all()


def test_records_with_fewer_format_fields_than_the_header(tmp_path: Path) -> None:
    text = (
        vcf_header()
        + record("chr7", 5, "A", "T", ".", "3,1", ".", "0,0", fmt="AD")
        + record("chr7", 6, "A", "T", ".", "0/1", "./.", "0|0", fmt="GT")
    )
    frame = read_all(read_vcf(write_text(tmp_path / "sparse.vcf", text), study_context()))
    assert frame[["sample_id", "pos"]].values.tolist() == [["P1_baseline", 5], ["P1_baseline", 6]]
    first = frame.iloc[0]
    assert (first.ref_count, first.alt_count, first.depth, first.vaf) == (3, 1, 4, 0.25)


@pytest.mark.parametrize(
    ("bad", "rule"),
    [
        (BRAF.replace("0/1:30,10:40:0.25", "0/1:30,ten:40:0.25"), "vcf-record"),  # non-numeric AD
        (BRAF.replace("140453136", "14045x136"), "vcf-record"),  # non-numeric POS
        ("chr7\t5\t.\tA\n", "field-count"),  # truncated line: refused before htslib pads it
    ],
)
def test_unparseable_record_names_its_line(tmp_path: Path, bad: str, rule: str) -> None:
    path = write_text(tmp_path / "bad.vcf", vcf_header() + BRAF + bad + BRAF)
    with pytest.raises(InputError) as err:
        read_all(read_vcf(path, study_context()))
    assert err.value.rule == rule
    header_lines = vcf_header().count("\n")
    assert err.value.location.line == header_lines + 2
    assert "after chr7:140453136" in str(err.value)


def test_htslib_capture_keeps_its_lines_and_passes_other_output_through(capfd) -> None:  # type: ignore[no-untyped-def]
    import os

    from resistomics.modalities.variants._readers import _HtslibMessages

    messages = _HtslibMessages()
    with messages.captured():
        os.write(2, b"[W::vcf_parse] contig 'chrX' is not defined\n")
        os.write(2, b"a log line from another thread\n[E::vcf_parse_format] bad AD\n")
    assert messages.gist() == "bad AD"
    assert len(messages.lines) == 2
    err = capfd.readouterr().err
    assert "a log line from another thread" in err and "::" not in err
