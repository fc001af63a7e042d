"""Fixtures for the signature tests: a laziness guard and generated count matrices.

Matrices are generated once per session (numpy/scipy, small) and every test gets its
own dask wrapper around a copy, chunked as the test asks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import dask
import numpy as np
import pandas as pd
import pytest
from scipy import sparse


@contextmanager
def _raise_if_dask_computes() -> Iterator[None]:
    # As xarray's tests do: any compute while the graph is being built hits a scheduler
    # that refuses to run.
    def refuse(dsk: object, keys: object, **kwargs: object) -> None:
        raise RuntimeError("a dask computation ran while only a graph should be built")

    with dask.config.set(scheduler=refuse):
        yield


@pytest.fixture
def raise_if_dask_computes() -> Callable[[], AbstractContextManager[None]]:
    """Context-manager factory: building a graph inside it must not compute anything."""
    return _raise_if_dask_computes


@dataclass(frozen=True)
class PlantedCounts:
    """Raw UMI-like counts where ``program_cells`` over-express ``program_genes``."""

    counts: sparse.csr_matrix  # cells x genes, float32 integer values
    var_names: np.ndarray
    obs_names: np.ndarray
    program_genes: np.ndarray  # column indices
    program_cells: np.ndarray  # boolean mask over cells
    arm: np.ndarray  # "resistant" (program cells), "sensitive", or "other"


def _planted_counts(
    n_cells: int, n_genes: int, n_program: int, frac_program: float, fold: float, seed: int
) -> PlantedCounts:
    rng = np.random.default_rng(seed)
    gene_mean = rng.lognormal(mean=-1.0, sigma=1.2, size=n_genes)
    library = rng.lognormal(mean=0.0, sigma=0.3, size=n_cells)
    program_cells = rng.random(n_cells) < frac_program
    program_genes = np.sort(rng.choice(n_genes, size=n_program, replace=False))
    rate = library[:, None] * gene_mean[None, :]
    boost = np.ones((n_cells, n_genes))
    boost[np.ix_(program_cells, program_genes)] = fold
    counts = rng.poisson(rate * boost).astype(np.float32)
    arm = np.where(program_cells, "resistant", "sensitive").astype(object)
    arm[rng.random(n_cells) < 0.1] = "other"
    return PlantedCounts(
        counts=sparse.csr_matrix(counts),
        var_names=np.array([f"gene{i}" for i in range(n_genes)]),
        obs_names=np.array([f"cell{i}" for i in range(n_cells)]),
        program_genes=program_genes,
        program_cells=program_cells,
        arm=arm,
    )


@pytest.fixture(scope="session")
def _planted_session() -> PlantedCounts:
    return _planted_counts(
        n_cells=480, n_genes=300, n_program=20, frac_program=0.3, fold=6.0, seed=7
    )


@pytest.fixture
def planted(_planted_session: PlantedCounts) -> PlantedCounts:
    """A per-test copy of the session's planted count matrix."""
    p = _planted_session
    return PlantedCounts(
        counts=p.counts.copy(),
        var_names=p.var_names.copy(),
        obs_names=p.obs_names.copy(),
        program_genes=p.program_genes.copy(),
        program_cells=p.program_cells.copy(),
        arm=p.arm.copy(),
    )


@pytest.fixture
def obs_frame(planted: PlantedCounts) -> pd.DataFrame:
    """Cell metadata of the planted matrix with a categorical ``arm`` column."""
    return pd.DataFrame({"arm": pd.Categorical(planted.arm)}, index=planted.obs_names)
