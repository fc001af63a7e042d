"""Plots of results, for people who would rather look than read.

Drawing only: which dataset gets which plot is the modality's to say (its source plot
and its analyses' plots; :func:`resistomics.modalities.plot_dataset` dispatches).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resistomics.catalog import VersionInfo

__all__ = [
    "MAX_CELLS_DRAWN",
    "DmrTrack",
    "SectionCells",
    "VolcanoPoints",
    "category_colours",
    "plot_accessibility_qc",
    "plot_autocorr_genes",
    "plot_clone_prevalence",
    "plot_cooccurrence_curves",
    "plot_de_volcano",
    "plot_dml_volcano",
    "plot_dmr_tracks",
    "plot_graph_distributions",
    "plot_nhood_heatmap",
    "plot_niche_change",
    "plot_sample_pca",
    "plot_sample_qc",
    "plot_sample_scores",
    "plot_section_cells",
    "plot_set_enrichment",
    "volcano_points",
    "volcano_title",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, output: str | Path, *, layout: bool = True) -> Path:
    if layout:
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
    for ax in axes.ravel()[:n]:
        ax.set_xlabel(group_by, fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"mean {method} score\n(per sample, arbitrary units)", fontsize=7)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="o", ls="", color="C0", label="sample (mean over its cells)"),
        Line2D([], [], color="black", lw=0.8, label=f"box: quartiles per {group_by}"),
    ]
    if "subject_id" in frame.columns and group_by == "phase":
        handles.append(Line2D([], [], color="grey", lw=0.8, label="samples of one subject"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(f"Program scores per sample ({method}), by {group_by}", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(plt, fig, output, layout=False)


@dataclass(frozen=True)
class VolcanoPoints:
    """Where each gene of a DE table goes on a volcano plot, and why.

    Nothing is dropped: genes whose fold change is NaN or infinite, or whose adjusted
    p-value is 0, are drawn at the edge of the plot (clipped) and marked; genes with one
    arm all zeros (``pct_nz_a`` or ``pct_nz_b`` 0), whose fold change comes from the
    rule's pseudo-count and can reach +-30, are marked and clipped to the range of the
    genes measured in both arms, so they do not set the axis.

    Attributes
    ----------
    x, y
        Plotted coordinates (effect; ``-log10`` adjusted p-value), clipped.
    significant, one_arm_zero, not_detected, x_clipped, y_clipped, no_effect, no_fdr
        Per-gene flags: FDR below the cut-off; exactly one arm without expression; no
        expression in either arm (drawn where they fall, at 0, 0); the effect
        or ``-log10 FDR`` was clipped to the axis limit; the effect is NaN (drawn at 0);
        the adjusted p-value is missing (e.g. DESeq2's independent filtering; drawn at
        0).
    x_limit, y_limit
        The axis limits the clipped genes sit on.
    effect_column
        ``log2_fold_change`` or ``mean_difference``.
    """

    x: np.ndarray
    y: np.ndarray
    significant: np.ndarray
    one_arm_zero: np.ndarray
    not_detected: np.ndarray
    x_clipped: np.ndarray
    y_clipped: np.ndarray
    no_effect: np.ndarray
    no_fdr: np.ndarray
    x_limit: float
    y_limit: float
    effect_column: str


def volcano_points(de: pd.DataFrame, *, fdr: float = 0.05) -> VolcanoPoints:
    """Place every gene of a DE table on a volcano plot (see :class:`VolcanoPoints`)."""
    effect_column = "log2_fold_change" if "log2_fold_change" in de.columns else "mean_difference"
    effect = de[effect_column].to_numpy(dtype=float)
    padj = de["pval_adj"].to_numpy(dtype=float)
    no_fdr = np.isnan(padj)
    with np.errstate(divide="ignore"):
        y = -np.log10(np.where(no_fdr, 1.0, padj))
    zero_a, zero_b = (
        de[column].to_numpy(dtype=float) == 0
        if column in de.columns
        else np.zeros(len(de), dtype=bool)
        for column in ("pct_nz_a", "pct_nz_b")
    )
    one_arm_zero = zero_a ^ zero_b
    not_detected = zero_a & zero_b
    no_effect = np.isnan(effect)
    finite = np.isfinite(effect)
    measured = finite & ~one_arm_zero & ~not_detected
    reference = np.abs(effect[measured]) if measured.any() else np.abs(effect[finite])
    x_limit = 1.1 * float(reference.max()) if reference.size and reference.max() > 0 else 1.0
    x = np.where(no_effect, 0.0, effect)
    x_clipped = ~no_effect & (np.abs(x) > x_limit)
    x = np.clip(x, -x_limit, x_limit)
    finite_y = y[np.isfinite(y)]
    y_limit = 1.1 * float(finite_y.max()) if finite_y.size and finite_y.max() > 0 else 1.0
    y_clipped = y > y_limit
    y = np.minimum(y, y_limit)
    return VolcanoPoints(
        x=x,
        y=y,
        significant=~no_fdr & (padj < fdr),
        one_arm_zero=one_arm_zero,
        not_detected=not_detected,
        x_clipped=x_clipped,
        y_clipped=y_clipped,
        no_effect=no_effect,
        no_fdr=no_fdr,
        x_limit=x_limit,
        y_limit=y_limit,
        effect_column=effect_column,
    )


def plot_de_volcano(
    de: pd.DataFrame,
    output: str | Path,
    *,
    title: str = "",
    arms: tuple[str, str] | None = None,
    n_labels: int = 15,
    fdr: float = 0.05,
    what: str = "genes",
) -> Path:
    """Volcano plot: effect (log2 fold change, or difference of means for z-scores)
    against -log10 Benjamini-Hochberg FDR, every gene drawn (see :func:`volcano_points`),
    the top genes measured in both arms named, and the counts of marked genes in the
    legend; ``what`` names the rows in the title (genes, features)."""
    plt = _pyplot()
    pts = volcano_points(de, fdr=fdr)
    names = (
        de["gene_symbol"].astype(str).to_numpy()
        if "gene_symbol" in de
        else de["gene_id"].astype(str).to_numpy()
    )
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    odd = pts.one_arm_zero | pts.not_detected | pts.x_clipped | pts.y_clipped | pts.no_effect
    edge = np.where(pts.x < 0, "<", ">")
    groups = [
        (~odd & ~pts.significant, {"s": 5, "color": "lightgrey"}, "not significant"),
        (
            pts.not_detected & ~pts.x_clipped,
            {"s": 16, "marker": "s", "facecolors": "none", "edgecolors": "grey"},
            "zero in both arms",
        ),
        (~odd & pts.significant, {"s": 8, "color": "firebrick"}, f"FDR < {fdr:g}"),
        (
            pts.one_arm_zero & ~pts.x_clipped,
            {"s": 16, "facecolors": "none", "edgecolors": "darkorange", "linewidths": 0.8},
            "one arm all zeros",
        ),
        (
            pts.one_arm_zero & pts.x_clipped,
            {"s": 24, "color": "darkorange"},
            f"one arm all zeros, effect beyond +-{pts.x_limit:.3g} (at the edge)",
        ),
        (
            ~pts.one_arm_zero & pts.x_clipped,
            {"s": 24, "color": "teal"},
            f"infinite effect / beyond +-{pts.x_limit:.3g} (at the edge)",
        ),
        (
            pts.y_clipped & ~pts.x_clipped,
            {"s": 24, "marker": "^", "color": "purple"},
            "FDR = 0 (at the top)",
        ),
        (
            pts.no_effect,
            {"s": 24, "marker": "x", "color": "black"},
            "effect undefined (NaN, at 0)",
        ),
    ]
    for mask, style, label in groups:
        if not mask.any():
            continue
        if "marker" in style or "facecolors" in style:
            ax.scatter(pts.x[mask], pts.y[mask], label=f"{label} (n={int(mask.sum())})", **style)
            continue
        at_edge = label.endswith("(at the edge)")
        for direction in ("<", ">") if at_edge else ("o",):
            part = mask & (edge == direction) if at_edge else mask
            if part.any():
                ax.scatter(
                    pts.x[part],
                    pts.y[part],
                    marker=direction,
                    label=f"{label} (n={int(mask.sum())})"
                    if direction != ">" or not (mask & (edge == "<")).any()
                    else None,
                    **style,
                )
    candidates = np.flatnonzero(~pts.one_arm_zero & ~pts.no_effect & pts.significant)
    for i in candidates[np.argsort(-pts.y[candidates], kind="stable")][:n_labels]:
        ax.annotate(
            names[i], (pts.x[i], pts.y[i]), fontsize=7, xytext=(2, 2), textcoords="offset points"
        )
    ax.axhline(-np.log10(fdr), ls="--", lw=0.7, color="grey")
    ax.axvline(0, lw=0.5, color="grey")
    ax.set_xlim(-pts.x_limit * 1.05, pts.x_limit * 1.05)
    ax.set_ylim(-0.02 * pts.y_limit, pts.y_limit * 1.05)
    a, b = arms if arms is not None else ("arm A", "arm B")
    rule = str(de["fold_change_rule"].iloc[0]) if "fold_change_rule" in de and len(de) else ""
    if pts.effect_column == "log2_fold_change":
        xlabel = f"log2 fold change, {a} / {b}"
    else:
        xlabel = f"difference of means, {a} - {b} (stored scale)"
    ax.set_xlabel(xlabel + (f"  [{rule}]" if rule else ""))
    ax.set_ylabel("-log10 FDR (Benjamini-Hochberg)")
    note = f"{len(de)} {what}"
    if pts.no_fdr.any():
        note += f"; {int(pts.no_fdr.sum())} without an adjusted p-value drawn at 0"
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, frameon=False)
    return _save(plt, fig, output)


def plot_dml_volcano(
    dml: pd.DataFrame,
    output: str | Path,
    *,
    title: str = "",
    arms: tuple[str, str] | None = None,
    fdr: float = 0.05,
    max_background: int = 200_000,
) -> Path:
    """Volcano of differentially methylated CpGs: ``diff`` (mean methylation of arm A
    minus arm B) against -log10 p-value, FDR < ``fdr`` marked and counted by direction.

    A genome-wide table has millions of CpGs: at most ``max_background`` of the
    non-significant ones are drawn (an even sample, said in the legend); every
    significant one is drawn.
    """
    plt = _pyplot()
    diff = dml["diff"].to_numpy(dtype=float)
    p = np.clip(dml["pval"].to_numpy(dtype=float), 1e-300, 1.0)
    y = -np.log10(p)
    sig = dml["fdr"].to_numpy(dtype=float) < fdr
    background = np.flatnonzero(~sig)
    shown = background
    if len(background) > max_background:
        shown = background[:: -(-len(background) // max_background)]
    fig, ax = plt.subplots(figsize=(7.5, 6.4))
    label = f"FDR >= {fdr:g} ({len(background)}"
    label += f", {len(shown)} drawn)" if len(shown) < len(background) else ")"
    ax.scatter(diff[shown], y[shown], s=3, color="lightgrey", label=label, rasterized=True)
    a, b = arms or ("A", "B")
    for mask, color, what in (
        (sig & (diff > 0), "firebrick", f"higher in {a}"),
        (sig & (diff < 0), "steelblue", f"higher in {b}"),
    ):
        if mask.any():
            ax.scatter(
                diff[mask],
                y[mask],
                s=6,
                color=color,
                rasterized=True,
                label=f"FDR < {fdr:g}, {what} ({int(mask.sum())})",
            )
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel(f"methylation difference ({a} - {b})")
    ax.set_ylabel("-log10 p-value")
    ax.set_xlim(-1.02, 1.02)
    ax.set_title(title or "differentially methylated CpGs", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    return _save(plt, fig, output)


def plot_sample_pca(
    scores: np.ndarray,
    explained: np.ndarray,
    output: str | Path,
    *,
    groups: np.ndarray,
    qc: np.ndarray,
    title: str = "",
    legend_title: str = "group",
) -> Path:
    """PCA of samples: PC1 against PC2 (``scores``, samples x 2; ``explained`` the
    fractions of variance), study samples coloured by ``groups``, pooled QC samples
    (``qc``) as black crosses: QCs that cluster tightly are the sign of a stable run."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.0, 6.0))
    qc = np.asarray(qc, dtype=bool)
    labels = np.asarray(groups).astype(str)
    cmap = plt.get_cmap("tab10")
    for i, g in enumerate(sorted(set(labels[~qc]))):
        m = ~qc & (labels == g)
        ax.scatter(
            scores[m, 0], scores[m, 1], s=14, color=cmap(i % 10), label=f"{g} (n={int(m.sum())})"
        )
    if qc.any():
        ax.scatter(
            scores[qc, 0],
            scores[qc, 1],
            s=40,
            marker="x",
            color="black",
            label=f"pooled QC (n={int(qc.sum())})",
        )
    ax.set_xlabel(f"PC1 ({100 * explained[0]:.1f} % of variance)")
    ax.set_ylabel(f"PC2 ({100 * explained[1]:.1f} % of variance)")
    ax.axhline(0, lw=0.4, color="grey")
    ax.axvline(0, lw=0.4, color="grey")
    ax.set_title(title or "PCA of samples", fontsize=9)
    ax.legend(title=legend_title, fontsize=7, frameon=False, loc="best")
    return _save(plt, fig, output)


def volcano_title(version: VersionInfo) -> tuple[str, tuple[str, str] | None]:
    """The title of a DE result's volcano (its contrast, filters and method) and its arms."""
    params = version.parameters or {}
    contrast = params.get("contrast") or {}
    if not contrast:
        return version.ref, None
    where = contrast.get("where") or {}
    filters = f" ({', '.join(f'{k}={v}' for k, v in where.items())})" if where else ""
    method = {"t-test": "Welch t-test", "wilcoxon": "Wilcoxon rank-sum", "deseq2": "DESeq2"}.get(
        str(params.get("method")), str(params.get("method", ""))
    )
    if params.get("tie_correct"):
        method += ", tie-corrected"
    title = f"{contrast['column']}: {contrast['a']} vs {contrast['b']}{filters}, {method}"
    return f"{title}\n{version.ref}", (str(contrast["a"]), str(contrast["b"]))


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
        ax.set_ylabel("clone prevalence\n(cancer cell fraction, 0-1)", fontsize=7)
        ax.set_xlabel("sample, in time order", fontsize=7)
    for ax in axes.ravel()[len(chosen) :]:
        ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [
        Line2D(
            [],
            [],
            color="firebrick",
            marker="o",
            label="clone with a catalogued resistance mutation",
        ),
        Line2D(
            [], [], color="grey", marker="o", label="other clone (line width: number of mutations)"
        ),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=7, frameon=False)
    fig.suptitle("Clone prevalence per subject", fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return _save(plt, fig, output, layout=False)


def plot_sample_qc(
    obs: pd.DataFrame,
    design: pd.DataFrame,
    output: str | Path,
    *,
    counts: bool = True,
    title: str = "",
) -> Path:
    """Per-sample QC of a source expression dataset: library size and detected genes.

    One bar per sample for bulk data (one observation per sample), one box of its cells
    per sample for single-cell data; samples ordered and coloured by their phase (else
    treatment, else the first other design column), so a failed library or a batch
    stands out. ``obs`` is the store's obs (``sample_id``, ``total_counts``,
    ``n_genes_by_counts``) and ``design`` the study's samples indexed by ``sample_id``.
    For normalised values the first panel shows the sum of the values instead.
    """
    plt = _pyplot()
    frame = obs[["sample_id", "total_counts", "n_genes_by_counts"]].copy()
    frame["sample_id"] = frame["sample_id"].astype(str)
    group_by = next(
        (
            c
            for c in ("phase", "treatment", *design.columns)
            if c in design.columns
            and c not in ("subject_id", "timepoint", "subject_kind")
            and design[c].notna().any()
        ),
        None,
    )
    groups = (
        design[group_by].reindex(frame["sample_id"]).astype(str).to_numpy()
        if group_by
        else np.full(len(frame), "all")
    )
    frame["group"] = groups
    order = (
        frame.drop_duplicates("sample_id").sort_values(["group", "sample_id"])["sample_id"].tolist()
    )
    group_of = frame.drop_duplicates("sample_id").set_index("sample_id")["group"]
    palette = plt.get_cmap("tab10")
    colour = {g: palette(i % 10) for i, g in enumerate(dict.fromkeys(group_of.loc[order]))}
    single_cell = bool(frame.groupby("sample_id").size().max() > 1)
    fig, axes = plt.subplots(
        1, 2, figsize=(max(7.0, 0.28 * len(order) * 2 + 3), 4.4), squeeze=False
    )
    panels = (
        ("total_counts", "library size (counts)" if counts else "sum of values"),
        ("n_genes_by_counts", "detected genes (non-zero values)"),
    )
    for ax, (column, label) in zip(axes.ravel(), panels, strict=True):
        if single_cell:
            data = [frame.loc[frame["sample_id"] == s_, column].to_numpy() for s_ in order]
            parts = ax.boxplot(
                data, positions=range(len(order)), widths=0.6, showfliers=False, patch_artist=True
            )
            for box, s_ in zip(parts["boxes"], order, strict=True):
                box.set_facecolor(colour[group_of[s_]])
                box.set_alpha(0.7)
            ax.set_ylabel(f"{label} per cell")
        else:
            values = frame.set_index("sample_id").loc[order, column].to_numpy(dtype=float)
            ax.bar(range(len(order)), values, color=[colour[group_of[s_]] for s_ in order])
            ax.set_ylabel(f"{label} per sample")
        ax.set_xticks(range(len(order)))
        ax.set_xticklabels(order, rotation=60, ha="right", fontsize=6)
        ax.set_xlabel("sample")
        ax.set_title(label, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c, alpha=0.8) for c in colour.values()]
    fig.legend(
        handles,
        [f"{group_by}: {g}" if group_by else g for g in colour],
        fontsize=7,
        frameon=False,
        loc="upper right",
        ncol=min(len(colour), 6),
    )
    fig.suptitle(title or "per-sample QC", fontsize=10, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save(plt, fig, output, layout=False)


@dataclass(frozen=True)
class DmrTrack:
    """The CpGs of one DMR and its flanks, per sample, ready to draw.

    Attributes
    ----------
    contig, start, end
        The region (1-based, inclusive: its first and last CpG).
    label
        Its caption (e.g. ``#1 chr1:3339625-3340234, 16 CpGs, diff -0.16``).
    positions
        Positions of the CpGs in ``[start - flank, end + flank]`` (sorted).
    methylated, total
        Reads per CpG (rows) and sample (columns).
    sample_ids, arms
        One per column: the sample and the arm it belongs to (its contrast value).
    """

    contig: str
    start: int
    end: int
    label: str
    positions: np.ndarray
    methylated: np.ndarray
    total: np.ndarray
    sample_ids: tuple[str, ...]
    arms: tuple[str, ...]

    def arm_mean(self, arm: str) -> np.ndarray:
        """Coverage-weighted methylation of an arm per CpG (pooled reads; NaN uncovered)."""
        cols = np.asarray(self.arms) == arm
        m = self.methylated[:, cols].sum(axis=1)
        t = self.total[:, cols].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(t > 0, m / np.maximum(t, 1), np.nan)


def plot_dmr_tracks(
    tracks: list[DmrTrack] | tuple[DmrTrack, ...], output: str | Path, *, title: str = ""
) -> Path:
    """DMR tracks: methylation per sample along each region and its flanks, per arm.

    One column per region; one row per arm, each sample of the arm a thin line through
    its covered CpGs (methylated / total reads; a CpG the sample does not cover is left
    out) and the arm's pooled methylation a thick line; a last row with each arm's mean
    read depth per CpG. The region is shaded, as in DSS's ``showOneDMR`` (which draws one
    panel per sample instead).
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if not tracks:
        fig, ax = plt.subplots(figsize=(5, 2))
        ax.text(0.5, 0.5, "no DMR to draw", ha="center", va="center")
        ax.axis("off")
        return _save(plt, fig, output)
    arms = list(dict.fromkeys(a for t in tracks for a in t.arms))
    palette = plt.get_cmap("tab10")
    colour = {a: palette(i % 10) for i, a in enumerate(arms)}
    n = len(tracks)
    fig, axes = plt.subplots(
        len(arms) + 1,
        n,
        figsize=(3.6 * n + 0.6, 1.9 * len(arms) + 1.8),
        squeeze=False,
        sharex="col",
        gridspec_kw={"height_ratios": [2.0] * len(arms) + [1.0]},
    )
    for j, track in enumerate(tracks):
        x = track.positions
        in_arm = {a: [k for k, b in enumerate(track.arms) if b == a] for a in arms}
        for i, arm in enumerate(arms):
            ax = axes[i, j]
            ax.axvspan(track.start, track.end, color="#FF0000", alpha=0.1, lw=0)
            for k in in_arm[arm]:
                covered = track.total[:, k] > 0
                level = track.methylated[covered, k] / track.total[covered, k]
                ax.plot(
                    x[covered], level, color=colour[arm], lw=0.6, alpha=0.45, marker=".", ms=2.5
                )
            if in_arm[arm]:
                ax.plot(x, track.arm_mean(arm), color=colour[arm], lw=2.0)
            ax.set_ylim(-0.03, 1.03)
            ax.tick_params(labelsize=7)
            if j == 0:
                ax.set_ylabel(f"{arm}\nmethylation", fontsize=8)
            if i == 0:
                ax.set_title(track.label, fontsize=8)
        ax = axes[len(arms), j]
        ax.axvspan(track.start, track.end, color="#FF0000", alpha=0.1, lw=0)
        for arm in arms:
            cols = in_arm[arm]
            if cols:
                ax.step(
                    x, track.total[:, cols].mean(axis=1), where="mid", color=colour[arm], lw=1.0
                )
        ax.tick_params(labelsize=7)
        ax.set_xlabel(f"{track.contig} position (bp)", fontsize=8)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # 7-digit positions: few ticks fit
        if j == 0:
            ax.set_ylabel("mean depth\n(reads)", fontsize=8)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colour[a], lw=2, label=f"{a} (pooled)") for a in arms]
    handles.append(Line2D([], [], color="grey", lw=0.6, marker=".", label="one sample"))
    handles.append(plt.Rectangle((0, 0), 1, 1, color="#FF0000", alpha=0.1, label="DMR"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(title or "DMR tracks", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return _save(plt, fig, output, layout=False)


def plot_set_enrichment(
    names: np.ndarray,
    q: np.ndarray,
    n_measured: np.ndarray,
    direction: np.ndarray,
    output: str | Path,
    *,
    title: str = "",
    fdr: float = 0.05,
) -> Path:
    """Horizontal bars of -log10 FDR per set (the first on top), coloured by direction
    (Up / Down / other), the number of measured members at each bar's end, the FDR line."""
    plt = _pyplot()
    k = len(names)
    fig, ax = plt.subplots(figsize=(7.5, max(2.5, 0.32 * k + 1.2)))
    height = -np.log10(np.clip(np.asarray(q, dtype=float), 1e-300, 1.0))
    colors = {"Up": "#c0392b", "Down": "#2e86c1"}
    y = np.arange(k)[::-1]
    ax.barh(y, height, color=[colors.get(str(d), "#7f8c8d") for d in direction])
    for yi, h, n in zip(y, height, n_measured, strict=True):
        ax.text(h, yi, f" {int(n)}", va="center", fontsize=7)
    ax.axvline(-np.log10(fdr), color="black", lw=0.6, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels([str(n)[:60] for n in names], fontsize=7)
    ax.set_xlabel(f"-log10 FDR (dashed: FDR {fdr:g}); measured members at the bar's end")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colors.values()]
    if any(str(d) in colors for d in direction):
        ax.legend(handles, list(colors), fontsize=7, frameon=False, loc="lower right")
    ax.set_title(title or "metabolite-set enrichment", fontsize=9)
    return _save(plt, fig, output)


def plot_nhood_heatmap(
    zscore: pd.DataFrame,
    output: str | Path,
    *,
    title: str = "",
    n_sections: int = 1,
) -> Path:
    """Neighbourhood-enrichment heat map: ``zscore`` is a square frame (rows: cell type,
    columns: neighbour type) of z-scores (the mean over sections), drawn on a diverging
    scale symmetric about 0 (red: neighbours more often than chance, blue: less); each
    cell is annotated with its value."""
    plt = _pyplot()
    values = zscore.to_numpy(dtype=float)
    k = values.shape[0]
    size = max(4.0, 0.6 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    finite = values[np.isfinite(values)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-vmax, vmax=vmax)
    ax.set_xticks(range(k), [str(c) for c in zscore.columns], rotation=45, ha="right")
    ax.set_yticks(range(k), [str(c) for c in zscore.index])
    ax.set_xlabel("neighbour type")
    ax.set_ylabel("cell type")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v = values[i, j]
                ax.text(
                    j,
                    i,
                    "" if not np.isfinite(v) else f"{v:.1f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                )
    what = f"mean z over {n_sections} sections" if n_sections > 1 else "z-score"
    fig.colorbar(im, ax=ax, label=what, shrink=0.8)
    ax.set_title(title or "Neighbourhood enrichment", fontsize=9)
    return _save(plt, fig, output)


def plot_autocorr_genes(
    table: pd.DataFrame, output: str | Path, *, top: int = 20, title: str = ""
) -> Path:
    """The ``top`` genes by mean Moran's I over the sections of ``table`` (columns
    ``section, gene, I, expected, pval_norm_fdr_bh``): a bar of the mean, a dot per
    section, a dashed line at the expectation ``-1/(n-1)``; genes with FDR < 0.05 in
    every section where they are defined are drawn dark, the others light."""
    plt = _pyplot()
    frame = table.dropna(subset=["I"])
    by = frame.assign(sig=frame["pval_norm_fdr_bh"] < 0.05).groupby("gene", sort=False)
    means = by["I"].mean().sort_values(ascending=False, kind="stable").head(top)
    genes = list(means.index)[::-1]  # the highest at the top
    every = by["sig"].all()
    fig, ax = plt.subplots(figsize=(6.0, max(2.5, 0.3 * len(genes) + 1.2)))
    y = np.arange(len(genes))
    colours = ["#1f4e79" if every.get(g, False) else "#9dc3e6" for g in genes]
    ax.barh(y, [means[g] for g in genes], color=colours, height=0.7)
    for i, g in enumerate(genes):
        values = frame.loc[frame["gene"] == g, "I"].to_numpy(dtype=float)
        ax.plot(values, np.full(len(values), i), "o", color="black", ms=3, alpha=0.7)
    if len(frame):
        ax.axvline(float(frame["expected"].mean()), color="grey", ls="--", lw=0.8)
    ax.set_yticks(y, genes)
    ax.set_xlabel("Moran's I (bar: mean over sections; dots: sections)")
    n_sections = int(frame["section"].nunique()) if len(frame) else 0
    ax.set_title(
        (title or "Spatial autocorrelation")
        + f"\n{n_sections} section(s); dark: FDR < 0.05 in every section",
        fontsize=9,
    )
    return _save(plt, fig, output)


def plot_cooccurrence_curves(
    pairs: pd.DataFrame, output: str | Path, *, cell_type: str, title: str = ""
) -> Path:
    """Co-occurrence ratio against distance of ``cell_type`` with each type: ``pairs`` has
    the rows ``section, label_a, label_b == cell_type, distance, ratio``. One colour per
    partner type (``label_a``); with several sections, a thin line per section and, where
    the sections share their distances, a thick line of the mean; a dashed line at 1
    (no association)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    cmap = plt.get_cmap("tab10" if pairs["label_a"].nunique() <= 10 else "tab20")
    sections = list(dict.fromkeys(pairs["section"]))
    for i, partner in enumerate(dict.fromkeys(pairs["label_a"].astype(str))):
        rows = pairs[pairs["label_a"].astype(str) == partner]
        colour = cmap(i % cmap.N)
        grids = {tuple(g["distance"]) for _, g in rows.groupby("section", sort=False)}
        if len(sections) > 1:
            for _, g in rows.groupby("section", sort=False):
                ax.plot(g["distance"], g["ratio"], color=colour, lw=0.6, alpha=0.4)
        if len(grids) == 1:
            mean = rows.groupby("distance", sort=True)["ratio"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=colour, lw=2, label=partner)
        else:
            ax.plot([], [], color=colour, lw=2, label=partner)
    ax.axhline(1.0, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("distance")
    ax.set_ylabel(f"p(type | near {cell_type}) / p(type)")
    ax.legend(fontsize=7, title="type", title_fontsize=7, frameon=False)
    what = f"{len(sections)} sections" if len(sections) > 1 else "1 section"
    ax.set_title((title or f"Co-occurrence with {cell_type}") + f"\n{what}", fontsize=9)
    return _save(plt, fig, output)


def plot_graph_distributions(
    degrees: np.ndarray, lengths: np.ndarray, output: str | Path, *, title: str = ""
) -> Path:
    """Two histograms of a neighbour graph: the cells' (out-)degrees and the edge lengths,
    with their medians marked."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.5))
    if len(degrees):
        top = int(np.max(degrees))
        left.hist(degrees, bins=np.arange(top + 2) - 0.5, color="#4472c4")
        left.axvline(float(np.median(degrees)), color="black", ls="--", lw=0.8)
    left.set_xlabel("neighbours per cell")
    left.set_ylabel("cells")
    if len(lengths):
        right.hist(lengths, bins=50, color="#ed7d31")
        right.axvline(float(np.median(lengths)), color="black", ls="--", lw=0.8)
    right.set_xlabel("edge length")
    right.set_ylabel("edges")
    fig.suptitle(title or "Neighbour graph", fontsize=9)
    return _save(plt, fig, output)


#: Most cells drawn of one section: a larger one is drawn as a random subsample of this
#: many, and its panel title says so (matplotlib takes about a second per million points,
#: and at a few hundred pixels per axis more points only overdraw).
MAX_CELLS_DRAWN = 200_000
#: Colour of a cell without a label or value.
_MISSING = (0.8, 0.8, 0.8, 1.0)


@dataclass(frozen=True)
class SectionCells:
    """One section's cells to draw.

    Attributes
    ----------
    name
        The section (panel title).
    x, y
        Cell centres.
    values
        What each cell is coloured by: integer codes into the plot's ``categories``
        (-1: no label), or numbers (NaN: no value).
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    values: np.ndarray


def category_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinguishable colours: ``tab10`` up to 10, ``tab20`` up to 20, else evenly
    spaced hues."""
    plt = _pyplot()
    if n <= 10:
        cmap, steps = plt.get_cmap("tab10"), [i / 10 for i in range(n)]
    elif n <= 20:
        cmap, steps = plt.get_cmap("tab20"), [i / 20 for i in range(n)]
    else:
        cmap, steps = plt.get_cmap("hsv"), [i / n for i in range(n)]
    return [tuple(float(c) for c in cmap(v)) for v in steps]  # type: ignore[misc]


def plot_section_cells(
    sections: Sequence[SectionCells],
    output: str | Path,
    *,
    categories: Sequence[str] | None = None,
    colour_label: str = "",
    title: str = "",
    units: str = "micron",
    vmin: float | None = None,
    max_cells: int = MAX_CELLS_DRAWN,
    seed: int = 0,
) -> Path:
    """Cells of one or more sections at their coordinates, one panel per section.

    With ``categories`` the values are codes into them and each category has one colour
    (:func:`category_colours`; a legend with one entry per category, plus "no label" when
    a cell has none); without, the values are numbers on one colour scale shared by the
    panels (viridis, a colour bar from ``vmin``, default the smallest value, to the
    largest). Several sections are small multiples, four to a row.
    A section of more than ``max_cells`` cells is drawn as a random subsample of that many
    (``seed``), stated in its panel title. Cells are drawn in a random order so that no
    category hides beneath another; the y axis points down, as in the section's image.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    plt = _pyplot()
    rng = np.random.default_rng(seed)
    n_panels = len(sections)
    ncols = min(4, n_panels)
    nrows = -(-n_panels // ncols)
    single = n_panels == 1
    panel = (6.0, 5.4) if single else (3.4, 3.2)
    side = 2.4 if categories is not None else 1.4
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(panel[0] * ncols + side, panel[1] * nrows + 0.8),
        squeeze=False,
        layout="constrained",
    )
    unit = {"micron": "\u00b5m"}.get(units, units)
    palette = np.array([*category_colours(len(categories)), _MISSING]) if categories else None
    any_missing = False
    cmap = plt.get_cmap("viridis").with_extremes(bad=_MISSING)
    numbers = [np.asarray(s.values, dtype=np.float64) for s in sections] if not categories else []
    finite = np.concatenate([v[np.isfinite(v)] for v in numbers]) if numbers else np.empty(0)
    low = vmin if vmin is not None else float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else low + 1.0
    norm = Normalize(vmin=low, vmax=high if high > low else low + 1.0)
    for k, (ax, s) in enumerate(zip(axes.ravel(), sections, strict=False)):
        n = len(s.x)
        shown = np.arange(n) if n <= max_cells else rng.choice(n, max_cells, replace=False)
        order = rng.permutation(shown)
        x = np.asarray(s.x, dtype=np.float64)[order]
        y = np.asarray(s.y, dtype=np.float64)[order]
        size = float(np.clip(20_000 / max(len(order), 1), 0.2, 30.0)) * (1.0 if single else 0.4)
        raster = len(order) > 50_000
        if palette is not None:
            codes = np.asarray(s.values, dtype=np.int64)[order]
            any_missing = any_missing or bool((codes < 0).any())
            colours = palette[np.where(codes < 0, len(palette) - 1, codes)]
            ax.scatter(x, y, c=colours, s=size, linewidths=0, rasterized=raster)
        else:
            ax.scatter(
                x,
                y,
                c=numbers[k][order],
                cmap=cmap,
                norm=norm,
                s=size,
                linewidths=0,
                plotnonfinite=True,
                rasterized=raster,
            )
        ax.set_aspect("equal", adjustable="datalim")
        ax.invert_yaxis()
        counted = f"{n:,} cells" if n <= max_cells else f"random {max_cells:,} of {n:,} cells"
        ax.set_title(f"{s.name} ({counted})", fontsize=9 if single else 7)
        ax.tick_params(labelsize=6)
        if k + ncols >= n_panels:  # the lowest panel of its column
            ax.set_xlabel(f"x ({unit})", fontsize=7)
        if k % ncols == 0:
            ax.set_ylabel(f"y ({unit})", fontsize=7)
    for ax in axes.ravel()[n_panels:]:
        ax.set_visible(False)
    if palette is not None and categories is not None:
        labels = [*categories, *(["no label"] if any_missing else [])]
        handles = [
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markersize=6,
                markerfacecolor=tuple(palette[i if i < len(categories) else -1]),
                markeredgewidth=0,
                label=str(label),
            )
            for i, label in enumerate(labels)
        ]
        fig.legend(
            handles=handles,
            loc="outside right center",
            title=colour_label or None,
            fontsize=7,
            title_fontsize=8,
            frameon=False,
            ncols=1 if len(handles) <= 24 else 2,
        )
    else:
        visible = list(axes.ravel()[:n_panels])
        fig.colorbar(
            ScalarMappable(norm=norm, cmap=cmap), ax=visible, label=colour_label, shrink=0.8
        )
    fig.suptitle(title or "cells by section", fontsize=9)
    return _save(plt, fig, output, layout=False)


def plot_niche_change(
    per_subject: pd.DataFrame,
    cohort: pd.DataFrame,
    output: str | Path,
    *,
    title: str = "",
    max_programs: int = 4,
) -> Path:
    """Resistance-niche change per subject: for each program (at most ``max_programs``
    panels), a heat map of subjects x neighbour types of ``difference_change`` (the change
    between the contrast's arms of the neighbour fraction around program-high minus
    program-low tumour cells), on a diverging scale symmetric about 0; each column is
    labelled with the cohort's paired-t FDR of that neighbour type."""
    plt = _pyplot()
    programs = list(dict.fromkeys(per_subject["program"].astype(str)))[:max_programs]
    n = max(1, len(programs))
    subjects = sorted(per_subject["subject"].astype(str).unique())
    types = list(dict.fromkeys(per_subject["neighbour_type"].astype(str)))
    width = max(4.5, 0.55 * len(types) + 2.5)
    height = max(3.0, 0.35 * len(subjects) + 2.0)
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False, layout="constrained")
    values = per_subject["difference_change"].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = None
    for ax, program in zip(axes[0], programs, strict=False):
        rows = per_subject[per_subject["program"].astype(str) == program]
        grid = (
            rows.assign(subject=rows["subject"].astype(str))
            .pivot_table(
                index="subject", columns="neighbour_type", values="difference_change", dropna=False
            )
            .reindex(index=subjects, columns=types)
        )
        im = ax.imshow(
            np.ma.masked_invalid(grid.to_numpy(dtype=float)),
            cmap="RdBu_r",
            vmin=-vmax,
            vmax=vmax,
            aspect="auto",
        )
        tests = cohort[
            (cohort["program"].astype(str) == program)
            & (cohort["effect"] == "difference")
            & (cohort["test"] == "paired_t")
        ].set_index("neighbour_type")
        fdr = tests["fdr"].reindex(types).to_numpy(dtype=float)
        labels = [
            f"{t}\nFDR {f:.2g}" if np.isfinite(f) else f"{t}\nFDR -"
            for t, f in zip(types, fdr, strict=True)
        ]
        ax.set_xticks(range(len(types)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(subjects)), subjects, fontsize=7)
        ax.set_xlabel("neighbour type")
        ax.set_ylabel("subject")
        ax.set_title(program, fontsize=9)
    if im is not None:
        fig.colorbar(
            im, ax=list(axes[0]), label="change of neighbour-fraction difference", shrink=0.8
        )
    fig.suptitle(title or "Resistance niches", fontsize=9)
    return _save(plt, fig, output, layout=False)


def plot_sample_set_heatmap(
    matrix: pd.DataFrame,
    output: str | Path,
    *,
    title: str = "",
    label: str = "mean z",
) -> Path:
    """Heat map of samples (rows, in the given order) x sets (columns) on a diverging
    scale symmetric about 0 (red: the set more accessible than its background peaks in
    the sample's cells, blue: less); values annotated when the map is small."""
    plt = _pyplot()
    values = matrix.to_numpy(dtype=float)
    n_rows, n_cols = values.shape
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * n_cols + 3.0), max(3.0, 0.35 * n_rows + 2.0)))
    finite = values[np.isfinite(values)]
    vmax = float(np.abs(finite).max()) if finite.size else 1.0
    vmax = vmax if vmax > 0 else 1.0
    im = ax.imshow(
        np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto"
    )
    ax.set_xticks(range(n_cols), [str(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(n_rows), [str(r) for r in matrix.index], fontsize=7)
    ax.set_xlabel("set")
    ax.set_ylabel("sample")
    if n_rows * n_cols <= 400:
        for i in range(n_rows):
            for j in range(n_cols):
                v = values[i, j]
                if np.isfinite(v):
                    ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label=label, shrink=0.8)
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, output)


def plot_accessibility_qc(
    profile: pd.DataFrame,
    sizes: pd.DataFrame,
    output: str | Path,
    *,
    kind: str = "both",
    title: str = "",
) -> Path:
    """ATAC-seq QC per sample: the TSS enrichment profile (insertions per bp offset from
    the TSSs over the flanks' mean, ArchR's ``plotTSSEnrichment``) and the fragment-size
    distribution (fraction of fragments per length; the nucleosome ladder of Buenrostro
    et al. 2013). ``kind``: ``both`` (two panels), ``tss`` or ``sizes``."""
    plt = _pyplot()
    panels = {"both": ("tss", "sizes"), "tss": ("tss",), "sizes": ("sizes",)}[kind]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 3.6), squeeze=False)
    samples = sorted(set(profile["sample_id"]) | set(sizes["sample_id"]))
    colour = dict(zip(samples, category_colours(max(len(samples), 1)), strict=False))
    for ax, panel in zip(axes[0], panels, strict=True):
        frame = profile if panel == "tss" else sizes
        if not len(frame):
            what = (
                "no TSS profile (no tss_bed setting or no fragments)"
                if panel == "tss"
                else ("no fragment sizes (no fragments stored)")
            )
            ax.text(0.5, 0.5, what, ha="center", va="center", fontsize=8)
            ax.axis("off")
            continue
        for s, part in frame.groupby("sample_id", sort=True):
            if panel == "tss":
                ax.plot(part["offset"], part["enrichment"], color=colour[s], lw=1.0, label=s)
            else:
                total = max(float(part["fragments"].sum()), 1.0)
                ax.plot(part["length"], part["fragments"] / total, color=colour[s], lw=1.0, label=s)
        if panel == "tss":
            ax.axvline(0, color="grey", lw=0.5, ls=":")
            ax.set_xlabel("distance from TSS (bp)")
            ax.set_ylabel("TSS enrichment (insertions / flank mean)")
            ax.set_title("TSS enrichment profile", fontsize=9)
        else:
            ax.set_xlabel("fragment length (bp)")
            ax.set_ylabel("fraction of fragments")
            ax.set_title("Fragment-size distribution", fontsize=9)
        if len(samples) <= 12:
            ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(plt, fig, output)
