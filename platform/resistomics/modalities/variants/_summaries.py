"""Summaries of streamed call batches that the ``variants.calls`` suites check.

Tables are validated partition by partition: each batch of calls becomes one row of the
``partitions`` table (counts of rows breaking each value rule, with a few examples), so
the summaries stay small however many calls stream through. Dataset-wide checks are
computed across partitions: the distinct contigs and samples (small tables, checked
against ``$contigs`` and ``$registered_samples``) and duplicate calls, found by keeping
a sorted array of 64-bit hashes of every ``(sample_id, chrom, pos, ref, alt)`` key
(8 bytes a call, so tens of millions of calls fit; a hash collision, about 3e-6 for 10
million keys, could only report a false duplicate, never hide one).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from resistomics.dataset_types import dataset_type
from resistomics.modalities._genome import DEFAULT_CONTIGS
from resistomics.modalities.variants._source import empty_calls

__all__ = [
    "DEFAULT_CONTIGS",
    "DEFAULT_VAF_TOLERANCE",
    "summarize_variant_batches",
    "variant_params",
    "variant_suites",
]

DATASET_TYPE = "variants.calls"
#: How far a reported VAF may sit from ``alt / (ref + alt)`` (callers round AF, and
#: some compute it from filtered reads).
DEFAULT_VAF_TOLERANCE = 0.05
_KEY = ["sample_id", "chrom", "pos", "ref", "alt"]
_EXAMPLES = 5
# A/C/G/T/N (any case); '-' is MAF's empty indel side; an alt may be symbolic
# (<DEL>, <DUP:TANDEM>, <*>, <NON_REF>) or '*' (allele missing due to a deletion).
_REF_RE = r"^(?:[ACGTNacgtn]+|-)$"
_ALT_RE = r"^(?:[ACGTNacgtn]+|-|\*|<[A-Za-z0-9:_.*]+>)$"


def _where(frame: pd.DataFrame, mask: pd.Series, what: pd.Series) -> list[str]:
    rows = frame[mask.to_numpy()].head(_EXAMPLES)
    text = what[mask.to_numpy()].head(_EXAMPLES)
    return [
        f"{r.sample_id} {r.chrom}:{r.pos} {r.ref}>{r.alt} {t}"
        for r, t in zip(rows.itertuples(index=False), text, strict=True)
    ]


def _partition_row(k: int, calls: pd.DataFrame, vaf_tolerance: float) -> dict[str, Any]:
    vaf = calls["vaf"].astype("float64")
    ref = calls["ref_count"].astype("Float64")
    alt = calls["alt_count"].astype("Float64")
    depth = calls["depth"].astype("Float64")
    total = ref + alt
    from_counts = (alt / total.where(total > 0)).astype("float64")
    from_depth = (alt / depth.where(depth > 0)).astype("float64")
    # Callers divide by ref + alt or by all reads at the site (a multi-allelic site split
    # per allele, reads of other alleles): either agreement is accepted. NaN when the
    # counts or the VAF are missing.
    discrepancy = pd.concat([(vaf - from_counts).abs(), (vaf - from_depth).abs()], axis=1).min(
        axis=1, skipna=True
    )
    out_of_range = ((vaf < 0) | (vaf > 1)).fillna(False)
    discrepant = (discrepancy > vaf_tolerance).fillna(False)
    below = (depth < total).fillna(False)
    negative = ((ref < 0) | (alt < 0) | (depth < 0)).fillna(False)
    bad_pos = (calls["pos"] <= 0).fillna(False).astype(bool)
    ref_ok = calls["ref"].fillna("").str.match(_REF_RE)
    alt_ok = calls["alt"].fillna("").str.match(_ALT_RE)
    # A symbolic structural allele (e.g. an FLT3-ITD as <DUP:TANDEM>) may lack a position.
    symbolic = calls["alt"].fillna("").str.startswith("<")
    missing_key = calls[[k for k in _KEY if k != "pos"]].isna().any(axis=1) | (
        calls["pos"].isna() & ~symbolic
    )
    bad_allele = ~(ref_ok & alt_ok) & calls["ref"].notna() & calls["alt"].notna()

    def n(mask: pd.Series) -> int:
        return int(mask.sum())

    return {
        "partition": k,
        "n_calls": len(calls),
        "vaf_min": float(vaf.min()) if vaf.notna().any() else np.nan,
        "vaf_max": float(vaf.max()) if vaf.notna().any() else np.nan,
        "n_vaf_out_of_range": n(out_of_range),
        "vaf_range_examples": _where(calls, out_of_range, "vaf=" + vaf.round(4).astype(str)),
        "vaf_discrepancy": float(discrepancy.max()) if discrepancy.notna().any() else 0.0,
        "n_vaf_discrepant": n(discrepant),
        "vaf_discrepancy_examples": _where(
            calls,
            discrepant,
            "vaf="
            + vaf.round(4).astype(str)
            + " but alt/(ref+alt)="
            + from_counts.round(4).astype(str),
        ),
        "n_depth_below_counts": n(below),
        "depth_examples": _where(
            calls,
            below,
            "AD="
            + calls["ref_count"].astype(str)
            + ","
            + calls["alt_count"].astype(str)
            + " > DP="
            + calls["depth"].astype(str),
        ),
        "n_negative_counts": n(negative),
        "negative_examples": _where(
            calls,
            negative,
            "counts="
            + calls["ref_count"].astype(str)
            + ","
            + calls["alt_count"].astype(str)
            + " depth="
            + calls["depth"].astype(str),
        ),
        "n_bad_position": n(bad_pos),
        "position_examples": _where(calls, bad_pos, "pos=" + calls["pos"].astype(str)),
        "n_bad_allele": n(bad_allele),
        "allele_examples": _where(calls, bad_allele, pd.Series("", index=calls.index)),
        "n_missing_key": n(missing_key),
        "missing_key_examples": _where(calls, missing_key, pd.Series("", index=calls.index)),
    }


def _key_hashes(calls: pd.DataFrame) -> np.ndarray:
    keys = calls[_KEY].astype("string").fillna("")
    return np.asarray(pd.util.hash_pandas_object(keys, index=False), dtype=np.uint64)


def summarize_variant_batches(
    batches: Iterable[pd.DataFrame], *, vaf_tolerance: float = DEFAULT_VAF_TOLERANCE
) -> dict[str, pd.DataFrame]:
    """The summary tables the ``variants.calls`` suites check, in one pass over the batches.

    Parameters
    ----------
    batches
        Call tables in the canonical columns (what a variant reader streams).
    vaf_tolerance
        Largest accepted ``|vaf - alt_count / (ref_count + alt_count)|``.

    Returns
    -------
    dict
        ``partitions`` (one row per batch: counts of calls breaking each value rule,
        the largest ``vaf_discrepancy``, and examples), ``contigs`` (one row per
        distinct ``chrom``), ``samples`` (one row per ``sample_id`` with its
        ``subject_id``) and ``dataset`` (one row: calls and duplicate keys, with
        examples).
    """
    partitions: list[dict[str, Any]] = []
    contigs: dict[str, int] = {}
    samples: dict[str, tuple[str | None, int]] = {}
    seen = np.zeros(0, dtype=np.uint64)
    n_duplicates = 0
    duplicate_examples: list[str] = []
    n_calls = 0
    for k, calls in enumerate(batches):
        if calls.empty:
            continue
        n_calls += len(calls)
        partitions.append(_partition_row(k, calls, vaf_tolerance))
        for chrom, count in calls["chrom"].fillna("<missing>").value_counts().items():
            contigs[str(chrom)] = contigs.get(str(chrom), 0) + int(count)
        per_sample = calls.groupby("sample_id", dropna=False, sort=False)
        for sample, group in per_sample:
            sid = str(sample)
            subject = group["subject_id"].iloc[0]
            prev_subject, prev_n = samples.get(sid, (None if pd.isna(subject) else str(subject), 0))
            samples[sid] = (prev_subject, prev_n + len(group))
        hashes = _key_hashes(calls)
        order = np.argsort(hashes, kind="stable")
        sorted_hashes = hashes[order]
        again_in_batch = np.zeros(len(hashes), dtype=bool)
        again_in_batch[order[1:]] = sorted_hashes[1:] == sorted_hashes[:-1]
        in_seen = np.zeros(len(hashes), dtype=bool)
        if len(seen):
            at = np.minimum(np.searchsorted(seen, hashes), len(seen) - 1)
            in_seen = seen[at] == hashes
        dup = again_in_batch | in_seen
        if dup.any():
            n_duplicates += int(dup.sum())
            if len(duplicate_examples) < _EXAMPLES:
                d = calls[dup].head(_EXAMPLES - len(duplicate_examples))
                duplicate_examples.extend(
                    f"{r.sample_id} {r.chrom}:{r.pos} {r.ref}>{r.alt}"
                    for r in d.itertuples(index=False)
                )
        # Both runs are sorted, so the stable sort (timsort on 64-bit keys) is one O(n)
        # merge; np.union1d would re-sort everything seen for every batch.
        seen = np.sort(np.concatenate([seen, sorted_hashes]), kind="stable")
    partition_columns = list(_partition_row(0, empty_calls(), vaf_tolerance))
    return {
        "partitions": pd.DataFrame(partitions, columns=partition_columns),
        "contigs": pd.DataFrame(
            {"chrom": list(contigs), "n_calls": list(contigs.values())},
        ).astype({"chrom": object, "n_calls": "int64"}),
        "samples": pd.DataFrame(
            {
                "sample_id": list(samples),
                "subject_id": [s for s, _ in samples.values()],
                "n_calls": [c for _, c in samples.values()],
            }
        ).astype({"sample_id": object, "subject_id": object, "n_calls": "int64"}),
        "dataset": pd.DataFrame(
            {
                "n_calls": [n_calls],
                "n_duplicate_calls": [n_duplicates],
                "duplicate_examples": [duplicate_examples],
            }
        ),
    }


def variant_params(
    *,
    registered_samples: Iterable[str],
    contigs: Iterable[str] = DEFAULT_CONTIGS,
) -> dict[str, Any]:
    """The ``$name`` values the ``variants.calls`` suites need."""
    return {
        "registered_samples": sorted(registered_samples),
        "contigs": sorted(contigs),
    }


def variant_suites() -> Mapping[str, list[dict[str, Any]]]:
    """The ``variants.calls`` expectation suites, keyed by summary table."""
    return dataset_type(DATASET_TYPE).expectations
