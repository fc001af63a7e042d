"""Generated cohorts of sections with a planted resistance niche (test oracle, benchmark).

Each patient has sections at baseline and at progression. A section is a square of
uniformly scattered cells (about one cell per 100 µm², so neighbours are some 10 µm
apart) of eight cell types in patient-specific proportions (a Dirichlet draw around
:data:`BASE_PROPORTIONS`); tumour cells carry a resistance program score drawn from a
standard normal, independent of position. In a *planted* cohort, at progression a share
of the section's fibroblasts is moved next to (2-5 µm from) randomly chosen program-high
tumour cells (score in the top third of the section's tumour cells): fibroblasts crowd
around resistant cells at progression and nowhere else. In a *null* cohort nothing is
moved, so the neighbourhoods of high and low tumour cells differ by chance alone, in
either phase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from resistomics.modalities.spatial._sections import Section

__all__ = ["BASE_PROPORTIONS", "CELL_TYPES", "SimulatedCohort", "simulate_niche_cohort"]

#: The eight cell types of a generated section, the first the tumour.
CELL_TYPES = (
    "tumour",
    "fibroblast",
    "macrophage",
    "T cell",
    "B cell",
    "endothelial",
    "NK cell",
    "dendritic cell",
)
#: Mean share of each of :data:`CELL_TYPES`.
BASE_PROPORTIONS = (0.40, 0.12, 0.10, 0.10, 0.06, 0.08, 0.06, 0.08)
#: The values column holding the program score.
PROGRAM = "resistance"


@dataclass(frozen=True)
class SimulatedCohort:
    """Generated sections and their samples table.

    Attributes
    ----------
    sections
        Section name -> :class:`Section` (labels over :data:`CELL_TYPES`, values one
        column, ``"resistance"``, the program score; NaN for non-tumour cells).
    samples
        One row per section: ``section``, ``patient``, ``phase`` (``baseline`` or
        ``progression``).
    planted
        Whether fibroblasts were moved next to program-high tumour cells at progression.
    """

    sections: dict[str, Section]
    samples: pd.DataFrame
    planted: bool


def _section(
    rng: np.random.Generator,
    name: str,
    proportions: np.ndarray,
    n_cells: int,
    crowd: float,
) -> Section:
    side = float(np.sqrt(n_cells * 100.0))
    xy = rng.uniform(0.0, side, size=(n_cells, 2))
    codes = rng.choice(len(CELL_TYPES), size=n_cells, p=proportions)
    score = np.full(n_cells, np.nan)
    tumour = np.flatnonzero(codes == 0)
    score[tumour] = rng.standard_normal(tumour.size)
    if crowd > 0 and tumour.size:
        high = tumour[score[tumour] >= np.quantile(score[tumour], 2 / 3)]
        fib = np.flatnonzero(codes == CELL_TYPES.index("fibroblast"))
        moved = rng.choice(fib, size=round(crowd * fib.size), replace=False)
        anchor = rng.choice(high, size=moved.size, replace=True)
        angle = rng.uniform(0.0, 2 * np.pi, size=moved.size)
        dist = rng.uniform(2.0, 5.0, size=moved.size)
        offset = np.column_stack([np.cos(angle), np.sin(angle)]) * dist[:, None]
        xy[moved] = np.clip(xy[anchor] + offset, 0.0, side)
    labels = pd.Categorical.from_codes(codes, categories=list(CELL_TYPES))
    return Section(name=name, coords=xy, labels=labels, values=score[:, None], genes=(PROGRAM,))


def simulate_niche_cohort(
    *,
    n_patients: int = 6,
    sections_per_sample: int = 2,
    n_cells: int = 1500,
    planted: bool = True,
    crowd: float = 0.5,
    concentration: float = 200.0,
    seed: int = 0,
) -> SimulatedCohort:
    """A cohort of ``n_patients`` x (baseline, progression) x ``sections_per_sample``.

    Parameters
    ----------
    n_patients, sections_per_sample, n_cells
        Cohort shape; every section has ``n_cells`` cells.
    planted
        Move ``crowd`` of the fibroblasts next to program-high tumour cells in every
        progression section (False: the null cohort).
    crowd
        Share of a section's fibroblasts moved when planted.
    concentration
        Dirichlet concentration of the patients' cell-type proportions around
        :data:`BASE_PROPORTIONS` (lower: patients differ more).
    seed
        Seed of the one random stream.
    """
    rng = np.random.default_rng(seed)
    base = np.asarray(BASE_PROPORTIONS)
    sections: dict[str, Section] = {}
    rows = []
    for p in range(1, n_patients + 1):
        patient = f"P{p:02d}"
        proportions = rng.dirichlet(base * concentration)
        for phase in ("baseline", "progression"):
            amount = crowd if planted and phase == "progression" else 0.0
            for s in range(1, sections_per_sample + 1):
                name = f"{patient}-{phase}-{s}"
                sections[name] = _section(rng, name, proportions, n_cells, amount)
                rows.append({"section": name, "patient": patient, "phase": phase})
    return SimulatedCohort(sections=sections, samples=pd.DataFrame(rows), planted=planted)
