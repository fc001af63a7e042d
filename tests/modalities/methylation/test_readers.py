"""Each methylation reader on small hand-written files: exact counts, strands, codes, errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modalities.bad_files import TEXT_DEFECTS
from resistomics.errors import InputError
from resistomics.modalities.methylation._merge import merge_sites
from resistomics.modalities.methylation._readers import (
    MethylationReadContext,
    read_methylation,
    sample_name,
)
from shared_data import SHARED_DATA

SAMPLES = frozenset({"S1", "S2", "S3", "A", "B"})


def _ctx(**kw: object) -> MethylationReadContext:
    return MethylationReadContext(registered_samples=SAMPLES, **kw)  # type: ignore[arg-type]


def _table(path: Path, fmt: str, *, block: int = 2, **kw: object) -> pd.DataFrame:
    """Everything a file reads as: one row per site (contig, position, strand, m, t)."""
    src = read_methylation(path, _ctx(**kw), fmt=fmt)
    blocks = list(merge_sites(src.files, sites_per_block=block))
    if not blocks:
        return pd.DataFrame(columns=["contig", "position", "strand", "methylated", "total"])
    out = pd.concat([b.features for b in blocks], ignore_index=True)
    out["methylated"] = np.concatenate([b.arrays["methylated"][:, 0] for b in blocks])
    out["total"] = np.concatenate([b.arrays["total"][:, 0] for b in blocks])
    return out


def _rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    return [tuple(r) for r in frame.itertuples(index=False)]


def _write(path: Path, text: str) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.name.endswith(".gz") else data)
    return path


def test_bismark_coverage_exact_counts(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "S1.bismark.cov.gz",
        "chr1\t100\t100\t75\t3\t1\nchr1\t150\t150\t0\t0\t2\nchr1\t151\t151\t0\t0\t0\n"
        "chr2\t7\t7\t100\t5\t0\n",
    )
    assert _rows(_table(path, "bismark-cov")) == [
        ("chr1", 100, "*", 3, 4),
        ("chr1", 150, "*", 0, 2),
        ("chr2", 7, "*", 5, 5),  # the 0/0 row carries no reads: no site
    ]


def test_bismark_report_strands_kept_apart_or_merged(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "S1.CpG_report.txt",
        "chr1\t10\t+\t2\t1\tCG\tCGT\nchr1\t11\t-\t1\t3\tCG\tCGA\n"
        "chr1\t12\t+\t4\t4\tCHH\tCTT\nchr1\t20\t+\t0\t0\tCG\tCGG\nchr1\t21\t-\t5\t0\tCG\tCGC\n",
    )
    assert _rows(_table(path, "bismark-report")) == [
        ("chr1", 10, "+", 2, 3),
        ("chr1", 11, "-", 1, 4),
        ("chr1", 21, "-", 5, 5),
    ]
    assert _rows(_table(path, "bismark-report", merge_strands=True)) == [
        ("chr1", 10, "*", 3, 7),
        ("chr1", 20, "*", 5, 5),
    ]
    src = read_methylation(path, _ctx(), fmt="bismark-report")
    list(merge_sites(src.files))
    stats = src.files[0].stats
    assert (stats.non_cpg_methylated, stats.non_cpg_total) == (4, 8)  # the CHH row


def test_strand_merge_across_chunk_edges(tmp_path: Path) -> None:
    """A CpG's + and - rows land in different parsed chunks: still one site."""
    lines = []
    for k in range(50):
        p = 100 + 10 * k
        lines += [f"chr1\t{p}\t+\t{k % 3}\t1\tCG\tCGA", f"chr1\t{p + 1}\t-\t1\t{k % 2}\tCG\tCGA"]
    path = _write(tmp_path / "S1.CpG_report.txt", "\n".join(lines) + "\n")
    for rows in (1, 2, 3, 7, 1000):
        got = _table(path, "bismark-report", merge_strands=True, rows_per_chunk=rows)
        assert got["position"].tolist() == [100 + 10 * k for k in range(50)], rows
        assert got["methylated"].tolist() == [k % 3 + 1 for k in range(50)]
        assert got["total"].tolist() == [k % 3 + 1 + 1 + k % 2 for k in range(50)]


def test_modkit_mixed_delimiters_and_modification_codes(tmp_path: Path) -> None:
    # the first ten fields tab-separated, the rest with single spaces (modkit < 0.2),
    # and one row fully tab-separated: both parse
    path = _write(
        tmp_path / "S1.bedMethyl",
        "chr1\t99\t100\tm\t10\t+\t99\t100\t255,0,0\t10 30.00 3 5 2 0 1 0 0\n"
        "chr1\t99\t100\th\t10\t+\t99\t100\t255,0,0\t10 20.00 2 5 3 0 1 0 0\n"
        "chr1\t100\t101\tm\t8\t-\t100\t101\t255,0,0\t8\t50.00\t4\t4\t0\t0\t0\t0\t0\n"
        "chr1\t100\t101\th\t8\t-\t100\t101\t255,0,0\t8 0.00 0 4 4 0 0 0 0\n",
    )
    assert _rows(_table(path, "modkit")) == [("chr1", 100, "+", 3, 10), ("chr1", 101, "-", 4, 8)]
    assert _rows(_table(path, "modkit", modification="h")) == [
        ("chr1", 100, "+", 2, 10),
        ("chr1", 101, "-", 0, 8),
    ]
    assert _rows(_table(path, "modkit", merge_strands=True)) == [("chr1", 100, "*", 7, 18)]
    with pytest.raises(InputError) as err:
        _table(path, "modkit", modification="a")
    assert err.value.rule == "modification" and "h (2 rows), m (2 rows)" in str(err.value)


def test_modkit_runs_of_tabs_and_spaces_and_trailing_whitespace(tmp_path: Path) -> None:
    """Any run of tabs and spaces is one separator and whitespace before a line break is
    none; a row one field short is still refused at its line."""
    rows = (
        "chr1\t99\t100\tm\t10\t+\t99\t100\t255,0,0\t10  30.00 \t3 5 2 0 1 0 0 \n"
        "chr1  \t199 200\tm\t8\t-\t199\t200\t255,0,0\t8\t\t50.00\t4\t4\t0\t0\t0\t0\t0\t\n"
    )
    path = _write(tmp_path / "S1.bedMethyl", rows)
    assert _rows(_table(path, "modkit")) == [("chr1", 100, "+", 3, 10), ("chr1", 200, "-", 4, 8)]
    short = _write(
        tmp_path / "S2.bedMethyl",
        rows + "chr1\t299\t300\tm\t8\t-\t299\t300\t255,0,0\t8 50.00 4 4 0 0 0 0 \t\n",
    )
    with pytest.raises(InputError) as err:
        _table(short, "modkit")
    assert err.value.rule == "field-count" and err.value.location.line == 3
    assert "found 17" in str(err.value)


def test_modkit_valid_coverage_must_add_up(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "S1.bedMethyl",
        "chr1\t1\t2\tm\t9\t+\t1\t2\t255,0,0\t9 33.33 3 5 0 0 0 0 0\n",
    )
    with pytest.raises(InputError) as err:
        _table(path, "modkit")
    assert err.value.rule == "modkit-valid-coverage" and err.value.location.line == 1


def test_methyldackel_bedgraph_and_dss_text(tmp_path: Path) -> None:
    bg = _write(
        tmp_path / "S1_CpG.bedGraph",
        'track type="bedGraph" description="S1 CpG"\nchr1\t9\t10\t67\t2\t1\nchr1\t19\t20\t0\t0\t4\n',
    )
    assert sample_name(str(bg), "methyldackel") == "S1"
    assert _rows(_table(bg, "methyldackel")) == [("chr1", 10, "*", 2, 3), ("chr1", 20, "*", 0, 4)]
    dss = _write(
        tmp_path / "S2.txt.gz", "chr\tpos\tN\tX\nchr18\t3014904\t26\t2\nchr18\t3031032\t33\t12\n"
    )
    assert _rows(_table(dss, "dss")) == [
        ("chr18", 3014904, "*", 2, 26),
        ("chr18", 3031032, "*", 12, 33),
    ]


def test_shared_dss_example_file_reads() -> None:
    path = SHARED_DATA / "methylation_rrbs" / "dss_text_format" / "cond1_1.txt.gz"
    if not path.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    got = _table(path, "dss", sample="S1", block=4096)
    oracle = pd.read_csv(path, sep="\t")
    oracle = oracle[(oracle["N"] > 0) | (oracle["X"] > 0)]
    assert got["position"].tolist() == oracle["pos"].tolist()
    assert got["total"].tolist() == oracle["N"].tolist()
    assert got["methylated"].tolist() == oracle["X"].tolist()


def test_percent_disagreeing_with_counts_is_counted(tmp_path: Path) -> None:
    path = _write(tmp_path / "S1.cov", "chr1\t1\t1\t75\t3\t1\nchr1\t5\t5\t20\t3\t1\n")
    src = read_methylation(path, _ctx(), fmt="bismark-cov")
    list(merge_sites(src.files))
    stats = src.files[0].stats
    assert stats.n_percent_discrepant == 1 and stats.max_percent_discrepancy == pytest.approx(55)
    assert "chr1:5 (line 2) 20% but 3 of 4 reads = 75.00%" in stats.percent_examples[0]


@pytest.mark.parametrize(
    ("text", "rule", "line"),
    [
        ("chr1\t10\t10\t0\t0\t1\nchr1\t9\t9\t0\t0\t1\n", "sorted-positions", 2),
        (
            "chr1\t10\t10\t0\t0\t1\nchr2\t1\t1\t0\t0\t1\nchr1\t20\t20\t0\t0\t1\n",
            "sorted-positions",
            3,
        ),
        ("chr1\t10\t10\t0\t0\t1\nchr1\t10\t10\t0\t0\t1\n", "duplicate-site", 2),
        ("chr1\t10\t10\t0\t0\t1\nchr1\t11\t11\t50\t1.5\t1\n", "integer-counts", 2),
        ("chr1\t10\t10\t0\t0\t1\nchr1\tten\t10\t0\t0\t1\n", "integer-position", 2),
        ("chr1\t10\t10\t0\t0\t1\nchr1\t11\t11\tx\t0\t1\n", "number", 2),
        ("chr1\t10\t10\t0\t0\t1\nchr1\t11\t11\t0\t0\n", "field-count", 2),
        ("chr1\t10\t10\t0\t0\t1\nchr1\t11\t11\t0\t0\t1\t7\n", "field-count", 2),
        ("chr1\t10\t10\t0\t0\t1\n\t11\t11\t0\t0\t1\n", "missing-value", 2),
    ],
)
def test_bad_coverage_rows(tmp_path: Path, text: str, rule: str, line: int) -> None:
    path = _write(tmp_path / "S1.cov", text)
    with pytest.raises(InputError) as err:
        _table(path, "bismark-cov", rows_per_chunk=1)
    assert err.value.rule == rule, err.value
    assert err.value.location.line == line
    assert str(path) in str(err.value) and f"[{rule}]" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize(
    ("fmt", "name", "text", "rule", "line"),
    [
        ("bismark-report", "S1.CpG_report.txt", "chr1\t1\t?\t1\t1\tCG\tCGA\n", "strand", 1),
        (
            "bismark-report",
            "S1.CpG_report.txt",
            "chr1\t1\t+\t1\t1\tCG\tCGA\nchr1\t1\t+\t1\t1\tCG\tCGA\n",
            "duplicate-site",
            2,
        ),
        (
            "modkit",
            "S1.bedMethyl",
            "chr1\t1\t2\tm\t9\t+\t1\t2\t255,0,0\t9 33.33 3 6 0 0 0 0\n",
            "field-count",
            1,
        ),
        (
            "modkit",
            "S1.bedMethyl",
            "chr1\t1\t2\tm\t9\t+\t1\t2\t255,0,0\t9 33.33 3 6 0 0 0 0 0 0\n",
            "field-count",
            1,
        ),
        ("dss", "S1.txt", "chrom\tpos\tN\tX\nchr1\t1\t2\t1\n", "header", 1),
        ("dss", "S1.txt", "chr\tpos\tN\tX\nchr1\t5\t2\t1\nchr1\t4\t2\t1\n", "sorted-positions", 3),
    ],
)
def test_bad_rows_of_other_formats(
    tmp_path: Path, fmt: str, name: str, text: str, rule: str, line: int
) -> None:
    path = _write(tmp_path / name, text)
    with pytest.raises(InputError) as err:
        _table(path, fmt)
    assert err.value.rule == rule, err.value
    assert err.value.location.line == line


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    text = "".join(f"chr1\t{p}\t{p}\t50\t1\t1\n" for p in range(1, 20001))
    whole = gzip.compress(text.encode(), mtime=0)
    path = tmp_path / "S1.cov.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError) as err:
        _table(path, "bismark-cov", rows_per_chunk=100)
    assert err.value.rule == "gzip-integrity"


GOOD_FILES = {
    "bismark-cov": (
        "S1.bismark.cov.gz",
        "".join(f"chr1\t{p}\t{p}\t50\t1\t1\n" for p in range(1, 30)),
    ),
    "dss": ("S1.txt.gz", "chr\tpos\tN\tX\n" + "".join(f"chr1\t{p}\t2\t1\n" for p in range(1, 30))),
    "modkit": (
        "S1.bedMethyl",
        "".join(
            f"chr1\t{p}\t{p + 1}\tm\t2\t+\t{p}\t{p + 1}\t255,0,0\t2 50.00 1 1 0 0 0 0 0\n"
            for p in range(1, 30)
        ),
    ),
}


@pytest.mark.parametrize("fmt", sorted(GOOD_FILES))
@pytest.mark.parametrize("defect", sorted(TEXT_DEFECTS))
def test_text_defects_are_refused_with_their_rule(tmp_path: Path, defect: str, fmt: str) -> None:
    name, text = GOOD_FILES[fmt]
    (tmp_path / "good").mkdir()
    good = _write(tmp_path / "good" / name, text)
    assert len(_table(good, fmt, block=100)) == 29
    bad = TEXT_DEFECTS[defect](good, tmp_path / "bad" / good.name)
    with pytest.raises(InputError) as err:
        _table(bad.path, fmt)
    assert err.value.rule == bad.rule, (defect, err.value)
    if bad.line is not None:
        assert err.value.location.line == bad.line, (defect, err.value)


def test_folder_of_samples_and_its_refusals(tmp_path: Path) -> None:
    folder = tmp_path / "cohort"
    folder.mkdir()
    _write(folder / "A_bismark_bt2.bismark.cov", "chr1\t5\t5\t100\t1\t0\n")
    _write(folder / "B.bismark.cov", "chr1\t6\t6\t0\t0\t1\n")
    src = read_methylation(folder, _ctx(), fmt="bismark-cov")
    assert [f.sample_id for f in src.files] == ["A", "B"]
    _write(folder / "README.txt", "notes\n")
    with pytest.raises(InputError) as err:
        read_methylation(folder, _ctx(), fmt="bismark-cov")
    assert err.value.rule == "folder-contents" and "README.txt" in str(err.value)
    (folder / "README.txt").unlink()
    _write(folder / "Z.bismark.cov", "chr1\t6\t6\t0\t0\t1\n")
    with pytest.raises(InputError) as err:
        read_methylation(folder, _ctx(), fmt="bismark-cov")
    assert err.value.rule == "registered-samples" and "'Z'" in str(err.value)
    (folder / "Z.bismark.cov").unlink()
    _write(folder / "A.cov", "chr1\t6\t6\t0\t0\t1\n")
    with pytest.raises(InputError) as err:
        read_methylation(folder, _ctx(), fmt="bismark-cov")
    assert err.value.rule == "duplicate-sample"
