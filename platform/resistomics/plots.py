"""Plots of results, for people who would rather look than read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo
from resistomics.storage import read_table

__all__ = ["plot_clone_prevalence", "plot_de_volcano", "plot_result", "plot_sample_scores"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, output: str | Path) -> Path:
    fig.tight_layout()
    out = Path(output)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_sample_scores(
    sample_scores: pd.DataFrame,
    output: str | Path,
    *,
    gene_set: str | None = None,
    group_by: str | None = None,
) -> Path:
    """One panel per program: each sample's mean score, grouped by phase (or a column),
    with lines joining a subject's samples so expansion under therapy is visible."""
    plt = _pyplot()
    frame = sample_scores.copy()
    method = "score_genes" if "score_genes" in set(frame["method"]) else frame["method"].iloc[0]
    frame = frame[frame["method"] == method]
    if gene_set is not None:
        frame = frame[frame["gene_set"] == gene_set]
    if group_by is None:
        group_by = next(
            (
                c
                for c in ("phase", "esr1_genotype", "treatment")
                if c in frame.columns and frame[c].notna().any()
            ),
            "sample_id",
        )
    sets = list(dict.fromkeys(frame["gene_set"]))
    n = len(sets)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), sets, strict=False):
        sub = frame[frame["gene_set"] == name]
        groups = list(dict.fromkeys(sub[group_by].astype(str)))
        pos = {g: i for i, g in enumerate(groups)}
        ax.boxplot(
            [sub.loc[sub[group_by].astype(str) == g, "mean_score"] for g in groups],
            positions=range(len(groups)),
            widths=0.5,
            showfliers=False,
        )
        x = sub[group_by].astype(str).map(pos).to_numpy(dtype=float)
        ax.scatter(x, sub["mean_score"], s=14, alpha=0.8, zorder=3)
        if "subject_id" in sub.columns and group_by == "phase":
            for _, g in sub.groupby("subject_id"):
                if len(g) > 1:
                    ax.plot(
                        g[group_by].astype(str).map(pos),
                        g["mean_score"],
                        color="grey",
                        lw=0.6,
                        alpha=0.6,
                    )
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=30, ha="right", fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(f"Program scores per sample ({method}), by {group_by}", fontsize=10)
    return _save(plt, fig, output)


def plot_de_volcano(
    de: pd.DataFrame, output: str | Path, *, title: str = "", n_labels: int = 15
) -> Path:
    """Volcano plot: log2 fold change against -log10 adjusted p-value, top genes named."""
    plt = _pyplot()
    frame = de.dropna(subset=["pval_adj"]).copy()
    y = -np.log10(np.clip(frame["pval_adj"].to_numpy(dtype=float), 1e-300, 1))
    x = frame["log2_fold_change"].to_numpy(dtype=float)
    sig = frame["pval_adj"].to_numpy() < 0.05
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(x[~sig], y[~sig], s=4, color="lightgrey")
    ax.scatter(x[sig], y[sig], s=6, color="firebrick")
    top = np.argsort(-y)[:n_labels]
    names = (
        frame["gene_symbol"].astype(str).to_numpy()
        if "gene_symbol" in frame
        else frame["gene_id"].astype(str).to_numpy()
    )
    for i in top:
        ax.annotate(names[i], (x[i], y[i]), fontsize=7)
    ax.axhline(-np.log10(0.05), ls="--", lw=0.7, color="grey")
    ax.set_xlabel("log2 fold change (A vs B)")
    ax.set_ylabel("-log10 FDR")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, output)


def plot_clone_prevalence(
    clones: pd.DataFrame,
    output: str | Path,
    *,
    subjects: list[str] | None = None,
    max_subjects: int = 12,
) -> Path:
    """One panel per subject: each clone's prevalence (cancer cell fraction) across the
    subject's samples in time order. Clones carrying a catalogued resistance mutation
    are drawn in red and labelled with it; the others in grey, thicker for larger clones.

    ``clones`` is the ``clones`` table of a ``signatures.clonal`` result.
    """
    plt = _pyplot()
    frame = clones.copy()
    chosen = list(dict.fromkeys(frame["subject_id"].astype(str)))
    if subjects is not None:
        chosen = [s for s in chosen if s in set(subjects)]
    chosen = chosen[:max_subjects]
    if not chosen:
        raise ValueError("no subject to plot")
    cols = min(4, len(chosen))
    rows = int(np.ceil(len(chosen) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    largest = max(int(frame["n_mutations"].max()), 1)
    for ax, subject in zip(axes.ravel(), chosen, strict=False):
        rows_s = frame[frame["subject_id"].astype(str) == subject]
        rows_s = rows_s.sort_values(["timepoint", "sample_id"])
        order = rows_s.drop_duplicates("sample_id")
        position = {sid: i for i, sid in enumerate(order["sample_id"].astype(str))}
        labels = order["phase"].astype(str).tolist()
        for _, c in rows_s.groupby("clone_id", sort=True):
            x = c["sample_id"].astype(str).map(position).to_numpy(dtype=float)
            flagged = bool(c["carries_resistance_mutation"].iloc[0])
            width = 1.0 + 3.0 * float(c["n_mutations"].iloc[0]) / largest
            ax.plot(
                x,
                c["prevalence"].to_numpy(dtype=float),
                marker="o",
                lw=width,
                color="firebrick" if flagged else "grey",
                alpha=0.9 if flagged else 0.6,
            )
            if flagged:
                label = str(c["resistance_changes"].iloc[0]).replace(";", "\n")
                ax.annotate(
                    label,
                    (x[-1], float(c["prevalence"].iloc[-1])),
                    fontsize=7,
                    color="firebrick",
                    xytext=(-4, 4),
                    textcoords="offset points",
                    ha="right",
                )
        ax.set_xticks(np.arange(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylim(-0.03, 1.05)
        ax.set_title(subject, fontsize=9)
        ax.set_ylabel("clone prevalence (CCF)", fontsize=7)
    for ax in axes.ravel()[len(chosen) :]:
        ax.axis("off")
    return _save(plt, fig, output)


def plot_result(
    ws: Any, version: VersionInfo, output: str | Path, *, gene_set: str | None = None
) -> Path:
    """Plot a published result by its type."""
    base = ws.root.to_path(version.uri)
    if version.dataset_type == "signatures.scores":
        return plot_sample_scores(
            read_table(ws.root, f"{base}/sample_scores.parquet"), output, gene_set=gene_set
        )
    if version.dataset_type == "signatures.de":
        return plot_de_volcano(read_table(ws.root, f"{base}/de.parquet"), output, title=version.ref)
    if version.dataset_type == "signatures.clonal":
        return plot_clone_prevalence(read_table(ws.root, f"{base}/clones.parquet"), output)
    raise ValueError(f"no plot for {version.dataset_type}")
