"""Per-sample scores of metabolic programs, so a program can be followed per patient.

The z-score method of Lee et al., "Inferring pathway activity toward precise disease
classification", *PLoS Comput. Biol.* 4:e1000217 (2008), as used for single-sample
metabolomics pathway scores by Wieder et al., *BMC Bioinformatics* 23:481 (2022): each
metabolite's log abundance is standardised across samples (mean 0, standard deviation 1,
NaN ignored) and a program's score in a sample is the combined z,
``sum(sign_i * z_i) / sqrt(k)``, over the ``k`` members measured in that sample
(``sign_i`` is -1 for a metabolite the program consumes, e.g. tryptophan in the
tryptophan-kynurenine program, so the score rises with the kynurenine / tryptophan
ratio). Dividing by ``sqrt(k)`` keeps the score standard normal under the null whatever
the program's size. ``n_measured`` says how many members a score rests on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError

__all__ = ["program_scores"]


def program_scores(
    log_values: pd.DataFrame,
    programs: Mapping[str, Mapping[str, int]],
    *,
    min_measured: int = 2,
) -> pd.DataFrame:
    """Score each program in each sample (combined z of Lee et al. 2008).

    Parameters
    ----------
    log_values
        Samples x metabolites, log scale, NaN missing; columns are identifiers (ChEBI).
    programs
        Program -> {member identifier: +1, or -1 for a consumed metabolite}
        (:meth:`~resistomics.knowledge.MetaboliteSet.signs`).
    min_measured
        A sample with fewer measured members gets a NaN score (its ``n_measured`` is kept).

    Returns
    -------
    DataFrame
        One row per sample and program: ``sample_id``, ``program``, ``score``,
        ``n_measured``, ``n_members`` (members in the data), ``members``. A program with
        no member in the data keeps its rows (``n_members`` 0, score NaN).

    Raises
    ------
    MethodInputError
        Duplicate metabolite columns or ``min_measured`` < 1.
    """
    if log_values.columns.has_duplicates:
        dup = log_values.columns[log_values.columns.duplicated()][0]
        raise MethodInputError(f"metabolite {dup!r} is a column twice")
    if min_measured < 1:
        raise MethodInputError(f"min_measured must be >= 1, got {min_measured}")
    x = log_values.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = np.nanstd(x, axis=0, ddof=1) if len(x) > 1 else np.full(x.shape[1], np.nan)
        z = (x - np.nanmean(x, axis=0)) / np.where(sd > 0, sd, np.nan)
    col = {c: i for i, c in enumerate(log_values.columns)}
    frames: list[pd.DataFrame] = []
    for program, signs in programs.items():
        members = sorted(m for m in signs if m in col)
        idx = np.array([col[m] for m in members], dtype=int)
        sign = np.array([float(signs[m]) for m in members])
        zs = z[:, idx] * sign
        k = np.isfinite(zs).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(k >= min_measured, np.nansum(zs, axis=1) / np.sqrt(k), np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "sample_id": log_values.index.astype(str),
                    "program": program,
                    "score": score,
                    "n_measured": k,
                    "n_members": len(members),
                    "members": ";".join(members),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
