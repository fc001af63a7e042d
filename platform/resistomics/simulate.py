"""Generated cohorts with planted resistance biology, for the demo, tests and benchmarks.

A single-cell cohort: ``n_subjects`` patients sampled at baseline and at progression.
Each sample mixes sensitive cells with a resistant subpopulation that over-expresses a
known gene program; the resistant fraction is small at baseline and expands under
treatment. Counts are negative-binomial (gamma-Poisson) around gene-specific means with
cell-specific library sizes, the standard generative model of UMI counts (Svensson,
*Nat. Biotechnol.* 38:147, 2020). Because the truth is planted, tests can demand that
the program scores highest in the resistant cells, tops the DE list, and that the
resistant fraction rises from baseline to progression.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["SimulatedCohort", "simulate_cohort"]


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
