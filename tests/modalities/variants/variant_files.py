"""Generated variant files written the way somatic callers and annotators write them."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import pandas as pd

from resistomics.modalities.variants import (
    VariantReadContext,
    VariantSource,
)

SAMPLES = ("P1_baseline", "P1_relapse", "P1_relapse2")
SUBJECTS = dict.fromkeys(SAMPLES, "P1")

CSQ_FORMAT = "Allele|Consequence|IMPACT|SYMBOL|Gene|Feature|BIOTYPE|HGVSc|HGVSp|CANONICAL"
ANN_FORMAT = (
    "Allele | Annotation | Annotation_Impact | Gene_Name | Gene_ID | Feature_Type | "
    "Feature_ID | Transcript_BioType | Rank | HGVS.c | HGVS.p | cDNA.pos / cDNA.length | "
    "CDS.pos / CDS.length | AA.pos / AA.length | Distance | ERRORS / WARNINGS / INFO"
)


def vcf_header(samples: tuple[str, ...] = SAMPLES, *, annotation: str = "CSQ") -> str:
    info = (
        f'##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
        f'Ensembl VEP. Format: {CSQ_FORMAT}">'
        if annotation == "CSQ"
        else f"##INFO=<ID=ANN,Number=.,Type=String,Description=\"Functional annotations: '{ANN_FORMAT}' \">"
    )
    lines = [
        "##fileformat=VCFv4.2",
        "##source=Mutect2",
        "##reference=GRCh37",
        "##contig=<ID=chr7,length=159138663>",
        "##contig=<ID=chr12,length=133851895>",
        "##contig=<ID=chr17,length=81195210>",
        "##contig=<ID=chrUn_gl000220,length=161802>",
        '##FILTER=<ID=PASS,Description="All filters passed">',
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths for the ref and alt alleles">',
        '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Approximate read depth">',
        '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fractions of alternate alleles">',
        info,
        "\t".join(
            ["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *samples]
        ),
    ]
    return "\n".join(lines) + "\n"


def record(
    chrom: str, pos: int, ref: str, alt: str, info: str, *calls: str, fmt: str = "GT:AD:DP:AF"
) -> str:
    return "\t".join([chrom, str(pos), ".", ref, alt, ".", "PASS", info, fmt, *calls]) + "\n"


# Baseline has 0 alt reads at BRAF V600E (kept: VAF 0 is informative); relapse carries it.
BRAF = record(
    "chr7",
    140453136,
    "A",
    "T",
    "CSQ=T|missense_variant|MODERATE|BRAF|ENSG00000157764|ENST00000288602|protein_coding|"
    "c.1799T>A|ENSP00000288602.6:p.Val600Glu|YES",
    "0/0:40,0:40:0",
    "0/1:30,10:40:0.25",
    "0/1:10,30:40:0.75",
)
# Multi-allelic KRAS G12D / G12V, split per alt allele.
KRAS = record(
    "chr12",
    25398284,
    "C",
    "T,A",
    "CSQ=T|missense_variant|MODERATE|KRAS|ENSG00000133703|ENST00000256078|protein_coding|"
    "c.35G>A|ENSP00000256078.4:p.Gly12Asp|YES,A|missense_variant|MODERATE|KRAS|"
    "ENSG00000133703|ENST00000256078|protein_coding|c.35G>T|ENSP00000256078.4:p.Gly12Val|YES",
    "0/0:50,0,0:50:0,0",
    "0/1:40,10,0:50:0.2,0",
    "1/2:20,15,15:50:0.3,0.3",
)
# TP53 stop gain: the first transcript is a non-canonical intron hit, the most severe wins.
# The third sample has no coverage and no call here: no row.
TP53 = record(
    "chr17",
    7578406,
    "C",
    "T",
    "CSQ=T|intron_variant|MODIFIER|TP53|ENSG00000141510|ENST00000413465|protein_coding|"
    "c.376-2G>A||,T|stop_gained&splice_region_variant|HIGH|TP53|ENSG00000141510|"
    "ENST00000269305|protein_coding|c.637C>T|ENSP00000269305.4:p.Arg213Ter|YES",
    "0/0:60,0:60:0",
    "0/1:45,15:60:0.25",
    "./.:0,0:0:.",
)
GOOD_RECORDS = (BRAF, KRAS, TP53)


def bgzip_bytes(data: bytes, block: int = 65280) -> bytes:
    """BGZF (SAM spec 4.1): gzip members with a 'BC' extra field, then the EOF block."""

    def member(chunk: bytes) -> bytes:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        body = c.compress(chunk) + c.flush()
        return (
            b"\x1f\x8b\x08\x04\x00\x00\x00\x00\x00\xff"
            + struct.pack("<H", 6)
            + b"BC"
            + struct.pack("<HH", 2, len(body) + 25)
            + body
            + struct.pack("<II", zlib.crc32(chunk), len(chunk))
        )

    out = b"".join(member(data[i : i + block]) for i in range(0, len(data), block))
    return out + member(b"")


def write_text(path: Path, text: str, compression: str = "none") -> Path:
    data = text.encode()
    if compression == "gzip":
        data = gzip.compress(data)
    elif compression == "bgzip":
        data = bgzip_bytes(data)
    path.write_bytes(data)
    return path


def study_context(*, rows_per_batch: int = 100_000) -> VariantReadContext:
    return VariantReadContext(
        registered_samples=frozenset(SAMPLES), subjects=SUBJECTS, rows_per_batch=rows_per_batch
    )


def read_all(source: VariantSource) -> pd.DataFrame:
    return pd.concat(list(source.batches), ignore_index=True)
