"""Benchmark: the VCF reader against cyvcf2's own parse of the same file.

    python benchmarks/vcf_reader.py                       # 200 samples x 25,000 sites = 5 M rows
    python benchmarks/vcf_reader.py --samples 2 --sites 500000

Writes a multi-sample VCF as Mutect2 + VEP write it (GT:AD:DP:AF, a CSQ annotation per
site) and reads it twice in this process:

* **cyvcf2 parse** (the floor): iterate the records and pull AD, DP, AF and the
  genotypes into numpy, building nothing;
* **read_vcf**: the platform's reader, streaming canonical call tables of 100,000 rows
  (annotation parsed, per-sample rows built, missing values handled).

Prints rows per second for both, their ratio and the reader's peak memory above the
process's resident size before it started (RSS sampled every 10 ms), and writes benchmarks/out/vcf_reader_<samples>.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from _rss import RssSampler

OUT = Path(__file__).resolve().parent / "out"
CSQ_FORMAT = "Allele|Consequence|IMPACT|SYMBOL|Gene|Feature|BIOTYPE|HGVSc|HGVSp|CANONICAL"


def write_vcf(path: Path, n_samples: int, n_sites: int, seed: int) -> list[str]:
    """A caller-style VCF: every sample covered at every site, ~20% VAF."""
    rng = np.random.default_rng(seed)
    samples = [f"S{i:04d}" for i in range(n_samples)]
    header = [
        "##fileformat=VCFv4.2",
        "##source=Mutect2",
        "##contig=<ID=chr1,length=248956422>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">',
        f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
        f'Ensembl VEP. Format: {CSQ_FORMAT}">',
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]
        ),
    ]
    with open(path, "w") as out:
        out.write("\n".join(header) + "\n")
        for start in range(0, n_sites, 1000):
            block = []
            for site in range(start, min(n_sites, start + 1000)):
                depth = rng.integers(20, 200, n_samples)
                alt = rng.binomial(depth, 0.2)
                calls = "\t".join(
                    f"0/1:{d - a},{a}:{d}:{a / d:.3f}" for d, a in zip(depth, alt, strict=True)
                )
                info = (
                    f"CSQ=T|missense_variant|MODERATE|G{site}|ENSG{site}|ENST{site}|"
                    f"protein_coding|c.{site}C>T|ENSP{site}.1:p.Ala{site % 900 + 1}Val|YES"
                )
                block.append(
                    f"chr1\t{1000 + 10 * site}\t.\tC\tT\t.\tPASS\t{info}\tGT:AD:DP:AF\t{calls}\n"
                )
            out.write("".join(block))
    return samples


def cyvcf2_parse(path: Path) -> int:
    import cyvcf2

    vcf = cyvcf2.VCF(str(path))
    n = len(vcf.samples)
    rows = 0
    for record in vcf:
        record.format("AD")
        record.format("DP")
        record.format("AF")
        record.genotype.array()
        record.INFO.get("CSQ")
        rows += n * len(record.ALT)
    vcf.close()
    return rows


def platform_read(path: Path, samples: list[str]) -> int:
    from resistomics.modalities.variants import VariantReadContext, read_vcf

    ctx = VariantReadContext(frozenset(samples), {s: f"P{s}" for s in samples})
    return sum(len(batch) for batch in read_vcf(path, ctx).batches)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--sites", type=int, default=25_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="resistomics-bench-vcf-") as tmp:
        path = Path(tmp) / "cohort.vcf"
        t = time.perf_counter()
        samples = write_vcf(path, args.samples, args.sites, args.seed)
        size = path.stat().st_size
        print(
            f"wrote {args.sites:,} sites x {args.samples} samples ({size / 1e9:.2f} GB) in {time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        parsed = cyvcf2_parse(path)
        parse_s = time.perf_counter() - t
        with RssSampler(interval=0.01, tree=False) as sampler:
            base = psutil.Process().memory_info().rss
            with sampler.window() as mem:
                t = time.perf_counter()
                rows = platform_read(path, samples)
                read_s = time.perf_counter() - t
        peak = mem["peak_sum"] - base
    assert rows == parsed, (rows, parsed)
    lines = [
        "| reader | rows | time | rows/s | peak RSS added |",
        "|---|---:|---:|---:|---:|",
        f"| cyvcf2 parse only | {parsed:,} | {parse_s:.1f} s | {parsed / parse_s:,.0f} | - |",
        f"| read_vcf (canonical tables) | {rows:,} | {read_s:.1f} s | {rows / read_s:,.0f} | "
        f"{peak / 1e6:.0f} MB |",
        "",
        f"read_vcf / parse time: {read_s / parse_s:.2f}; command: `python benchmarks/vcf_reader.py "
        f"--samples {args.samples} --sites {args.sites}`",
    ]
    print("\n".join(lines))
    OUT.mkdir(exist_ok=True)
    (OUT / f"vcf_reader_{args.samples}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
