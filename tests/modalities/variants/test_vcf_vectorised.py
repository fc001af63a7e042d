"""The vectorised VCF reader agrees with a per-sample reading of the same records.

Oracle: a direct, one-sample-at-a-time reading of cyvcf2's records following the rules
documented in :func:`resistomics.modalities.variants.read_vcf` (AD gives the counts, DP
the depth else the sum of AD, AF the VAF else alt / (ref + alt); a sample gets a row when
it has coverage, alt reads, a VAF or a genotype carrying the allele), run on random
records with missing values, missing FORMAT fields, multi-allelic sites and mixed
genotypes, batched in odd sizes.
"""

from __future__ import annotations

import random
from pathlib import Path

import cyvcf2
import numpy as np
import pandas as pd

from modalities.variants.variant_files import record, vcf_header
from resistomics.modalities.variants import (
    CANONICAL_COLUMNS,
    VariantReadContext,
    read_vcf,
)

MISSING = -2147483647  # htslib int32 missing / end-of-vector are both <= this


def _random_vcf(path: Path, samples: tuple[str, ...], n_records: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = [vcf_header(samples)]
    for r in range(n_records):
        n_alt = rng.choice([1, 1, 1, 2, 3])
        fmt = rng.choice(["GT:AD:DP:AF", "GT:AD", "AD:DP", "GT", "GT:AF", "AD", "DP:AF"])
        calls = []
        for _ in samples:
            parts = []
            for field in fmt.split(":"):
                if field == "GT":
                    parts.append(rng.choice(["0/0", "0/1", "./.", "1/1", f"0/{n_alt}", "0|1", "."]))
                elif field == "AD":
                    counts = ",".join(str(rng.randint(0, 30)) for _ in range(n_alt + 1))
                    parts.append(rng.choice([counts, ".", ",".join(["0"] * (n_alt + 1))]))
                elif field == "DP":
                    parts.append(rng.choice([str(rng.randint(0, 90)), ".", "0"]))
                else:
                    afs = ",".join(f"{rng.random():.3f}" for _ in range(n_alt))
                    parts.append(rng.choice([afs, "."]))
            calls.append(":".join(parts))
        lines.append(
            record("chr12", 1000 + 3 * r, "C", ",".join("AGT"[:n_alt]), ".", *calls, fmt=fmt)
        )
    path.write_text("".join(lines))
    return path


def _value(x: object) -> int | None:
    v = int(x)  # type: ignore[call-overload]
    return None if v <= MISSING else v


def _per_sample_rows(path: Path, subjects: dict[str, str]) -> pd.DataFrame:
    vcf = cyvcf2.VCF(str(path))
    samples = list(vcf.samples)
    rows = []
    for rec in vcf:
        keys = set(rec.FORMAT or ())
        ad = rec.format("AD") if "AD" in keys else None
        dp = rec.format("DP") if "DP" in keys else None
        af = rec.format("AF") if "AF" in keys else None
        gts = rec.genotypes if "GT" in keys else None
        for k, alt in enumerate(rec.ALT, start=1):
            for s, sample in enumerate(samples):
                ref_count = _value(ad[s, 0]) if ad is not None else None
                alt_count = _value(ad[s, k]) if ad is not None and ad.shape[1] > k else None
                depth = _value(dp[s, 0]) if dp is not None else None
                if depth is None and ad is not None:
                    present = [int(x) for x in ad[s] if int(x) > MISSING]
                    depth = sum(present) if present else None
                vaf = np.nan
                if af is not None and af.shape[1] >= k and np.isfinite(af[s, k - 1]):
                    vaf = float(af[s, k - 1])
                elif ref_count is not None and alt_count is not None and ref_count + alt_count:
                    vaf = alt_count / (ref_count + alt_count)
                called = gts is not None and k in gts[s][:-1]
                if not ((depth or 0) > 0 or (alt_count or 0) > 0 or not np.isnan(vaf) or called):
                    continue
                rows.append(
                    {
                        "subject_id": subjects[sample],
                        "sample_id": sample,
                        "chrom": rec.CHROM,
                        "pos": rec.POS,
                        "ref": rec.REF,
                        "alt": alt,
                        "gene": None,
                        "protein_change": None,
                        "consequence": None,
                        "ref_count": ref_count,
                        "alt_count": alt_count,
                        "depth": depth,
                        "vaf": vaf,
                    }
                )
    vcf.close()
    frame = pd.DataFrame(rows)
    return frame.astype(CANONICAL_COLUMNS)


def test_vectorised_reader_matches_per_sample_reading(tmp_path: Path) -> None:
    samples = tuple(f"S{i}" for i in range(13))
    subjects = {s: f"P{i // 2}" for i, s in enumerate(samples)}
    path = _random_vcf(tmp_path / "random.vcf", samples, 1500, seed=5)
    ctx = VariantReadContext(frozenset(samples), subjects, rows_per_batch=777)
    batches = list(read_vcf(path, ctx).batches)
    assert all(len(b) == 777 for b in batches[:-1]) and 0 < len(batches[-1]) <= 777
    got = pd.concat(batches, ignore_index=True)
    want = _per_sample_rows(path, subjects)
    assert len(got) > 10_000
    # Both read sites in file order, alleles in ALT order, samples in header order.
    pd.testing.assert_frame_equal(got, want)
