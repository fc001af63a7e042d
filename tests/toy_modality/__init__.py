"""Toy modalities defined entirely outside the library: what a third-party plugin is.

``toy`` reads ``.toy`` files (a ``#toy v1`` header, then ``sample_id<TAB>feature<TAB>value``
rows), stores them in the shared ``partitioned-table@1`` layout (table ``values`` by
sample), declares its dataset types in its own ``schemas/`` folder and has one default
analysis (the mean value per sample). ``toymatrix`` reads ``.toym`` files (a ``#toym``
header naming the samples, then one feature per row) into the shared dense
``feature-matrix@1`` layout, as methylation and metabolomics will. Both are installed
through a real entry point (``resistomics.modalities``) by :func:`install`, never by
editing library code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from resistomics.catalog import VersionInfo
from resistomics.errors import InputError, MethodInputError
from resistomics.modalities import Analysis, Artifact, Modality, Reader, Summaries, Written
from resistomics.publishing import (
    ResultOutcome,
    Staging,
    Workspace,
    publish_result,
    published_result,
)
from resistomics.storage import (
    FeatureBlock,
    append_partitioned,
    open_feature_matrix,
    partition_directories,
    read_partition,
    write_feature_matrix,
)

__all__ = [
    "ToyMatrixModality",
    "ToyModality",
    "install",
    "write_bad",
    "write_good",
    "write_matrix",
]

HEADER = "#toy v1"
TABLE = "values"
BY = "sample_id"


class ToyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = Field(default=1.0, gt=0, description="multiply every value by this")


def _can_open(path: str) -> bool:
    return path.lower().endswith(".toy") and Path(path).is_file()


def read_toy(path: str | Path, ctx: dict[str, Any]) -> Iterator[pd.DataFrame]:
    """Rows of a ``.toy`` file as one frame per 2 rows; raises InputError with the line."""
    path = str(path)
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\n")
        if first != HEADER:
            raise InputError(path, "toy-header", f"the first line must be {HEADER!r}", line=1)
        rows: list[dict[str, Any]] = []
        for n, line in enumerate(f, start=2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3:
                raise InputError(
                    path, "toy-fields", f"expected 3 fields, found {len(fields)}", line=n
                )
            try:
                value = float(fields[2])
            except ValueError:
                raise InputError(
                    path, "toy-number", f"{fields[2]!r} is not a number", line=n, column="value"
                ) from None
            if fields[0] not in ctx["registered"]:
                raise InputError(
                    path, "toy-sample", f"sample {fields[0]!r} is not registered", line=n
                )
            rows.append(
                {"sample_id": fields[0], "feature": fields[1], "value": value * ctx["scale"]}
            )
            if len(rows) == 2:
                yield pd.DataFrame(rows)
                rows = []
        if rows:
            yield pd.DataFrame(rows)


def summarise(
    ws: Workspace, ref: str, *, study: str | None = None, run_id: str | None = None
) -> ResultOutcome:
    """Mean value per sample of a published toy dataset, published as ``toy.summary``."""
    version = ws.catalog.resolve(ref, study=study)
    if version.dataset_type != "toy.values":
        raise MethodInputError(f"{version.ref} is not toy data")
    digest, existing = published_result(ws, version, "toy.summary", {})
    if existing is not None:
        return existing
    frame = _stored(ws, version)
    summary = frame.groupby("sample_id", as_index=False)["value"].mean()
    return publish_result(
        ws,
        modality="toy",
        parents=[version],
        study=version.study,
        dataset=f"{version.dataset}.summary",
        dtype="toy.summary",
        parameters={},
        digest=digest,
        tables={"summary": summary},
        run_id=run_id,
    )


def _stored(ws: Workspace, version: VersionInfo) -> pd.DataFrame:
    import json

    base = ws.root.to_path(version.uri)
    opts = json.dumps(ws.root.storage_options)
    parts = [
        read_partition(ws.root.url, opts, d, by=BY)
        for d in partition_directories(ws.root, base, TABLE, by=BY)
    ]
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["sample_id", "feature", "value"])
    )


def _artifacts(ws: Workspace, result: VersionInfo) -> list[Artifact]:
    from resistomics.storage import read_table

    table = read_table(ws.root, f"{ws.root.to_path(result.uri)}/summary.parquet")
    return [Artifact("table", ("toy", result.study, result.dataset), "toy means", table=table)]


class ToySummaryPlotOptions(BaseModel):
    """The toy summary plot's own option: a plugin declares it, the generic ``plot``
    command validates and lists it without naming the plugin."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top: int = Field(default=10, ge=1, description="draw the samples with the largest means")


def _plot_summary(ws: Workspace, result: VersionInfo, output: Path, *, top: int) -> Path:
    """A bar per sample for the ``top`` largest means; the PNG's ``Description`` lists the
    samples drawn (so a test can read what the figure shows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from resistomics.storage import read_table

    table = read_table(ws.root, f"{ws.root.to_path(result.uri)}/summary.parquet")
    shown = table.sort_values("value", ascending=False, kind="stable").head(top)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.barh(shown["sample_id"], shown["value"])
    ax.set_xlabel("mean value")
    fig.savefig(output, metadata={"Description": ",".join(shown["sample_id"])})
    plt.close(fig)
    return Path(output)


class ToyModality(Modality):
    name = "toy"
    description = "toy values per sample and feature (a test plugin)"
    readers = (Reader("toy", (".toy",), "toy text format", _can_open, read_toy),)
    options = ToyOptions
    schemas = Path(__file__).parent / "schemas"
    analyses = (
        Analysis(
            "summary",
            "toy.summary",
            summarise,
            "mean value per sample",
            artifacts=_artifacts,
            plot=_plot_summary,
            plot_options=ToySummaryPlotOptions,
        ),
    )

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        ws = staging.ws
        registered = set(ws.catalog.samples(staging.study).index.astype(str))
        batches = reader.read(staging.local, {"registered": registered, "scale": options.scale})
        first = next(batches, None)  # a bad header fails before anything is staged
        staging.stage(
            dataset_type="toy.values",
            layout="partitioned-table@1",
            parameters={"scale": options.scale},
        )
        version_dir = staging.new_version_dir()
        n = 0
        for batch in ([first] if first is not None else []) + list(batches):
            append_partitioned(ws.root, version_dir, TABLE, batch, by=BY)
            n += len(batch)
            staging.advance(1)
        return Written(shape=(n, 3), detail=f"{n} values")

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        frame = _stored(ws, version)
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        return Summaries(
            {"values": frame[["sample_id", "value"]]}, {"registered_samples": registered}
        )


MATRIX_HEADER = "#toym"


def _matrix_can_open(path: str) -> bool:
    return path.lower().endswith(".toym") and Path(path).is_file()


def read_toy_matrix(
    path: str | Path, ctx: dict[str, Any]
) -> tuple[list[str], Iterator[FeatureBlock]]:
    """The samples of a ``.toym`` file and its feature rows, 3 at a time ("NA": missing)."""
    path = str(path)
    f = open(path, encoding="utf-8")  # noqa: SIM115 - closed by the generator
    header = f.readline().rstrip("\n").split("\t")
    if header[0] != MATRIX_HEADER or len(header) < 2:
        f.close()
        raise InputError(
            path, "toym-header", f"the first line must be {MATRIX_HEADER!r} + samples", line=1
        )
    samples = header[1:]

    def blocks() -> Iterator[FeatureBlock]:
        with f:
            rows: list[list[str]] = []
            for n, line in enumerate(f, start=2):
                fields = line.rstrip("\n").split("\t")
                if len(fields) != len(header):
                    raise InputError(
                        path,
                        "toym-fields",
                        f"expected {len(header)} fields, found {len(fields)}",
                        line=n,
                    )
                for name, v in zip(samples, fields[1:], strict=True):
                    if v != "NA":
                        try:
                            float(v)
                        except ValueError:
                            raise InputError(
                                path, "toym-number", f"{v!r} is not a number", line=n, column=name
                            ) from None
                rows.append(fields)
                if len(rows) == 3:
                    yield _matrix_block(rows)
                    rows = []
            if rows:
                yield _matrix_block(rows)

    return samples, blocks()


def _matrix_block(rows: list[list[str]]) -> FeatureBlock:
    import numpy as np

    values = np.array([[np.nan if v == "NA" else float(v) for v in r[1:]] for r in rows])
    return FeatureBlock(pd.DataFrame({"feature": [r[0] for r in rows]}), {"value": values})


class ToyMatrixModality(Modality):
    name = "toymatrix"
    description = "toy dense features x samples matrix (a test plugin)"
    readers = (
        Reader("toym", (".toym",), "toy dense matrix format", _matrix_can_open, read_toy_matrix),
    )
    schemas = Path(__file__).parent / "schemas"

    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        ws = staging.ws
        samples, blocks = reader.read(staging.local, {})
        registered = set(ws.catalog.samples(staging.study).index.astype(str))
        unknown = [s for s in samples if s not in registered]
        if unknown:
            raise InputError(
                staging.landed,
                "registered-samples",
                f"sample {unknown[0]!r} is not registered",
                line=1,
            )
        first = next(blocks, None)  # a bad first row fails before anything is staged
        staging.stage(dataset_type="toymatrix.values", layout="feature-matrix@1", parameters={})

        def counted() -> Iterator[FeatureBlock]:
            for block in [first] if first is not None else []:
                yield block
            for block in blocks:
                staging.advance(1)
                yield block

        summary = write_feature_matrix(
            ws.root,
            staging.new_version_dir(),
            counted(),
            samples=pd.DataFrame({"sample_id": samples}),
            arrays={"value": "float64"},
            feature_id="feature",
            primary="value",
            features_per_chunk=4,
            samples_per_chunk=4,
        )
        shape = (summary.n_features, summary.n_samples)
        return Written(shape=shape, detail=f"{shape[0]} features x {shape[1]} samples")

    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        import dask

        store = open_feature_matrix(ws.root, ws.root.to_path(version.uri))
        values = store.array("value")
        (mins,) = dask.compute(values.map_blocks(_block_min, chunks=(1, 1), dtype=float))
        registered = sorted(ws.catalog.samples(version.study).index.astype(str))
        return Summaries(
            {"blocks": pd.DataFrame({"min": mins.ravel()}), "samples": store.samples},
            {"registered_samples": registered},
        )


def _block_min(block: Any) -> Any:
    import numpy as np

    finite = block[~np.isnan(block)]
    return np.array([[finite.min() if finite.size else 0.0]])


def write_matrix(path: Path, samples: list[str], *, negative: bool = False) -> Path:
    """A good ``.toym`` file (10 features, one missing value), or one with a negative value."""
    lines = [MATRIX_HEADER + "\t" + "\t".join(samples)]
    for i in range(10):
        values = [str(i + j) for j in range(len(samples))]
        if i == 4:
            values[1] = "NA"
        if negative and i == 7:
            values[0] = "-2"
        lines.append(f"F{i}\t" + "\t".join(values))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_good(path: Path, samples: list[str]) -> Path:
    lines = [HEADER] + [f"{s}\tf{i}\t{i + 1}" for s in samples for i in range(3)]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_bad(path: Path, samples: list[str]) -> Path:
    """A toy file whose third row is not a number (rule toy-number, line 4)."""
    path.write_text(f"{HEADER}\n{samples[0]}\tf0\t1\n{samples[0]}\tf1\t2\n{samples[0]}\tf2\tlots\n")
    return path


def write_invalid(path: Path, samples: list[str]) -> Path:
    """Readable, but a negative value breaks the toy.values expectations."""
    path.write_text(f"{HEADER}\n{samples[0]}\tf0\t-3\n")
    return path


def install(site: Path) -> Path:
    """Install the toy as a distribution with an entry point in folder ``site`` (put it on
    sys.path / PYTHONPATH next to the folder holding this package)."""
    dist = site / "resistomics_toy-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: resistomics-toy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[resistomics.modalities]\ntoy = toy_modality:ToyModality\n"
        "toymatrix = toy_modality:ToyMatrixModality\n"
    )
    return site
