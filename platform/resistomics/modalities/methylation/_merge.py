"""The streaming k-way merge of per-sample site streams into feature blocks of the cohort.

Every sample's file streams sorted :class:`~._readers.SiteChunk`s (one contig each, keys
``position * 4 + strand`` strictly increasing). The merge takes the contigs one at a time
and, within a contig, repeatedly cuts every sample's chunk in hand at the *frontier*, the
smallest last key among them: no sample can later produce a key at or below it, so the
union of the keys up to the frontier is final. That union becomes the next sites; each
sample's counts are scattered into its column (zero where the sample has no reads), and
the sites go out in blocks of at most ``sites_per_block`` rows. At least one sample's
chunk is used up at every cut, so the merge holds one chunk per sample plus one output
block: memory is set by the chunk sizes, never by the cohort (this is a k-way
``heapq.merge`` done a chunk at a time with ``numpy.unique`` / ``searchsorted`` instead
of one Python comparison per site).

Contigs: each file's contigs form runs in the file's own order (genome order is not
lexical). The next contig merged is the smallest of the contigs the samples are at, by
the order of the chrom-sizes file when one is given, else chr1..chr22, X, Y, M, then
the rest by name. This only decides between samples that lack a contig others have; a
sample still at a contig the merge has finished (its files order contigs differently)
is refused (``contig-order``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from resistomics.errors import InputError
from resistomics.modalities.methylation._readers import (
    STRANDS,
    MethylationFile,
    SiteChunk,
)
from resistomics.storage import FeatureBlock

__all__ = ["contig_rank", "merge_sites"]

_NUMBERED = re.compile(r"^(?:chr)?(\d+)$", re.IGNORECASE)
_SEX = {"x": 0, "y": 1, "m": 2, "mt": 2}


def contig_rank(order: Sequence[str] | None = None) -> Callable[[str], tuple[Any, ...]]:
    """A sort key of contig names: ``order``'s (a chrom-sizes file) first, then natural."""
    given = {c: i for i, c in enumerate(order or ())}

    def rank(name: str) -> tuple[Any, ...]:
        if name in given:
            return (0, given[name], "")
        numbered = _NUMBERED.match(name)
        if numbered:
            return (1, int(numbered.group(1)), "")
        bare = name[3:] if name.lower().startswith("chr") else name
        if bare.lower() in _SEX:
            return (2, _SEX[bare.lower()], "")
        return (3, 0, name)

    return rank


def _block(
    contig: str,
    keys: np.ndarray,
    parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]],
    n_samples: int,
) -> FeatureBlock:
    methylated = np.zeros((len(keys), n_samples), dtype=np.int32)
    total = np.zeros((len(keys), n_samples), dtype=np.int32)
    for j, k, m, t in parts:
        at = np.searchsorted(keys, k)
        methylated[at, j] = m
        total[at, j] = t
    features = pd.DataFrame(
        {
            "contig": pd.Series(np.full(len(keys), contig, dtype=object), dtype=object),
            "position": keys >> 2,
            "strand": STRANDS[keys & 3],
        }
    )
    return FeatureBlock(features, {"methylated": methylated, "total": total})


def merge_sites(
    files: Sequence[MethylationFile],
    *,
    sites_per_block: int = 1 << 16,
    contig_order: Sequence[str] | None = None,
    on_chunk: Callable[[], None] | None = None,
) -> Iterator[FeatureBlock]:
    """The union of the files' sites, in contig runs and key order, as feature blocks.

    Column ``j`` of each block's ``methylated`` and ``total`` (int32) is ``files[j]``;
    a sample without reads at a site has 0 and 0. The feature index has ``contig``,
    ``position`` (int64, 1-based) and ``strand`` (``+``, ``-`` or ``*``).

    Raises
    ------
    InputError
        What a file's stream raises, and ``contig-order`` (see the module docstring).
    """
    rank = contig_rank(contig_order)
    n = len(files)
    streams = [f.open_chunks() for f in files]

    def pull(j: int) -> SiteChunk | None:
        chunk = next(streams[j], None)
        if on_chunk is not None and chunk is not None:
            on_chunk()
        return chunk

    heads: list[SiteChunk | None] = [pull(j) for j in range(n)]
    finished: dict[str, int] = {}  # contig -> the sample that ended it last
    step = max(1, int(sites_per_block))
    while True:
        for j, h in enumerate(heads):
            if h is not None and h.contig in finished:
                raise InputError(
                    files[j].path,
                    "contig-order",
                    f"contig {h.contig} comes after contigs that other samples' files put "
                    f"after it (e.g. {files[finished[h.contig]].path.rsplit('/', 1)[-1]}); "
                    "sort every file with the same contig order, or give the contig order "
                    "as a chrom-sizes file (modalities.methylation.chrom_sizes)",
                    line=h.line,
                )
        live = [h.contig for h in heads if h is not None]
        if not live:
            return
        contig = min(live, key=rank)
        active = [j for j, h in enumerate(heads) if h is not None and h.contig == contig]
        hand: dict[int, SiteChunk] = {}
        for j in active:
            chunk = heads[j]
            assert chunk is not None
            hand[j] = chunk
            heads[j] = None
        while hand:
            frontier = min(int(c.keys[-1]) for c in hand.values())
            taken: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
            for j, c in list(hand.items()):
                cut = int(np.searchsorted(c.keys, frontier, side="right"))
                if cut:
                    taken.append((j, c.keys[:cut], c.methylated[:cut], c.total[:cut]))
                if cut < len(c.keys):
                    hand[j] = SiteChunk(
                        c.contig, c.keys[cut:], c.methylated[cut:], c.total[cut:], c.line
                    )
                    continue
                nxt = pull(j)
                while nxt is not None and nxt.contig == contig and not len(nxt.keys):
                    nxt = pull(j)
                if nxt is not None and nxt.contig == contig:
                    hand[j] = nxt
                else:
                    del hand[j]
                    heads[j] = nxt
                    finished[contig] = j
            keys = np.unique(np.concatenate([k for _, k, _, _ in taken]))
            for start in range(0, len(keys), step):
                part = keys[start : start + step]
                lo, hi = part[0], part[-1]
                pieces = []
                for j, k, m, t in taken:
                    a = int(np.searchsorted(k, lo, side="left"))
                    b = int(np.searchsorted(k, hi, side="right"))
                    if b > a:
                        pieces.append((j, k[a:b], m[a:b], t[a:b]))
                yield _block(contig, part, pieces, n)
        finished.setdefault(contig, active[0])
