"""The reads behind DMRs: each region and its flanks from a ``methylation.counts`` store.

:func:`dmr_tracks` reads, for the top DMRs of a table, the methylated and total reads of
every CpG within ``flank`` bp of the region, per sample, as
:class:`~resistomics.plots.DmrTrack` for :func:`~resistomics.plots.plot_dmr_tracks`.
It reads the store's contig and position columns once (~9 bytes per site with the
contig dictionary-encoded) and then only the chunk rows that hold each window.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from resistomics.errors import MethodInputError
from resistomics.plots import DmrTrack
from resistomics.storage import FeatureMatrix

__all__ = ["dmr_tracks"]


def _label(rank: int, row: pd.Series) -> str:
    text = (
        f"#{rank} {row['contig']}:{int(row['start'])}-{int(row['end'])}, {int(row['n_cpg'])} CpGs"
    )
    if "diff_methylation" in row.index and pd.notna(row["diff_methylation"]):
        text += f", diff {row['diff_methylation']:+.2f}"
    return text + f", areaStat {row['area_stat']:.1f}"


def dmr_tracks(
    store: FeatureMatrix,
    dmrs: pd.DataFrame,
    sample_arms: Mapping[str, str],
    *,
    flank: int = 500,
    top: int = 4,
) -> list[DmrTrack]:
    """Tracks of the first ``top`` rows of a DMR table (:func:`~._dmr.call_dmrs` order).

    Parameters
    ----------
    store
        The ``methylation.counts`` store the DML test ran on.
    dmrs
        DMRs (``contig``, ``start``, ``end``, ``n_cpg``, ``area_stat``, optionally
        ``diff_methylation``).
    sample_arms
        Sample ID -> arm label, for the samples to draw (others are left out); columns
        are ordered by arm, then as in the store.
    flank
        Base pairs drawn either side of each region.
    top
        How many regions.

    Raises
    ------
    MethodInputError
        No sample of ``sample_arms`` is in the store, or a DMR's contig is not.
    """
    import pyarrow.compute as pc

    ids = store.samples["sample_id"].astype(str).tolist()
    arms = list(dict.fromkeys(sample_arms.values()))
    columns = sorted(
        (j for j, s in enumerate(ids) if s in sample_arms),
        key=lambda j: (arms.index(sample_arms[ids[j]]), j),
    )
    if not columns:
        raise MethodInputError("none of the samples to draw is in the store", rule="samples")
    chosen = dmrs.head(top)
    if chosen.empty:
        return []
    index = store.feature_columns(["contig", "position"])
    contig = pc.dictionary_encode(index.column("contig")).combine_chunks()
    names = [str(v) for v in contig.dictionary.to_pylist()]
    codes = contig.indices.to_numpy(zero_copy_only=False)
    positions = index.column("position").to_numpy()
    tracks = []
    for rank, (_, row) in enumerate(chosen.iterrows(), start=1):
        name = str(row["contig"])
        if name not in names:
            raise MethodInputError(f"DMR contig {name} is not in the store", rule="contig")
        rows = np.flatnonzero(codes == names.index(name))
        lo_pos, hi_pos = int(row["start"]) - flank, int(row["end"]) + flank
        first = rows[0] + int(np.searchsorted(positions[rows], lo_pos, side="left"))
        stop = rows[0] + int(np.searchsorted(positions[rows], hi_pos, side="right"))
        values = store.read_rows(["methylated", "total"], int(first), int(stop))
        tracks.append(
            DmrTrack(
                contig=name,
                start=int(row["start"]),
                end=int(row["end"]),
                label=_label(rank, row),
                positions=np.asarray(positions[first:stop], dtype=np.int64),
                methylated=values["methylated"][:, columns].astype(np.int64),
                total=values["total"][:, columns].astype(np.int64),
                sample_ids=tuple(ids[j] for j in columns),
                arms=tuple(sample_arms[ids[j]] for j in columns),
            )
        )
    return tracks
