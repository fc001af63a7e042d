"""Generated cohorts with planted resistance biology, for the demo, tests and benchmarks.

A single-cell cohort: ``n_subjects`` patients sampled at baseline and at progression.
Each sample mixes sensitive cells with a resistant subpopulation that over-expresses a
known gene program; the resistant fraction is small at baseline and expands under
treatment. Counts are negative-binomial (gamma-Poisson) around gene-specific means with
cell-specific library sizes, the standard generative model of UMI counts (Svensson,
*Nat. Biotechnol.* 38:147, 2020). Because the truth is planted, tests can demand that
the program scores highest in the resistant cells, tops the DE list, and that the
resistant fraction rises from baseline to progression.

Somatic variant calls (:func:`simulate_clonal_cohort`): per subject a truncal, a
sensitive and a resistant clone whose cancer cell fractions change between baseline and
progression, the resistant clone carrying a catalogued resistance mutation; written as a
caller-style multi-sample VCF with read counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "MAF_COLUMNS",
    "RESISTANCE_DRIVERS",
    "SimulatedCalls",
    "SimulatedCohort",
    "simulate_clonal_cohort",
    "simulate_cohort",
]


@dataclass(frozen=True)
class SimulatedCohort:
    """The generated data plus the planted truth."""

    counts: sp.csr_matrix  # cells x genes, integer-valued float32
    obs: pd.DataFrame  # index cell_id; sample_id, resistant (bool)
    var: pd.DataFrame  # index gene symbol
    samples: (
        pd.DataFrame
    )  # sample sheet: sample_id, subject_id, timepoint, phase, treatment, response
    program: str
    program_genes: tuple[str, ...]
    fold_change: float
    resistant_fraction: dict[str, float]

    def to_anndata(self):  # type: ignore[no-untyped-def]
        import anndata as ad

        return ad.AnnData(X=self.counts, obs=self.obs.copy(), var=self.var.copy())


def _gene_names(n_genes: int, program_genes: Sequence[str], extra: Sequence[str]) -> list[str]:
    names = list(dict.fromkeys([*program_genes, *extra]))[:n_genes]
    i = 0
    while len(names) < n_genes:
        names.append(f"GENE{i:05d}")
        i += 1
    return names


def simulate_cohort(
    *,
    n_subjects: int = 6,
    cells_per_sample: int = 400,
    n_genes: int = 2000,
    program: str = "DRUG_TOLERANT_PERSISTER",
    program_genes: Sequence[str] | None = None,
    extra_genes: Sequence[str] = (),
    fold_change: float = 5.0,
    baseline_fraction: float = 0.05,
    progression_fraction: float = 0.45,
    dispersion: float = 0.3,
    seed: int = 0,
) -> SimulatedCohort:
    """Generate a cohort whose resistant subpopulation expands under treatment.

    Parameters
    ----------
    program, program_genes
        The planted program; by default its genes are taken from the built-in
        resistance catalogue.
    extra_genes
        More real symbols to include (e.g. genes of other programs, so that the other
        programs can be scored too).
    fold_change
        Multiplier of the program genes' means in resistant cells.
    baseline_fraction, progression_fraction
        Expected resistant fraction of each subject's baseline and progression sample
        (each subject's actual fraction varies around it).
    dispersion
        Negative-binomial dispersion (variance = mu + dispersion * mu^2).
    """
    rng = np.random.default_rng(seed)
    if program_genes is None:
        from resistomics.knowledge import builtin_programs

        catalogue = {s.name: s for s in builtin_programs().sets}
        program_genes = catalogue[program].genes
        if not extra_genes:
            extra_genes = [g for s in catalogue.values() for g in s.genes]
    genes = _gene_names(n_genes, program_genes, extra_genes)
    program_idx = np.array([genes.index(g) for g in program_genes if g in genes])
    base_mu = np.exp(rng.normal(-1.0, 1.5, size=n_genes)).astype(np.float64)
    # program genes expressed at moderate levels so the planted fold change is visible
    base_mu[program_idx] = np.exp(rng.normal(-0.5, 0.5, size=program_idx.size))

    sample_rows = []
    obs_parts = []
    blocks = []
    fractions: dict[str, float] = {}
    for s in range(n_subjects):
        subject = f"P{s + 1:02d}"
        for phase, day, frac in (
            ("baseline", 0.0, baseline_fraction),
            ("progression", 180.0, progression_fraction),
        ):
            sample_id = f"{subject}_{'BL' if phase == 'baseline' else 'PD'}"
            f = float(np.clip(rng.normal(frac, 0.03), 0.01, 0.95))
            fractions[sample_id] = f
            n = cells_per_sample
            resistant = rng.random(n) < f
            lib = np.exp(rng.normal(0.0, 0.35, size=n))
            mu = np.outer(lib, base_mu)
            mu[np.ix_(resistant, program_idx)] *= fold_change
            # gamma-Poisson: lambda ~ Gamma(shape=1/phi, scale=mu*phi)
            shape = 1.0 / dispersion
            lam = rng.gamma(shape, mu * dispersion)
            counts = rng.poisson(lam).astype(np.float32)
            blocks.append(sp.csr_matrix(counts))
            obs_parts.append(
                pd.DataFrame(
                    {"sample_id": sample_id, "resistant": resistant},
                    index=[f"{sample_id}_c{i:05d}" for i in range(n)],
                )
            )
            sample_rows.append(
                {
                    "sample_id": sample_id,
                    "subject_id": subject,
                    "timepoint": day,
                    "phase": phase,
                    "treatment": "targeted-therapy",
                    "response": "sensitive" if phase == "baseline" else "resistant",
                    "batch": f"B{(s % 2) + 1}",
                }
            )
    counts = sp.vstack(blocks, format="csr")
    obs = pd.concat(obs_parts)
    var = pd.DataFrame(index=pd.Index(genes, name=None))
    return SimulatedCohort(
        counts=counts,
        obs=obs,
        var=var,
        samples=pd.DataFrame(sample_rows),
        program=program,
        program_genes=tuple(genes[i] for i in program_idx),
        fold_change=fold_change,
        resistant_fraction=fractions,
    )


# --------------------------------------------------------------------------------------
# Variant calls: clonal evolution under therapy
# --------------------------------------------------------------------------------------

#: Catalogued resistance mutations the simulator plants (gene, HGVSp, chromosome). The
#: positions it writes are synthetic (on the gene's chromosome, not the codon's
#: coordinate): annotation comes from the VEP CSQ field, as it would after VEP.
RESISTANCE_DRIVERS: tuple[tuple[str, str, str], ...] = (
    ("ESR1", "p.Tyr537Ser", "6"),
    ("ESR1", "p.Asp538Gly", "6"),
    ("EGFR", "p.Thr790Met", "7"),
    ("ABL1", "p.Thr315Ile", "9"),
    ("BTK", "p.Cys481Ser", "X"),
    ("KRAS", "p.Tyr96Asp", "12"),
)
#: The GDC/TCGA MAF columns the generated MAFs (tests, benchmarks) carry, in order.
MAF_COLUMNS: tuple[str, ...] = (
    "Hugo_Symbol",
    "Chromosome",
    "Start_Position",
    "Reference_Allele",
    "Tumor_Seq_Allele2",
    "Tumor_Sample_Barcode",
    "HGVSp_Short",
    "Variant_Classification",
    "t_ref_count",
    "t_alt_count",
    "t_depth",
)
_VEP_CSQ = "Allele|Consequence|IMPACT|SYMBOL|Gene|Feature|BIOTYPE|HGVSc|HGVSp|CANONICAL"
_CONTIGS = {str(c): 0 for c in [*range(1, 23), "X"]}


@dataclass(frozen=True)
class SimulatedCalls:
    """Generated somatic calls with the planted clone of every mutation."""

    samples: pd.DataFrame  # sample sheet: sample_id, subject_id, phase, timepoint, purity
    calls: pd.DataFrame  # one row per (sample, mutation): counts, depth, clone, planted_ccf
    drivers: dict[str, tuple[str, str]]  # subject -> (gene, HGVSp) of its resistant clone

    def write_maf(self, path: str | Path) -> Path:
        """A GDC-style MAF with read counts (:data:`MAF_COLUMNS`), one row per call."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        c = self.calls
        frame = pd.DataFrame(
            {
                "Hugo_Symbol": c["gene"],
                "Chromosome": c["chrom"],
                "Start_Position": c["pos"],
                "Reference_Allele": c["ref"],
                "Tumor_Seq_Allele2": c["alt"],
                "Tumor_Sample_Barcode": c["sample_id"],
                "HGVSp_Short": c["hgvsp"],
                "Variant_Classification": "Missense_Mutation",
                "t_ref_count": c["ref_count"],
                "t_alt_count": c["alt_count"],
                "t_depth": c["depth"],
            }
        )[list(MAF_COLUMNS)]
        frame.to_csv(path, sep="\t", index=False)
        return path

    def write_vcf(self, path: str | Path) -> Path:
        """One multi-sample VCF as Mutect2 + VEP write it (GT:AD:DP:AF, CSQ), the
        subjects merged as ``bcftools merge`` does: a subject's samples are ``./.`` at
        the other subjects' sites."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        sample_ids = self.samples["sample_id"].tolist()
        column = {s: i for i, s in enumerate(sample_ids)}
        header = [
            "##fileformat=VCFv4.2",
            "##source=Mutect2 (simulated by resistomics.simulate)",
            *(f"##contig=<ID=chr{c},length=250000000>" for c in _CONTIGS),
            '##FILTER=<ID=PASS,Description="All filters passed">',
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
            '##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">',
            '##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">',
            '##FORMAT=<ID=AF,Number=A,Type=Float,Description="Allele fraction">',
            '##INFO=<ID=CSQ,Number=.,Type=String,Description="Consequence annotations from '
            f'Ensembl VEP. Format: {_VEP_CSQ}">',
            "\t".join(
                [
                    "#CHROM",
                    "POS",
                    "ID",
                    "REF",
                    "ALT",
                    "QUAL",
                    "FILTER",
                    "INFO",
                    "FORMAT",
                    *sample_ids,
                ]
            ),
        ]
        lines = []
        calls = self.calls.sort_values(["chrom", "pos", "sample_id"], key=_chrom_order)
        for (chrom, pos, ref, alt), site in calls.groupby(
            ["chrom", "pos", "ref", "alt"], sort=False
        ):
            fields = ["./.:.:.:."] * len(sample_ids)
            for r in site.itertuples(index=False):
                gt = "0/1" if r.alt_count else "0/0"
                fields[column[r.sample_id]] = (
                    f"{gt}:{r.ref_count},{r.alt_count}:{r.depth}:{r.alt_count / r.depth:.4f}"
                )
            first = site.iloc[0]
            csq = (
                f"{alt}|missense_variant|MODERATE|{first['gene']}|.|.|protein_coding|.|"
                f"{first['hgvsp']}|YES"
            )
            lines.append(
                "\t".join(
                    [
                        f"chr{chrom}",
                        str(pos),
                        ".",
                        ref,
                        alt,
                        ".",
                        "PASS",
                        f"CSQ={csq}",
                        "GT:AD:DP:AF",
                        *fields,
                    ]
                )
            )
        path.write_text("\n".join(header + lines) + "\n")
        return path


def _chrom_order(values: pd.Series) -> pd.Series:
    if values.name != "chrom":
        return values
    return values.map({c: i for i, c in enumerate(_CONTIGS)})


def simulate_clonal_cohort(
    *,
    n_subjects: int = 6,
    n_truncal: int = 30,
    n_sensitive: int = 15,
    n_resistant: int = 10,
    depth: tuple[int, int] = (80, 250),
    purity: tuple[float, float] = (0.5, 0.9),
    seed: int = 0,
) -> SimulatedCalls:
    """Somatic calls of a cohort whose resistant clone expands under therapy.

    Every subject is sampled at baseline (day 0) and at progression (day 180), with a
    tumour purity drawn from ``purity``. Three clones: truncal (cancer cell fraction 1
    in both samples), sensitive (CCF 0.4-0.7 at baseline, 0.02 at progression) and
    resistant (absent at baseline, CCF 0.6-0.95 at progression), the resistant one
    carrying a catalogued resistance mutation (:data:`RESISTANCE_DRIVERS`, in turn) and
    ``n_resistant - 1`` passengers. Heterozygous mutations in diploid regions: alt
    reads ~ Binomial(depth, CCF * purity / 2) with depth uniform in ``depth`` (the
    model behind :func:`resistomics.signatures.cancer_cell_fraction`).
    """
    rng = np.random.default_rng(seed)
    contigs = np.array(list(_CONTIGS))
    bases = np.array(list("ACGT"))
    samples, frames, drivers = [], [], {}
    next_pos = 1_000_000
    for s in range(n_subjects):
        subject = f"P{s + 1:02d}"
        tumour_purity = round(float(rng.uniform(*purity)), 3)
        gene, hgvsp, driver_chrom = RESISTANCE_DRIVERS[s % len(RESISTANCE_DRIVERS)]
        drivers[subject] = (gene, hgvsp)
        ccf_of = {  # (baseline, progression)
            "truncal": (1.0, 1.0),
            "sensitive": (float(rng.uniform(0.4, 0.7)), 0.02),
            "resistant": (0.0, float(rng.uniform(0.6, 0.95))),
        }
        # The driver first, then the passengers of each clone.
        clone = np.array(
            ["resistant"] * n_resistant + ["truncal"] * n_truncal + ["sensitive"] * n_sensitive
        )
        n = len(clone)
        genes = np.char.add("SIM", np.char.zfill(rng.integers(1, 20000, n).astype(str), 5))
        changes = np.char.add(np.char.add("p.Ala", rng.integers(1, 1000, n).astype(str)), "Val")
        chroms = rng.choice(contigs, n)
        genes[0], changes[0], chroms[0] = gene, hgvsp, driver_chrom
        # Positions increase across the whole cohort: no two mutations share a position.
        positions = next_pos + np.cumsum(rng.integers(10, 1_000, n))
        next_pos = int(positions[-1])
        pair = np.argsort(rng.random((n, 4)), axis=1)[:, :2]  # two distinct bases
        ref, alt = bases[pair[:, 0]], bases[pair[:, 1]]
        for t, (phase, day) in enumerate((("baseline", 0), ("progression", 180))):
            sample_id = f"{subject}_{'BL' if phase == 'baseline' else 'PD'}"
            samples.append(
                {
                    "sample_id": sample_id,
                    "subject_id": subject,
                    "phase": phase,
                    "timepoint": day,
                    "purity": tumour_purity,
                }
            )
            ccf = np.array([ccf_of[c][t] for c in ("resistant", "truncal", "sensitive")])
            ccf = np.repeat(ccf, [n_resistant, n_truncal, n_sensitive])
            depth_t = rng.integers(depth[0], depth[1] + 1, n)
            alt_t = rng.binomial(depth_t, ccf * tumour_purity / 2)
            frames.append(
                pd.DataFrame(
                    {
                        "subject_id": subject,
                        "sample_id": sample_id,
                        "chrom": chroms,
                        "pos": positions,
                        "ref": ref,
                        "alt": alt,
                        "gene": genes,
                        "hgvsp": changes,
                        "ref_count": depth_t - alt_t,
                        "alt_count": alt_t,
                        "depth": depth_t,
                        "clone": clone,
                        "planted_ccf": ccf,
                    }
                )
            )
    calls = pd.concat(frames, ignore_index=True)
    calls = calls.sort_values(["subject_id", "pos", "sample_id"], kind="stable", ignore_index=True)
    return SimulatedCalls(pd.DataFrame(samples), calls, drivers)
