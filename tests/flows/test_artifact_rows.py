"""Table artifacts keep significant figures, not decimal places."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flows._runtime import significant, table_rows


def test_small_p_values_keep_their_significant_figures() -> None:
    frame = pd.DataFrame(
        {
            "gene": ["GREB1", "PGR", "X"],
            "pval_adj": [4.9e-17, 0.01534, np.nan],
            "log2_fold_change": [1.634567, -12345.678, np.inf],
            "n": [1, 2, 3],
        }
    )
    rows = table_rows(frame)
    assert rows[0]["pval_adj"] == 4.9e-17
    assert rows[1]["pval_adj"] == 0.01534
    assert rows[0]["log2_fold_change"] == 1.635
    assert rows[1]["log2_fold_change"] == -12350.0
    assert rows[2]["pval_adj"] is None and rows[2]["log2_fold_change"] is None
    assert rows[0]["n"] == 1
    assert significant(math.pi, digits=2) == 3.1
