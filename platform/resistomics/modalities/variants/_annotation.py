"""Functional annotation of calls: VEP ``CSQ``, SnpEff ``ANN`` and MAF classifications.

Canonical choices (also in ``schemas/variants/variants.calls.yaml``):

- ``consequence`` is a Sequence Ontology term (``missense_variant``); VEP and SnpEff
  already write SO terms, MAF ``Variant_Classification`` values are mapped to the term
  vcf2maf maps from. Several terms joined by ``&`` keep only the most severe one.
- ``protein_change`` is the one-letter short form without the ``p.`` prefix, as
  clinicians and the MAF ``HGVSp_Short`` column write it (``V600E``, ``R1445fs``,
  ``*`` for stop): three-letter HGVS (``ENSP...:p.Val600Glu``) is shortened.
- Of several transcripts for one allele: VEP's ``PICK=1`` entry if the file has one,
  else the entry with the most severe consequence (Ensembl's ranking), ties broken by
  ``CANONICAL=YES`` and then file order. SnpEff sorts ``ANN`` by severity itself, so
  its first entry for the allele is taken.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "Annotation",
    "AnnotationFormat",
    "annotation_format",
    "maf_consequence",
    "pick_annotation",
    "short_protein_change",
]

# Ensembl VEP consequence ranking, most severe first
# (https://www.ensembl.org/info/genome/variation/prediction/predicted_data.html).
_SO_SEVERITY = [
    "transcript_ablation",
    "splice_acceptor_variant",
    "splice_donor_variant",
    "stop_gained",
    "frameshift_variant",
    "stop_lost",
    "start_lost",
    "transcript_amplification",
    "feature_elongation",
    "feature_truncation",
    "inframe_insertion",
    "inframe_deletion",
    "missense_variant",
    "protein_altering_variant",
    "splice_donor_5th_base_variant",
    "splice_region_variant",
    "splice_donor_region_variant",
    "splice_polypyrimidine_tract_variant",
    "incomplete_terminal_codon_variant",
    "start_retained_variant",
    "stop_retained_variant",
    "synonymous_variant",
    "coding_sequence_variant",
    "mature_miRNA_variant",
    "5_prime_UTR_variant",
    "3_prime_UTR_variant",
    "non_coding_transcript_exon_variant",
    "intron_variant",
    "NMD_transcript_variant",
    "non_coding_transcript_variant",
    "coding_transcript_variant",
    "upstream_gene_variant",
    "downstream_gene_variant",
    "TFBS_ablation",
    "TFBS_amplification",
    "TF_binding_site_variant",
    "regulatory_region_ablation",
    "regulatory_region_amplification",
    "regulatory_region_variant",
    "intergenic_variant",
    "sequence_variant",
]
_RANK = {term: i for i, term in enumerate(_SO_SEVERITY)}

# MAF Variant_Classification -> SO term (the inverse of vcf2maf's mapping).
_MAF_TO_SO = {
    "Missense_Mutation": "missense_variant",
    "Nonsense_Mutation": "stop_gained",
    "Silent": "synonymous_variant",
    "Splice_Site": "splice_site_variant",
    "Splice_Region": "splice_region_variant",
    "Frame_Shift_Del": "frameshift_variant",
    "Frame_Shift_Ins": "frameshift_variant",
    "In_Frame_Del": "inframe_deletion",
    "In_Frame_Ins": "inframe_insertion",
    "Nonstop_Mutation": "stop_lost",
    "Translation_Start_Site": "start_lost",
    "3'UTR": "3_prime_UTR_variant",
    "5'UTR": "5_prime_UTR_variant",
    "3'Flank": "downstream_gene_variant",
    "5'Flank": "upstream_gene_variant",
    "Intron": "intron_variant",
    "RNA": "non_coding_transcript_exon_variant",
    "IGR": "intergenic_variant",
    "Targeted_Region": "sequence_variant",
}

_AA3 = {
    "Ala": "A",
    "Arg": "R",
    "Asn": "N",
    "Asp": "D",
    "Cys": "C",
    "Gln": "Q",
    "Glu": "E",
    "Gly": "G",
    "His": "H",
    "Ile": "I",
    "Leu": "L",
    "Lys": "K",
    "Met": "M",
    "Phe": "F",
    "Pro": "P",
    "Ser": "S",
    "Thr": "T",
    "Trp": "W",
    "Tyr": "Y",
    "Val": "V",
    "Sec": "U",
    "Pyl": "O",
    "Xaa": "X",
    "Ter": "*",
}
_AA3_RE = re.compile("|".join(_AA3))


def short_protein_change(value: str | None) -> str | None:
    """``ENSP00000288602.6:p.Val600Glu`` / ``p.V600E`` / ``p.(Val600Glu)`` -> ``V600E``."""
    if value is None:
        return None
    text = value.strip().replace("%3D", "=")
    if not text or text in {".", "NA", "-"}:
        return None
    if ":" in text:
        text = text.rsplit(":", 1)[1]
    if text.startswith("p."):
        text = text[2:]
    if text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    text = _AA3_RE.sub(lambda m: _AA3[m.group(0)], text)
    return text or None


def maf_consequence(classification: str | None) -> str | None:
    """MAF ``Variant_Classification`` as an SO term (unknown values are kept as given)."""
    if classification is None or classification.strip() in {"", "NA", "."}:
        return None
    c = classification.strip()
    return _MAF_TO_SO.get(c, c)


def _most_severe(terms: str) -> str | None:
    parts = [t for t in terms.split("&") if t]
    if not parts:
        return None
    return min(parts, key=lambda t: _RANK.get(t, len(_RANK)))


@dataclass(frozen=True)
class AnnotationFormat:
    """Where the fields we keep sit in a ``|``-separated annotation entry."""

    tag: str  # "CSQ" or "ANN"
    allele: int
    consequence: int
    gene: int | None
    protein: int | None
    pick: int | None = None
    canonical: int | None = None


@dataclass(frozen=True)
class Annotation:
    gene: str | None
    consequence: str | None
    protein_change: str | None


def annotation_format(tag: str, description: str) -> AnnotationFormat | None:
    """Parse the field list of a ``CSQ`` (VEP) or ``ANN`` (SnpEff) header description.

    Returns ``None`` when the description lists no ``Allele`` field.
    """
    m = re.search(r"(?:Format|Functional annotations)\s*:\s*'?([^'\"]+)", description)
    if not m:
        return None
    fields = [f.strip() for f in m.group(1).split("|")]
    lower = [f.lower() for f in fields]

    def idx(*names: str) -> int | None:
        for n in names:
            if n.lower() in lower:
                return lower.index(n.lower())
        return None

    allele = idx("Allele")
    consequence = idx("Consequence", "Annotation")
    if allele is None or consequence is None:
        return None
    return AnnotationFormat(
        tag=tag,
        allele=allele,
        consequence=consequence,
        gene=idx("SYMBOL", "Gene_Name"),
        protein=idx("HGVSp", "HGVS.p"),
        pick=idx("PICK"),
        canonical=idx("CANONICAL"),
    )


def vep_allele(ref: str, alts: list[str], alt: str) -> str:
    """The allele string VEP writes for ``alt``: a first base shared by all alleles is cut."""
    alleles = [ref, *alts]
    if all(len(a) > 1 for a in alleles) or len({a[:1] for a in alleles}) != 1:
        return alt
    if any(a.startswith("<") for a in alleles):
        return alt
    return alt[1:] or "-"


def pick_annotation(
    fmt: AnnotationFormat, value: str | None, ref: str, alts: list[str], alt: str
) -> Annotation:
    """The annotation of one alt allele from an INFO ``CSQ``/``ANN`` value (see module doc)."""
    if not value:
        return Annotation(None, None, None)
    entries = [e.split("|") for e in value.split(",")]
    width = max(
        fmt.allele,
        fmt.consequence,
        fmt.gene or 0,
        fmt.protein or 0,
        fmt.pick or 0,
        fmt.canonical or 0,
    )
    entries = [e + [""] * (width + 1 - len(e)) for e in entries]
    wanted = {alt, vep_allele(ref, alts, alt)} if fmt.tag == "CSQ" else {alt}
    mine = [e for e in entries if e[fmt.allele].strip() in wanted]
    if not mine and len(alts) == 1:
        mine = entries
    if not mine:
        return Annotation(None, None, None)
    if fmt.tag == "ANN":
        best = mine[0]
    else:
        picked = [e for e in mine if fmt.pick is not None and e[fmt.pick] == "1"]

        def key(item: tuple[int, list[str]]) -> tuple[int, int, int]:
            i, e = item
            term = _most_severe(e[fmt.consequence]) or ""
            canonical = fmt.canonical is not None and e[fmt.canonical] == "YES"
            return (_RANK.get(term, len(_RANK)), 0 if canonical else 1, i)

        best = picked[0] if picked else min(enumerate(mine), key=key)[1]
    gene = best[fmt.gene].strip() if fmt.gene is not None else ""
    return Annotation(
        gene=gene or None,
        consequence=_most_severe(best[fmt.consequence].strip()),
        protein_change=short_protein_change(best[fmt.protein]) if fmt.protein is not None else None,
    )
