"""A generated LC-MS metabolomics study with a planted oracle.

Study samples in two groups (optionally paired: each subject measured in both), pooled
QC injections every ``qc_every`` injections, batches of consecutive injections, and per
feature:

* log-normal abundances: ``log x = mu_f + dilution_s + effect + biological noise``, with
  the planted log fold change (group ``B`` against ``A``) on the features of a
  "program" (e.g. the ChEBI IDs of a Reactome pathway), a subject effect when paired,
  and a per-sample dilution (what PQN removes);
* pooled QCs: the mean composition of the study samples (half the planted change) with
  technical noise only;
* instrument effects on every injection: a smooth drift along injection order per
  feature and batch (a random low-order curve, what QC-RLSC removes) and a batch offset
  per feature and batch;
* missing values not at random (a logistic detection limit: low values are missing more
  often) plus a fraction missing completely at random.

The planted truth (``features.planted``, ``features.log2_fc``) is the oracle of the
tests and the benchmark. :func:`write_feature_table` writes the study as an MS-DIAL
alignment table (the ``feature-table`` reader's format) and a sample sheet with the
design, injection order and batch.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError

__all__ = ["SimulatedStudy", "simulate_study", "write_feature_table"]


@dataclass(frozen=True)
class SimulatedStudy:
    """A generated study, samples in injection order.

    Attributes
    ----------
    values
        Features x samples abundances (float64, NaN missing), columns in injection order.
    features
        ``feature_id``, ``name``, ``mz``, ``rt``, ``chebi``, ``planted`` (in the program)
        and ``log2_fc`` (the planted change of ``B`` against ``A``; 0 elsewhere).
    samples
        ``sample_id``, ``sample_type`` (``study`` / ``qc``), ``group`` (``A`` / ``B``;
        empty for QCs), ``subject``, ``injection_order`` (1-based), ``batch``.
    clean
        ``values`` before drift, batch offsets and missingness (the oracle of the
        drift correction).
    """

    values: np.ndarray
    features: pd.DataFrame
    samples: pd.DataFrame
    clean: np.ndarray


def _drift(
    rng: np.random.Generator, n_features: int, t: np.ndarray, amplitude: float
) -> np.ndarray:
    """A smooth curve per feature over ``t`` in [0, 1]: random cubic + one slow wave."""
    coef = rng.normal(0.0, amplitude, size=(n_features, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(n_features, 1))
    u = t[None, :] - 0.5
    curve = (
        coef[:, :1] * u
        + coef[:, 1:2] * (u**2 - 1 / 12) * 2
        + coef[:, 2:3] * np.sin(np.pi * t[None, :] + phase) * 0.5
    )
    return curve


def simulate_study(
    *,
    n_study: int = 80,
    n_features: int = 300,
    program: Collection[str] = (),
    chebi: Sequence[str] | None = None,
    log2_fc: float = 1.0,
    paired: bool = False,
    qc_every: int = 6,
    n_batches: int = 2,
    drift: float = 0.5,
    batch_sd: float = 0.3,
    biological_sd: float = 0.35,
    technical_sd: float = 0.05,
    dilution_sd: float = 0.2,
    detection_quantile: float = 0.08,
    mcar: float = 0.02,
    seed: int = 0,
) -> SimulatedStudy:
    """Generate a study (see the module docstring).

    Parameters
    ----------
    n_study
        Study samples (even when ``paired``: ``n_study / 2`` subjects).
    n_features
        Features; their ChEBI IDs are ``chebi`` (length ``n_features``) or ``CHEBI:<i>``.
    program
        ChEBI IDs whose features get the planted change; the sign alternates (half up,
        half down), the size is ``log2_fc`` (log2 units).
    qc_every
        A pooled QC before the first injection and after every ``qc_every`` study
        samples (and one at the end of each batch), as in Dunn et al. 2011.
    n_batches
        Consecutive batches of about equal length.
    drift, batch_sd
        Size (natural log) of the drift curves and the SD of the batch offsets.
    biological_sd, technical_sd, dilution_sd
        SDs (natural log) of the biological variation per feature and sample, the
        measurement noise of every injection, and the per-sample dilution.
    detection_quantile
        The detection limit of a feature sits at this quantile of its values; a value
        ``k`` SDs below it is missing with probability ``1 / (1 + exp(-3k))``.
    mcar
        Fraction of the remaining values missing at random.
    """
    if n_study < 4 or (paired and n_study % 2):
        raise MethodInputError(f"n_study {n_study}: need >= 4 (an even number when paired)")
    if qc_every < 1 or n_batches < 1 or n_features < 1:
        raise MethodInputError("qc_every, n_batches and n_features must be positive")
    rng = np.random.default_rng(seed)
    ids = list(chebi) if chebi is not None else [f"CHEBI:{100000 + i}" for i in range(n_features)]
    if len(ids) != n_features:
        raise MethodInputError(f"{len(ids)} ChEBI IDs for {n_features} features")
    wanted = {str(c) for c in program}
    planted = np.array([c in wanted for c in ids])
    fc = np.zeros(n_features)
    signs = np.where(np.arange(int(planted.sum())) % 2 == 0, 1.0, -1.0)
    fc[planted] = signs * log2_fc

    # study samples: groups, subjects; the injection order is random within the study
    if paired:
        subject = np.repeat(np.arange(n_study // 2), 2)
        group = np.tile(["A", "B"], n_study // 2)
    else:
        subject = np.arange(n_study)
        group = np.repeat(["A", "B"], [n_study - n_study // 2, n_study // 2])
    run = rng.permutation(n_study)
    per_batch = np.array_split(run, n_batches)
    rows: list[tuple[str, str, str, str, int]] = []
    n_qc = 0
    for b, members in enumerate(per_batch, start=1):
        for k, i in enumerate(members):
            if k % qc_every == 0:
                n_qc += 1
                rows.append((f"QC{n_qc:03d}", "qc", "", "", b))
            rows.append((f"S{i + 1:04d}", "study", str(group[i]), f"P{subject[i] + 1:04d}", b))
        n_qc += 1
        rows.append((f"QC{n_qc:03d}", "qc", "", "", b))
    samples = pd.DataFrame(rows, columns=["sample_id", "sample_type", "group", "subject", "batch"])
    samples.insert(4, "injection_order", np.arange(1, len(samples) + 1))
    is_qc = (samples["sample_type"] == "qc").to_numpy()
    study_of = np.array(
        [int(s[1:]) - 1 if not q else -1 for s, q in zip(samples["sample_id"], is_qc, strict=True)]
    )

    # the biology (natural log)
    mu = rng.normal(np.log(2e4), 1.2, size=(n_features, 1))
    sd = biological_sd * rng.lognormal(0.0, 0.25, size=(n_features, 1))
    bio = rng.normal(0.0, 1.0, size=(n_features, n_study)) * sd
    if paired:
        bio += np.repeat(rng.normal(0.0, 1.0, size=(n_features, n_study // 2)), 2, axis=1) * sd
    effect = (group == "B")[None, :] * (fc * np.log(2))[:, None]
    dilution = rng.normal(0.0, dilution_sd, size=(1, n_study))
    study_log = mu + bio + effect + dilution
    pool = np.log(np.exp(study_log - dilution).mean(axis=1, keepdims=True))
    clean_log = np.where(is_qc[None, :], pool, study_log[:, np.maximum(study_of, 0)])

    # the instrument: drift per feature and batch, batch offsets, measurement noise
    inst = np.zeros((n_features, len(samples)))
    batches = samples["batch"].to_numpy()
    for b in np.unique(batches):
        cols = np.flatnonzero(batches == b)
        t = np.linspace(0.0, 1.0, cols.size)
        inst[:, cols] = _drift(rng, n_features, t, drift) + rng.normal(
            0.0, batch_sd, size=(n_features, 1)
        )
    noise = rng.normal(0.0, technical_sd, size=inst.shape)
    observed_log = clean_log + inst + noise

    # missing not at random below a per-feature detection limit, then at random
    limit = np.quantile(observed_log, detection_quantile, axis=1, keepdims=True)
    scale = observed_log.std(axis=1, keepdims=True)
    p_mnar = 1.0 / (1.0 + np.exp(3.0 * (observed_log - limit) / scale))
    missing = (rng.random(inst.shape) < p_mnar) | (rng.random(inst.shape) < mcar)
    values = np.where(missing, np.nan, np.exp(observed_log))

    features = pd.DataFrame(
        {
            "feature_id": [f"F{i + 1:05d}" for i in range(n_features)],
            "name": [f"metabolite {c}" for c in ids],
            "mz": np.round(np.sort(rng.uniform(70.0, 1000.0, n_features)), 5),
            "rt": np.round(rng.uniform(0.5, 15.0, n_features), 3),
            "chebi": ids,
            "planted": planted,
            "log2_fc": fc,
        }
    )
    return SimulatedStudy(values, features, samples, np.exp(clean_log + noise))


def write_feature_table(study: SimulatedStudy, directory: str | Path) -> tuple[Path, Path]:
    """Write ``study`` as an MS-DIAL alignment table and a sample sheet; their paths.

    The table (``features.tsv``) has MS-DIAL's rows above the header (``Class``, ``File
    type``, ``Injection order``, ``Batch ID``) and the columns ``Alignment ID``,
    ``Average Rt(min)``, ``Average Mz``, ``Metabolite name``, ``ChEBI``; missing values are
    empty cells. The sheet (``samples.csv``) holds every sample's ``sample_id``,
    ``sample_type``, ``group``, ``subject``, ``injection_order`` and ``batch`` (the
    ``feature-table`` reader takes classes, sample types, injection order and batch from
    the rows above the header; the sheet also gives groups and subjects for the study's
    registration).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    s = study.samples
    meta = ["Alignment ID", "Average Rt(min)", "Average Mz", "Metabolite name", "ChEBI"]
    pad = [""] * (len(meta) - 1)
    file_type = ["QC" if t == "qc" else "Sample" for t in s["sample_type"]]
    lines = [
        "\t".join([*pad, "Class", *[g or "QC" for g in s["group"]]]),
        "\t".join([*pad, "File type", *file_type]),
        "\t".join([*pad, "Injection order", *map(str, s["injection_order"])]),
        "\t".join([*pad, "Batch ID", *map(str, s["batch"])]),
        "\t".join([*meta, *s["sample_id"]]),
    ]
    f = study.features
    cells = np.where(np.isnan(study.values), "", np.char.mod("%.6g", study.values))
    for i in range(len(f)):
        head = [
            f["feature_id"][i],
            f"{f['rt'][i]:.3f}",
            f"{f['mz'][i]:.5f}",
            f["name"][i],
            f["chebi"][i],
        ]
        lines.append("\t".join([*head, *cells[i]]))
    table = out / "features.tsv"
    table.write_text("\n".join(lines) + "\n")
    sheet = out / "samples.csv"
    s.to_csv(sheet, index=False)
    return table, sheet
