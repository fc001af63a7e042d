"""Value checks on variant calls: summaries across batches, checked by the GX suites.

Values a reader accepts (VAF > 1, AD/DP disagreement, odd alleles, unknown contigs,
duplicate calls) must fail validation with the rule and an example, never pass.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from modalities.variants.variant_files import (
    BRAF,
    GOOD_RECORDS,
    KRAS,
    SAMPLES,
    record,
    study_context,
    vcf_header,
    write_text,
)
from resistomics.modalities import dataset_type
from resistomics.modalities.variants import (
    read_vcf,
    summarize_variant_batches,
    validate_variant_batches,
    variant_suites,
)
from resistomics.validation import ValidationReport


def validate(tmp_path: Path, text: str, *, rows_per_batch: int = 100_000) -> ValidationReport:
    path = write_text(tmp_path / "calls.vcf", text)
    source = read_vcf(path, study_context(rows_per_batch=rows_per_batch))
    return validate_variant_batches(source.batches, registered_samples=SAMPLES)


def failed(report: ValidationReport) -> dict[str, list[str]]:
    return {o.rule: o.examples for o in report.failures}


def test_dataset_type_is_declared() -> None:
    kind = dataset_type("variants.calls")
    assert (kind.modality, kind.layout) == ("variants", "partitioned-table@1")
    assert set(variant_suites()) == {"partitions", "contigs", "samples", "dataset"}


def test_good_calls_pass(tmp_path: Path) -> None:
    report = validate(tmp_path, vcf_header() + "".join(GOOD_RECORDS), rows_per_batch=4)
    assert report.success, report.markdown()
    assert not any(o.errored for o in report.outcomes)


def test_bad_values_fail_with_examples(tmp_path: Path) -> None:
    """One file, one defect per site; each rule names its site, none errors."""
    text = (
        vcf_header()
        # AF 1.3 at BRAF in the third sample
        + BRAF.replace("0/1:10,30:40:0.75", "0/1:10,30:40:1.3")
        # AD sum (40 + 10) > DP 20, and AF 0.9 far from 10 / 50
        + KRAS.replace("0/1:40,10,0:50:0.2,0", "0/1:40,10,0:20:0.9,0")
        # an unknown contig and a non-nucleotide allele
        + record("chrUn_gl000220", 1000, "A", "T", ".", "0/1:5,5:10:0.5", ".:.:.:.", ".:.:.:.")
        + record("chr17", 7578406, "C", "X", ".", "0/1:5,5:10:0.5", ".:.:.:.", ".:.:.:.")
    )
    report = validate(tmp_path, text, rows_per_batch=3)
    fails = failed(report)
    assert set(fails) == {
        "vaf-range",
        "vaf-consistent",
        "depth-covers-counts",
        "known-contigs",
        "alleles",
    }, report.markdown()
    assert not any(o.errored for o in report.outcomes)
    assert fails["vaf-range"] == ["P1_relapse2 chr7:140453136 A>T vaf=1.3"]
    assert any(
        "chr12:25398284" in e and "AD=40,10 > DP=20" in e for e in fails["depth-covers-counts"]
    )
    assert any(
        "chr12:25398284 C>T vaf=0.9 but alt/(ref+alt)=0.2" in e for e in fails["vaf-consistent"]
    )
    assert fails["known-contigs"] == ["chrUn_gl000220"]
    assert any("C>X" in e for e in fails["alleles"])
    by_rule = {o.rule: o for o in report.outcomes}
    assert by_rule["vaf-range"].unexpected_count == 1


def test_duplicates_found_across_partitions(tmp_path: Path) -> None:
    # the same call twice, in different batches (one row per batch)
    text = vcf_header() + BRAF + KRAS + BRAF
    report = validate(tmp_path, text, rows_per_batch=1)
    fails = failed(report)
    assert set(fails) == {"unique-calls"}, report.markdown()
    assert fails["unique-calls"][0] == "P1_baseline chr7:140453136 A>T"
    assert {o.rule: o for o in report.outcomes}["unique-calls"].unexpected_count == 3


def test_unregistered_sample_and_missing_subject_fail() -> None:
    calls = pd.DataFrame(
        {
            "subject_id": pd.array(["P1", None], dtype="string"),
            "sample_id": pd.array(["P1_baseline", "stray"], dtype="string"),
            "chrom": pd.array(["7", "MT"], dtype="string"),
            "pos": pd.array([140453136, 0], dtype="Int64"),
            "ref": pd.array(["A", "-"], dtype="string"),
            "alt": pd.array(["<DEL>", "C"], dtype="string"),
            "gene": pd.array([None, None], dtype="string"),
            "protein_change": pd.array([None, None], dtype="string"),
            "consequence": pd.array([None, None], dtype="string"),
            "ref_count": pd.array([None, 3], dtype="Int64"),
            "alt_count": pd.array([None, -1], dtype="Int64"),
            "depth": pd.array([10, 2], dtype="Int64"),
            "vaf": [float("nan"), float("nan")],
        }
    )
    report = validate_variant_batches([calls], registered_samples=SAMPLES)
    fails = failed(report)
    assert set(fails) == {
        "registered-samples",
        "sample-subject",
        "positive-position",
        "non-negative-counts",
    }, report.markdown()
    assert fails["registered-samples"] == ["stray"]


def test_summaries_without_counts_are_quiet() -> None:
    """MAFs without read counts: no VAF rule can fail on missing values."""
    calls = pd.DataFrame(
        {
            "subject_id": ["P1"],
            "sample_id": ["P1_baseline"],
            "chrom": ["chr15"],
            "pos": pd.array([74315213], dtype="Int64"),
            "ref": ["C"],
            "alt": ["T"],
            "ref_count": pd.array([None], dtype="Int64"),
            "alt_count": pd.array([None], dtype="Int64"),
            "depth": pd.array([None], dtype="Int64"),
            "vaf": [float("nan")],
        }
    )
    tables = summarize_variant_batches([calls])
    row = tables["partitions"].iloc[0]
    assert row.n_vaf_out_of_range == row.n_vaf_discrepant == row.n_depth_below_counts == 0
    assert row.vaf_discrepancy == 0.0


@pytest.mark.parametrize("tolerance, fails", [(0.05, True), (0.2, False)])
def test_vaf_tolerance(tolerance: float, fails: bool) -> None:
    calls = pd.DataFrame(
        {
            "subject_id": ["P1"],
            "sample_id": ["P1_baseline"],
            "chrom": ["1"],
            "pos": pd.array([100], dtype="Int64"),
            "ref": ["A"],
            "alt": ["G"],
            "ref_count": pd.array([90], dtype="Int64"),
            "alt_count": pd.array([10], dtype="Int64"),
            "depth": pd.array([100], dtype="Int64"),
            "vaf": [0.2],
        }
    )
    row = summarize_variant_batches([calls], vaf_tolerance=tolerance)["partitions"].iloc[0]
    assert row.vaf_discrepancy == pytest.approx(0.1)
    assert bool(row.n_vaf_discrepant == 1) is fails
