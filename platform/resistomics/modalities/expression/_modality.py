"""The expression modality: bulk tables, 10x directories and h5ad into ``sparse-matrix@1``."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from resistomics.config import Settings
from resistomics.errors import InputError
from resistomics.modalities._plugin import (
    Analysis,
    Modality,
    Reader,
    Summaries,
    Written,
    deferred,
)

if TYPE_CHECKING:
    import typer

    from resistomics.catalog import VersionInfo
    from resistomics.modalities.expression._source import MatrixSource
    from resistomics.publishing import Staging, Workspace

# The readers (numpy, pandas, scipy, anndata, h5py) load when a file is read, not when
# the registry or the CLI starts.
_READERS = "resistomics.modalities.expression._readers"

__all__ = [
    "LAYOUT",
    "VALIDATION_BLOCK_NNZ",
    "ExpressionModality",
    "ExpressionOptions",
    "ExpressionSettings",
    "SignaturePlotOptions",
]

LAYOUT = "sparse-matrix@1"

# Values per task of the validation summaries. A summary task holds its block a few
# times over (values, row index, masks), so 1 Mi values (one Zarr chunk, ~8 MiB as CSR)
# keep a task under ~50 MiB: workers with a few hundred MiB validate any dataset without
# pausing. The extra tasks cost nothing next to the decompression.
VALIDATION_BLOCK_NNZ = 1 << 20


class ExpressionOptions(BaseModel):
    """Ingest options of expression files (``resistomics ingest --values ... --sample ...``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    values: Literal["counts", "normalized", "auto"] | None = Field(
        default=None, description="counts, normalized or auto (default per format)"
    )
    sample: str | None = Field(
        default=None, description="sample of every cell (10x directory of one sample)"
    )
    scale: Literal["log1p", "log2", "log", "linear", "zscore"] | None = Field(
        default=None,
        description="scale of normalized values (log1p, log2, log, linear, zscore), recorded "
        "so fold changes follow it (default: guessed from the value range when needed)",
    )


class ExpressionSettings(BaseModel):
    """Expression's settings section: QC bounds its expectations check at ingest.

    ``RESISTOMICS_MODALITIES__EXPRESSION__MIN_LIBRARY_SIZE`` etc.; the former
    ``RESISTOMICS_VALIDATION__<KEY>`` names still work for one release (with a warning).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_library_size: float = Field(default=0.0, ge=0)
    max_library_size: float | None = None
    min_detected_genes: int = Field(default=0, ge=0)
    max_detected_genes: int | None = None


def _signature_artifacts(ws: Workspace, result: VersionInfo) -> Any:
    from resistomics.modalities.expression._artifacts import signature_artifacts

    return signature_artifacts(ws, result)


class SignaturePlotOptions(BaseModel):
    """Options of the signatures plot (``resistomics plot RESULT -o F --gene-set NAME``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gene_set: str | None = Field(
        default=None, description="the one program to plot (default: every program)"
    )


def _plot_scores(
    ws: Workspace, result: VersionInfo, output: Any, *, gene_set: str | None = None
) -> Any:
    from resistomics.errors import UnknownNameError
    from resistomics.plots import plot_sample_scores
    from resistomics.storage import read_table

    base = ws.root.to_path(result.uri)
    scores = read_table(ws.root, f"{base}/sample_scores.parquet")
    programs = sorted(set(scores["gene_set"].astype(str)))
    if gene_set is not None and gene_set not in programs:
        unknown = UnknownNameError("program", gene_set, programs)
        hint = f"; did you mean {unknown.suggestion!r}?" if unknown.suggestion else ""
        shown = ", ".join(programs[:20]) + (" ..." if len(programs) > 20 else "")
        raise InputError(
            f"--gene-set {gene_set!r}",
            "option",
            f"{result.ref} scored no such program{hint} (programs: {shown})",
        )
    return plot_sample_scores(scores, output, gene_set=gene_set)


def _plot_de(ws: Workspace, result: VersionInfo, output: Any) -> Any:
    from resistomics.plots import plot_de_volcano, volcano_title
    from resistomics.storage import read_table

    title, arms = volcano_title(result)
    de = read_table(ws.root, f"{ws.root.to_path(result.uri)}/de.parquet")
    return plot_de_volcano(de, output, title=title, arms=arms)


def _score(ws: Workspace, ref: str, **kwargs: Any) -> Any:
    from resistomics.modalities.expression._analyses import score_signatures

    return score_signatures(ws, ref, **kwargs)


def _de(ws: Workspace, ref: str, *args: Any, **kwargs: Any) -> Any:
    from resistomics.modalities.expression._analyses import differential_expression

    return differential_expression(ws, ref, *args, **kwargs)


class ExpressionModality(Modality):
    """Expression counts or normalised values, cells or samples x genes."""

    name = "expression"
    description = "RNA expression: bulk count tables, 10x Matrix Market directories, h5ad"
    readers = (
        Reader(
            "bulk-table",
            (".tsv", ".tsv.gz", ".csv", ".csv.gz", ".txt", ".txt.gz", ".tab", ".counts"),
            "genes x samples count table (featureCounts, RSEM, plain TSV/CSV)",
            deferred(_READERS, "_detect_table"),
            deferred(_READERS, "read_bulk_table"),
        ),
        Reader(
            "10x-mtx",
            (),
            "10x Cell Ranger directory (matrix.mtx[.gz], features/genes, barcodes)",
            deferred(_READERS, "_detect_mtx"),
            deferred(_READERS, "read_mtx_dir"),
        ),
        Reader(
            "h5ad",
            (".h5ad",),
            "AnnData .h5ad (layers['counts'], raw.X or X)",
            deferred(_READERS, "_detect_h5ad"),
            deferred(_READERS, "read_h5ad"),
        ),
    )
    options = ExpressionOptions
    settings = ExpressionSettings
    analyses = (
        Analysis(
            "signatures",
            "signatures.scores",
            _score,
            "gene-program scores per cell/sample and the resistant-fraction shift",
            default=True,
            artifacts=_signature_artifacts,
            plot=_plot_scores,
            plot_options=SignaturePlotOptions,
        ),
        Analysis(
            "de",
            "signatures.de",
            _de,
            "differential expression between the arms of a contrast",
            default=False,
            plot=_plot_de,
        ),
    )

    plot_description = "per-sample QC (library size or sum of values, detected genes)"

    def plot(self, ws: Workspace, version: VersionInfo, output: Any, **options: Any) -> Any:
        """Per-sample QC of an expression dataset (library size, detected genes)."""
        from resistomics.plots import plot_sample_qc
        from resistomics.storage import open_sparse_matrix

        store = open_sparse_matrix(ws.root, ws.root.to_path(version.uri))
        return plot_sample_qc(
            store.obs,
            ws.catalog.samples(version.study),
            output,
            counts=store.value_kind == "counts",
            title=f"per-sample QC of {version.ref} ({version.dataset_type}, "
            f"{len(store.obs)} x {len(store.var)})",
        )

    def settings_of(self, settings: Settings) -> ExpressionSettings:
        """Expression's section, with the deprecated ``RESISTOMICS_VALIDATION__<KEY>`` under it.

        A key set in both places takes the ``RESISTOMICS_MODALITIES__EXPRESSION__`` value.
        """
        section = dict(settings.modalities.get(self.name, {}))
        legacy = {
            k: v
            for k, v in settings.validation.items()
            if k in ExpressionSettings.model_fields and k not in section
        }
        if legacy:
            old = ", ".join(f"RESISTOMICS_VALIDATION__{k.upper()}" for k in sorted(legacy))
            new = ", ".join(
                f"RESISTOMICS_MODALITIES__{self.name.upper()}__{k.upper()}" for k in sorted(legacy)
            )
            warnings.warn(
                f"deprecated setting {old} (removed in the next release): set {new} instead",
                FutureWarning,
                stacklevel=2,
            )
        return ExpressionSettings.model_validate({**legacy, **section})

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        from resistomics.modalities.expression._source import ReadContext
        from resistomics.storage import SparseMatrixWriter

        ws = staging.ws
        samples = ws.catalog.samples(staging.study)
        ctx = ReadContext(
            registered_samples=frozenset(samples.index.astype(str))
            if len(samples)
            else frozenset(),
            sample=options.sample,
            values=options.values,
            rows_per_block=ws.settings.rows_per_chunk,
            genes_per_block=ws.settings.genes_per_block,
            scratch=staging.scratch,
        )
        source: MatrixSource = reader.read(staging.local, ctx)
        writer = SparseMatrixWriter(
            ws.root,
            staging.new_version_dir(),
            orientation=source.orientation,
            obs=source.fixed if source.orientation == "genes" else None,
            var=source.fixed if source.orientation == "cells" else None,
            value_kind="counts",  # provisional; fixed below once the stream is read
            rows_per_block=ws.settings.rows_per_chunk,
            genes_per_block=ws.settings.genes_per_block,
            scratch=staging.scratch,
            lognorm_target_sum=ws.settings.normalize_target_sum,
            design=samples,
            metadata={
                "source": staging.landed,
                "format": reader.name,
                "digest": staging.digest,
                **source.details,
            },
        )
        for block, labels in source.blocks:
            writer.add(block, labels)
            del block  # not alive while the reader makes the next one: one block at a time
            staging.advance(1)
        writer.value_kind = source.value_kind
        declared = source.value_scale if source.value_kind == "normalized" else None
        if options.scale is None and declared is not None:
            # the file says how it was normalised (an h5ad's uns["log1p"]): DE's
            # --scale auto finds it recorded instead of guessing from the value range
            writer.metadata["value_scale"] = declared
        if options.scale is not None:
            if source.value_kind == "counts":
                raise InputError(
                    f"--scale {options.scale!r}",
                    "option",
                    "the file holds counts, which are log1p-normalised before testing; "
                    "--scale describes normalized values (--values normalized)",
                )
            writer.metadata["value_scale"] = options.scale
        staging.stage(
            dataset_type=f"expression.{source.value_kind}",
            layout=LAYOUT,
            parameters={
                "format": reader.name,
                "values": source.values_mode,
                **({"scale": options.scale} if options.scale else {}),
                **(
                    {"scale": declared, "scale_source": "file"}
                    if options.scale is None and declared is not None
                    else {}
                ),
                **source.details,
            },
        )
        summary = writer.close()
        return Written(
            shape=(summary.n_obs, summary.n_vars),
            detail=f"{summary.n_obs} x {summary.n_vars}",
            report={"nnz": summary.nnz, "dtype": summary.dtype},
        )

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        from resistomics.storage import open_sparse_matrix
        from resistomics.validation import summarize_matrix

        store = open_sparse_matrix(ws.root, ws.root.to_path(version.uri))
        summaries = summarize_matrix(
            store.cells(target_nnz=VALIDATION_BLOCK_NNZ), store.obs, store.var
        )
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        v = self.settings_of(ws.settings)
        return Summaries(
            tables={"chunks": summaries.chunks, "cells": summaries.cells, "genes": summaries.genes},
            params={
                "registered_samples": registered,
                "min_library_size": v.min_library_size,
                "max_library_size": v.max_library_size,
                "min_detected_genes": v.min_detected_genes,
                "max_detected_genes": v.max_detected_genes,
            },
        )

    def commands(self) -> typer.Typer:
        from resistomics.modalities.expression._commands import signatures_app

        return signatures_app
