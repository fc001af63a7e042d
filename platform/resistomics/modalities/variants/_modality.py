"""The variants modality: VCF and MAF calls into ``partitioned-table@1`` (by subject)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from resistomics.modalities._plugin import (
    Analysis,
    Modality,
    Reader,
    Summaries,
    Written,
    deferred,
)
from resistomics.modalities.variants._layout import CALLS, LAYOUT, PARTITION

if TYPE_CHECKING:
    import pandas as pd
    import typer

    from resistomics.catalog import VersionInfo
    from resistomics.publishing import Staging, Workspace

__all__ = ["VariantsModality"]

#: Calls read back per batch when a stored version is re-validated.
REVALIDATION_BATCH_ROWS = 100_000

# The readers (pandas, pyarrow, cyvcf2) load when a file is read, not at start-up.
_READERS = "resistomics.modalities.variants._readers"


def _clonal(ws: Workspace, ref: str, **kwargs: Any) -> Any:
    from resistomics.modalities.variants._analyses import clonal_evolution

    return clonal_evolution(ws, ref, **kwargs)


def _recurrent(ws: Workspace, refs: Any, *args: Any, **kwargs: Any) -> Any:
    from resistomics.modalities.variants._analyses import recurrent_mutations

    return recurrent_mutations(ws, refs, *args, **kwargs)


def _clonal_artifacts(ws: Workspace, result: VersionInfo) -> Any:
    from resistomics.modalities.variants._artifacts import clonal_artifacts

    return clonal_artifacts(ws, result)


def _plot_clones(ws: Workspace, result: VersionInfo, output: Any, **_: Any) -> Any:
    from resistomics.plots import plot_clone_prevalence
    from resistomics.storage import read_table

    return plot_clone_prevalence(
        read_table(ws.root, f"{ws.root.to_path(result.uri)}/clones.parquet"), output
    )


class VariantsModality(Modality):
    """Somatic variant calls (one row per sample and call) as ``variants.calls``."""

    name = "variants"
    description = "somatic variant calls: VCF (one or more tumour samples) and MAF"
    readers = (
        Reader(
            "vcf",
            (".vcf", ".vcf.gz", ".vcf.bgz"),
            "VCF 4.x with per-sample AD/DP (Mutect2, Strelka, VarScan, ...)",
            deferred(_READERS, "_detect_vcf"),
            deferred(_READERS, "read_vcf"),
        ),
        Reader(
            "maf",
            (".maf", ".maf.gz", ".maf.txt", ".maf.txt.gz"),
            "Mutation Annotation Format (GDC / cBioPortal / maftools)",
            deferred(_READERS, "_detect_maf"),
            deferred(_READERS, "read_maf"),
        ),
    )
    analyses = (
        Analysis(
            "clonal",
            "signatures.clonal",
            _clonal,
            "per-subject VAF changes, clones and emergent catalogued resistance mutations",
            default=True,
            artifacts=_clonal_artifacts,
            plot=_plot_clones,
        ),
        Analysis(
            "recurrent",
            "signatures.recurrent",
            _recurrent,
            "genes recurrently mutated in one arm of a contrast versus the other",
            default=False,
        ),
    )

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        from resistomics.modalities.variants._source import CANONICAL_COLUMNS, VariantReadContext
        from resistomics.modalities.variants._summaries import (
            DEFAULT_VAF_TOLERANCE,
            summarize_variant_batches,
            variant_params,
        )

        ws = staging.ws
        samples = ws.catalog.samples(staging.study)
        registered = [str(s) for s in samples.index] if len(samples) else []
        subjects = (
            dict(zip(registered, samples["subject_id"].astype(str), strict=True))
            if registered
            else {}
        )
        ctx = VariantReadContext(registered_samples=frozenset(registered), subjects=subjects)
        source = reader.read(staging.local, ctx)
        staging.stage(
            dataset_type="variants.calls",
            layout=LAYOUT,
            parameters={"format": reader.name, **source.details},
        )
        version_dir = staging.new_version_dir()
        n_rows = 0

        def written() -> Iterator[pd.DataFrame]:
            nonlocal n_rows
            from resistomics.storage import append_partitioned

            for batch in source.batches:
                append_partitioned(ws.root, version_dir, CALLS, batch, by=PARTITION)
                n_rows += len(batch)
                staging.advance(1)
                yield batch

        # Summaries in the same streaming pass as the write: the calls are read once.
        tables = summarize_variant_batches(written(), vaf_tolerance=DEFAULT_VAF_TOLERANCE)
        return Written(
            shape=(n_rows, len(CANONICAL_COLUMNS)),
            detail=f"{n_rows} calls",
            report={"rows": n_rows},
            summaries=Summaries(tables, variant_params(registered_samples=registered)),
        )

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        import pyarrow.dataset as pads

        from resistomics.modalities.variants._source import CANONICAL_COLUMNS
        from resistomics.modalities.variants._summaries import (
            DEFAULT_VAF_TOLERANCE,
            summarize_variant_batches,
            variant_params,
        )

        base = f"{ws.root.to_path(version.uri)}/{CALLS}"
        columns = list(CANONICAL_COLUMNS)

        def batches() -> Iterator[pd.DataFrame]:
            if not ws.root.fs.exists(base):
                return
            ds = pads.dataset(base, format="parquet", filesystem=ws.root.fs, partitioning="hive")
            for batch in ds.to_batches(batch_size=REVALIDATION_BATCH_ROWS):
                frame = batch.to_pandas()
                yield frame.reindex(columns=columns).astype(CANONICAL_COLUMNS)

        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        tables = summarize_variant_batches(batches(), vaf_tolerance=DEFAULT_VAF_TOLERANCE)
        return Summaries(tables, variant_params(registered_samples=registered))

    def commands(self) -> typer.Typer:
        from resistomics.modalities.variants._commands import variants_app

        return variants_app
