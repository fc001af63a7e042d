"""Inflated-to-compressed ratios of real-looking count tables against the bomb tests'.

Why ``RESISTOMICS_LIMITS__INFLATION_FLOOR_BYTES`` is 32 MiB (README "Limits against
hostile input"): prints, for generated negative-binomial counts with a share of zeros
(and of genes silent in every column), the gzip -6 and -9 ratio of the TSV and of its
MatrixMarket form. ``python benchmarks/gzip_ratios.py`` (about a minute).
"""

from __future__ import annotations

import gzip
import io

import numpy as np
import scipy.io
import scipy.sparse as sp

# (genes, columns, share of silent genes, share of zeros elsewhere)
TABLES = [
    (20000, 24, 0.0, 0.95),
    (20000, 24, 0.0, 0.99),
    (6000, 600, 0.9, 0.95),
    (5000, 500, 0.0, 0.99),
    (3000, 2000, 0.0, 0.99),
    (2000, 3000, 0.0, 0.999),
    (4000, 6000, 0.6, 0.995),
    (3000, 6000, 0.9, 0.999),
]


def table(n_genes: int, n_cols: int, silent: float, zeros: float) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(1)
    counts = rng.negative_binomial(1, 0.5, size=(n_genes, n_cols)) + 1
    counts[rng.random((n_genes, n_cols)) < zeros] = 0
    counts[rng.random(n_genes) < silent] = 0
    lines = ["gene_id\t" + "\t".join(f"AAACCTGAGA{c:06d}-1" for c in range(n_cols))]
    lines += [f"ENSG{g:011d}\t" + "\t".join(map(str, row)) for g, row in enumerate(counts)]
    return ("\n".join(lines) + "\n").encode(), counts


def main() -> None:
    print("genes x columns, silent genes, zeros: inflated MiB, gzip -6 / -9 ratio; MTX -9")
    for n_genes, n_cols, silent, zeros in TABLES:
        raw, counts = table(n_genes, n_cols, silent, zeros)
        r6, r9 = (len(raw) / len(gzip.compress(raw, level)) for level in (6, 9))
        mtx = io.BytesIO()
        scipy.io.mmwrite(mtx, sp.coo_matrix(counts))
        rm = len(mtx.getvalue()) / len(gzip.compress(mtx.getvalue(), 9))
        share = 1 - np.count_nonzero(counts) / counts.size
        print(
            f"{n_genes} x {n_cols}, {silent:.0%}, {share:.2%}: {len(raw) / 2**20:.1f} MiB, "
            f"{r6:.0f}x / {r9:.0f}x; MTX {rm:.0f}x"
        )


if __name__ == "__main__":
    main()
