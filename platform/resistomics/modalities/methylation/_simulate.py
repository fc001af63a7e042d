"""A generated methylation cohort with planted differentially methylated regions (DMRs).

``n_subjects`` patients, each sampled at baseline and at progression. CpG sites lie on a
few contigs at random gaps; each site has a baseline methylation level (bimodal, as in
real methylomes: most CpGs near 0 or near 1); inside each planted DMR the progression
samples' level moves by ``delta``. Reads per sample and site are Poisson around a
sample-specific mean depth, a site is missing from a sample's file with probability
``dropout`` (so the per-sample site sets differ and the merge has work to do), and the
methylated reads are beta-binomial around the level with dispersion ``phi``, the model
DSS and bsseq fit (Feng, Conneely & Wu, *Nucleic Acids Res.* 42:e69, 2014).

:func:`write_methylation_files` writes the same counts in any of the five reader
formats, so each format can be held to the others (a stranded format gets each CpG's
reads split between its ``+`` cytosine at ``p`` and its ``-`` cytosine at ``p + 1``,
which ``merge_strands`` adds back).
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SimulatedMethylation", "simulate_methylation_cohort", "write_methylation_files"]


@dataclass(frozen=True)
class SimulatedMethylation:
    """The generated cohort and its truth.

    ``samples``: sample sheet (sample_id, subject_id, phase, timepoint). ``calls``:
    sample -> table of its covered sites (contig, position, methylated, total), sorted.
    ``dmrs``: planted regions (contig, start, end, n_cpgs, delta), 1-based inclusive.
    ``levels``: the baseline level of every site (contig, position, level).
    """

    samples: pd.DataFrame
    calls: dict[str, pd.DataFrame]
    dmrs: pd.DataFrame
    levels: pd.DataFrame


def simulate_methylation_cohort(
    *,
    n_subjects: int = 4,
    n_sites: int = 5000,
    contigs: Sequence[str] = ("chr1", "chr2", "chrX"),
    n_dmrs: int = 5,
    dmr_cpgs: int = 20,
    delta: float = 0.4,
    mean_depth: float = 20.0,
    dropout: float = 0.1,
    phi: float = 0.05,
    seed: int = 0,
    planted_regions: Sequence[Mapping[str, Any]] = (),
) -> SimulatedMethylation:
    """Generate the cohort (see the module docstring); deterministic for a ``seed``.

    ``planted_regions`` adds CpGs at fixed places, e.g. a catalogue marker's promoter
    at its real coordinates: each ``{contig, start, end, n_cpgs, baseline,
    progression}`` puts ``n_cpgs`` evenly spaced sites in ``[start, end]`` (1-based)
    whose level is ``baseline`` in baseline samples and ``progression`` in progression
    samples. They are listed in ``dmrs`` (``delta`` = progression - baseline). Without
    them the cohort is the same as before for a seed.
    """
    rng = np.random.default_rng(seed)
    per = np.diff(np.linspace(0, n_sites, len(contigs) + 1).astype(int))
    site_contig = np.repeat(np.asarray(contigs, dtype=object), per)
    position = np.concatenate(
        [np.cumsum(rng.integers(2, 200, size=k)) + 10_000 for k in per]
    ).astype(np.int64)
    level = np.where(
        rng.random(n_sites) < 0.6, rng.beta(8, 1.5, n_sites), rng.beta(1.5, 8, n_sites)
    )
    shift = np.zeros(n_sites)
    dmrs: list[dict[str, object]] = []
    starts = rng.choice(np.arange(0, n_sites - dmr_cpgs), size=n_dmrs * 4, replace=False)
    taken = np.zeros(n_sites, dtype=bool)
    for s in sorted(int(x) for x in starts):
        e = s + dmr_cpgs
        if len(dmrs) == n_dmrs or taken[max(0, s - dmr_cpgs) : e + dmr_cpgs].any():
            continue
        if site_contig[s] != site_contig[e - 1]:
            continue
        sign = 1.0 if len(dmrs) % 2 == 0 else -1.0
        # planted: levels pushed towards the far side, by delta
        level[s:e] = 0.2 if sign > 0 else 0.8
        shift[s:e] = sign * delta
        taken[s:e] = True
        dmrs.append(
            {
                "contig": site_contig[s],
                "start": int(position[s]),
                "end": int(position[e - 1]),
                "n_cpgs": dmr_cpgs,
                "delta": sign * delta,
            }
        )
    if planted_regions:
        extra_contig, extra_pos, extra_level, extra_shift = [], [], [], []
        for region in planted_regions:
            k = int(region["n_cpgs"])
            pos = np.unique(
                np.linspace(int(region["start"]), int(region["end"]), k).astype(np.int64)
            )
            extra_contig.append(np.full(len(pos), str(region["contig"]), dtype=object))
            extra_pos.append(pos)
            extra_level.append(np.full(len(pos), float(region["baseline"])))
            extra_shift.append(
                np.full(len(pos), float(region["progression"]) - float(region["baseline"]))
            )
            dmrs.append(
                {
                    "contig": str(region["contig"]),
                    "start": int(pos[0]),
                    "end": int(pos[-1]),
                    "n_cpgs": len(pos),
                    "delta": float(region["progression"]) - float(region["baseline"]),
                }
            )
        site_contig = np.concatenate([site_contig, *extra_contig])
        position = np.concatenate([position, *extra_pos])
        level = np.concatenate([level, *extra_level])
        shift = np.concatenate([shift, *extra_shift])
        order_of = {c: i for i, c in enumerate(dict.fromkeys(site_contig.tolist()))}
        frame = pd.DataFrame({"c": [order_of[c] for c in site_contig], "p": position})
        frame = frame.drop_duplicates(["c", "p"], keep="last").sort_values(["c", "p"])
        keep_rows = frame.index.to_numpy()
        site_contig, position = site_contig[keep_rows], position[keep_rows]
        level, shift = level[keep_rows], shift[keep_rows]
        n_sites = len(position)
    rows = []
    calls: dict[str, pd.DataFrame] = {}
    for i in range(n_subjects):
        for phase, t in (("baseline", 0), ("progression", 180)):
            sid = f"P{i + 1}-{'base' if phase == 'baseline' else 'prog'}"
            rows.append(
                {"sample_id": sid, "subject_id": f"P{i + 1}", "phase": phase, "timepoint": t}
            )
            mu = np.clip(level + (shift if phase == "progression" else 0.0), 0.01, 0.99)
            depth = rng.poisson(mean_depth * rng.uniform(0.6, 1.4), n_sites)
            a, b = mu * (1 / phi - 1), (1 - mu) * (1 / phi - 1)
            p = rng.beta(a, b)
            meth = rng.binomial(depth, p)
            keep = (depth > 0) & (rng.random(n_sites) >= dropout)
            calls[sid] = pd.DataFrame(
                {
                    "contig": site_contig[keep],
                    "position": position[keep],
                    "methylated": meth[keep].astype(np.int64),
                    "total": depth[keep].astype(np.int64),
                }
            )
    return SimulatedMethylation(
        samples=pd.DataFrame(rows),
        calls=calls,
        dmrs=pd.DataFrame(dmrs, columns=["contig", "start", "end", "n_cpgs", "delta"]),
        levels=pd.DataFrame({"contig": site_contig, "position": position, "level": level}),
    )


_SUFFIX = {
    "bismark-cov": ".bismark.cov",
    "bismark-report": ".CpG_report.txt",
    "modkit": ".bedMethyl",
    "methyldackel": "_CpG.bedGraph",
    "dss": ".txt",
}


def _strand_split(c: pd.DataFrame) -> pd.DataFrame:
    t_plus = (c["total"] + 1) // 2
    m_plus = np.minimum(c["methylated"], t_plus)
    plus = pd.DataFrame(
        {
            "contig": c["contig"],
            "position": c["position"],
            "strand": "+",
            "methylated": m_plus,
            "total": t_plus,
        }
    )
    minus = pd.DataFrame(
        {
            "contig": c["contig"],
            "position": c["position"] + 1,
            "strand": "-",
            "methylated": c["methylated"] - m_plus,
            "total": c["total"] - t_plus,
        }
    )
    both = pd.concat([plus, minus])
    # genome order: contigs as they come, then position
    both["order"] = pd.Categorical(both["contig"], categories=list(dict.fromkeys(c["contig"])))
    return both.sort_values(["order", "position"], kind="stable").drop(columns="order")


def _lines(c: pd.DataFrame, fmt: str) -> list[str]:
    out: list[str] = []
    if fmt == "dss":
        out.append("chr\tpos\tN\tX")
        out += [f"{r.contig}\t{r.position}\t{r.total}\t{r.methylated}" for r in c.itertuples()]
    elif fmt == "bismark-cov":
        out += [
            f"{r.contig}\t{r.position}\t{r.position}\t{100 * r.methylated / r.total:.6g}\t"
            f"{r.methylated}\t{r.total - r.methylated}"
            for r in c.itertuples()
        ]
    elif fmt == "methyldackel":
        out.append('track type="bedGraph" description="CpG methylation levels"')
        out += [
            f"{r.contig}\t{r.position - 1}\t{r.position}\t{round(100 * r.methylated / r.total)}\t"
            f"{r.methylated}\t{r.total - r.methylated}"
            for r in c.itertuples()
        ]
    elif fmt == "bismark-report":
        out += [
            f"{r.contig}\t{r.position}\t{r.strand}\t{r.methylated}\t{r.total - r.methylated}\tCG\tCGA"
            for r in _strand_split(c).itertuples()
        ]
    elif fmt == "modkit":
        for r in _strand_split(c).itertuples():
            if r.total == 0:
                continue
            pct = 100 * r.methylated / r.total
            # modkit writes the first ten fields tab-separated and the rest with spaces
            out.append(
                f"{r.contig}\t{r.position - 1}\t{r.position}\tm\t{r.total}\t{r.strand}\t"
                f"{r.position - 1}\t{r.position}\t255,0,0\t{r.total} {pct:.2f} {r.methylated} "
                f"{r.total - r.methylated} 0 0 0 0 0"
            )
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return out


def write_methylation_files(
    sim: SimulatedMethylation, folder: Path, fmt: str, *, gzip_files: bool = False
) -> list[Path]:
    """Write one file per sample in ``fmt`` (a reader's format name) into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for sid, c in sim.calls.items():
        text = ("\n".join(_lines(c, fmt)) + "\n").encode()
        path = folder / f"{sid}{_SUFFIX[fmt]}{'.gz' if gzip_files else ''}"
        path.write_bytes(gzip.compress(text, mtime=0) if gzip_files else text)
        paths.append(path)
    return paths
