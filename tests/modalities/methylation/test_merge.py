"""The streaming k-way merge against a pandas outer join of the same per-sample files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from resistomics.errors import InputError
from resistomics.modalities.methylation._merge import contig_rank, merge_sites
from resistomics.modalities.methylation._readers import MethylationReadContext, read_methylation
from resistomics.modalities.methylation._simulate import (
    simulate_methylation_cohort,
    write_methylation_files,
)


def _merged(folder: Path, fmt: str, ids: list[str], **kw: object) -> pd.DataFrame:
    block = int(kw.pop("sites_per_block", 1 << 16))  # type: ignore[call-overload]
    ctx = MethylationReadContext(registered_samples=frozenset(ids), **kw)  # type: ignore[arg-type]
    src = read_methylation(folder, ctx, fmt=fmt)
    blocks = list(merge_sites(src.files, sites_per_block=block))
    assert max(len(b.features) for b in blocks) <= block
    out = pd.concat([b.features for b in blocks], ignore_index=True)
    order = [f.sample_id for f in src.files]
    m = np.concatenate([b.arrays["methylated"] for b in blocks])
    t = np.concatenate([b.arrays["total"] for b in blocks])
    for j, s in enumerate(order):
        out[f"m:{s}"], out[f"t:{s}"] = m[:, j], t[:, j]
    return out


def _oracle(calls: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The union of sites with zero counts where a sample has none: a pandas outer join."""
    joined = None
    for s, c in sorted(calls.items()):
        part = c.set_index(["contig", "position"])[["methylated", "total"]]
        part.columns = [f"m:{s}", f"t:{s}"]
        joined = part if joined is None else joined.join(part, how="outer")
    assert joined is not None
    joined = joined.fillna(0).astype("int64").reset_index()
    joined["rank"] = joined["contig"].map(contig_rank())
    return joined.sort_values(["rank", "position"]).drop(columns="rank").reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["bismark-cov", "dss", "methyldackel", "bismark-report", "modkit"])
def test_merge_equals_the_outer_join(tmp_path: Path, fmt: str) -> None:
    sim = simulate_methylation_cohort(n_subjects=3, n_sites=1500, dropout=0.3, seed=4)
    write_methylation_files(sim, tmp_path / fmt, fmt, gzip_files=fmt == "bismark-cov")
    ids = sorted(sim.calls)
    got = _merged(
        tmp_path / fmt,
        fmt,
        ids,
        rows_per_chunk=97,
        sites_per_block=41,
        merge_strands=fmt in ("bismark-report", "modkit"),
    )
    want = _oracle(sim.calls)
    sets = [set(c["position"]) for c in sim.calls.values()]
    assert len(set.union(*sets)) > max(len(s) for s in sets)  # the site sets differ
    assert got["strand"].eq("*").all()
    assert got["contig"].tolist() == want["contig"].tolist()
    assert got["position"].tolist() == want["position"].tolist()
    for s in ids:
        assert got[f"m:{s}"].tolist() == want[f"m:{s}"].tolist(), s
        assert got[f"t:{s}"].tolist() == want[f"t:{s}"].tolist(), s


def test_merge_of_unstranded_sites_keeps_strands_apart(tmp_path: Path) -> None:
    sim = simulate_methylation_cohort(n_subjects=2, n_sites=300, dropout=0.2, seed=1)
    write_methylation_files(sim, tmp_path, "bismark-report")
    got = _merged(tmp_path, "bismark-report", sorted(sim.calls), sites_per_block=13)
    assert set(got["strand"]) == {"+", "-"}
    keys = list(zip(got["contig"], got["position"], got["strand"], strict=True))
    assert len(keys) == len(set(keys))
    plus = got[got["strand"] == "+"]
    for s, c in sim.calls.items():
        # the + strand holds ceil(total / 2) reads of each covered CpG
        covered = plus[plus[f"t:{s}"] > 0]
        want = c.set_index(["contig", "position"])["total"]
        assert (
            covered.set_index(["contig", "position"])[f"t:{s}"]
            == ((want + 1) // 2).reindex(covered.set_index(["contig", "position"]).index)
        ).all()


def _cov(path: Path, rows: list[tuple[str, int]]) -> None:
    path.write_text("".join(f"{c}\t{p}\t{p}\t100\t1\t0\n" for c, p in rows))


def test_contigs_missing_from_some_samples_merge(tmp_path: Path) -> None:
    _cov(tmp_path / "A.cov", [("chr1", 5), ("chr2", 1), ("chrX", 3), ("chrM", 2)])
    _cov(tmp_path / "B.cov", [("chr1", 6), ("chrX", 3), ("chrY", 9), ("chrM", 2)])
    got = _merged(tmp_path, "bismark-cov", ["A", "B"])
    assert list(zip(got["contig"], got["position"], strict=True)) == [
        ("chr1", 5),
        ("chr1", 6),
        ("chr2", 1),
        ("chrX", 3),
        ("chrY", 9),
        ("chrM", 2),
    ]
    assert got["t:A"].tolist() == [1, 0, 1, 1, 0, 1] and got["t:B"].tolist() == [0, 1, 0, 1, 1, 1]


def test_files_in_lexical_contig_order_merge_in_their_order(tmp_path: Path) -> None:
    rows = [("chr1", 1), ("chr10", 1), ("chr2", 1)]  # sort -k1,1 order, in every file
    _cov(tmp_path / "A.cov", rows)
    _cov(tmp_path / "B.cov", rows)
    got = _merged(tmp_path, "bismark-cov", ["A", "B"])
    assert got["contig"].tolist() == ["chr1", "chr10", "chr2"]


def test_contradicting_contig_orders_are_refused(tmp_path: Path) -> None:
    _cov(tmp_path / "A.cov", [("chr1", 1), ("chr2", 1)])
    _cov(tmp_path / "B.cov", [("chr2", 1), ("chr1", 1)])
    with pytest.raises(InputError) as err:
        _merged(tmp_path, "bismark-cov", ["A", "B"])
    assert err.value.rule == "contig-order" and err.value.location.line is not None
    assert "B.cov" in str(err.value)


def test_contig_rank_follows_chrom_sizes_first() -> None:
    rank = contig_rank(["chrM", "chr2", "chr1"])
    names = ["chr1", "chr10", "chrUn_x", "chrY", "chrX", "chr2", "chrM", "chr3"]
    assert sorted(names, key=rank) == [
        "chrM",
        "chr2",
        "chr1",
        "chr3",
        "chr10",
        "chrX",
        "chrY",
        "chrUn_x",
    ]
