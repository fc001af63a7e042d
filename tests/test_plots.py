"""Plots render from real results (checked by size and by image content)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from resistomics.plots import plot_de_volcano, plot_sample_scores


def test_sample_scores_and_volcano(tmp_path: Path) -> None:
    from matplotlib.image import imread

    rng = np.random.default_rng(0)
    rows = [
        {
            "sample_id": f"P{s}_{ph}",
            "subject_id": f"P{s}",
            "phase": ph,
            "method": "score_genes",
            "gene_set": gs,
            "mean_score": rng.normal(1.0 if (ph == "progression" and gs == "X") else 0.0, 0.1),
        }
        for s in range(4)
        for ph in ("baseline", "progression")
        for gs in ("X", "Y", "Z")
    ]
    out = plot_sample_scores(pd.DataFrame(rows), tmp_path / "s.png")
    image = imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05  # not a blank canvas
    de = pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(200)],
            "gene_symbol": [f"G{i}" for i in range(200)],
            "log2_fold_change": rng.normal(0, 1, 200),
            "pval_adj": rng.uniform(0, 1, 200),
        }
    )
    de.loc[:5, "pval_adj"] = 1e-8
    v = plot_de_volcano(de, tmp_path / "v.png", title="t")
    assert imread(v).shape[0] > 300
