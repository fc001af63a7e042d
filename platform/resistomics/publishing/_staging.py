"""Staging: what a modality's writer calls to record and fill a new version.

The pipeline creates one :class:`Staging` per landed file; the modality's writer reads
the file, calls :meth:`Staging.stage` once it knows the dataset type (before it writes
the first byte under :attr:`Staging.version_dir`), and writes there in its layout. The
version stays *staged* (invisible to readers) until the pipeline publishes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from resistomics import __version__
from resistomics.catalog import VersionInfo
from resistomics.dataset_types import dataset_type
from resistomics.errors import CatalogError, InputError
from resistomics.publishing._workspace import Workspace
from resistomics.storage import Layout, layout

__all__ = ["Staging", "layout_of"]


def layout_of(version: VersionInfo) -> Layout:
    """The layout a version is stored in, as the catalog records it."""
    return layout(version.layout, version.layout_version)


@dataclass
class Staging:
    """One landed file on its way to a staged version.

    Attributes
    ----------
    landed
        The file as landed (what messages name).
    local
        A local copy to read (the landed file itself when it is local).
    scratch
        A private scratch folder, removed when the ingest ends.
    """

    ws: Workspace
    landed: str
    local: Path
    study: str
    dataset: str
    modality: str
    digest: str
    scratch: Path
    run_id: str | None = None
    progress: Callable[[int], None] | None = None
    version_dir: str | None = None
    version: VersionInfo | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    #: The ingest options that, with the bytes, identify this landing (recorded in the
    #: version's ``parameters["landing"]``).
    identity: dict[str, Any] = field(default_factory=dict)

    def new_version_dir(self) -> str:
        """Allocate the version's (new, never reused) directory under the data root."""
        if self.version_dir is None:
            self.version_dir = self.ws.root.new_version_path(self.study, self.dataset)
        return self.version_dir

    def stage(self, *, dataset_type: str, layout: str, parameters: dict[str, Any]) -> VersionInfo:
        """Record the version as staged, of ``dataset_type`` in ``layout`` (``name@N``).

        A dataset keeps one type: landing, say, normalised values into a counts dataset
        is an input error (quarantined), not a catalog failure.
        """
        return _stage(
            self, dataset_type_name=dataset_type, layout_spec=layout, parameters=parameters
        )

    def advance(self, n: int = 1) -> None:
        """Report progress (blocks, batches) to whoever watches the ingest."""
        if self.progress is not None:
            self.progress(n)

    def set_shape(self, shape: Sequence[int]) -> VersionInfo:
        """Record the shape of the (still staged) version; return it as now recorded."""
        assert self.version is not None, "stage() first"
        self.ws.catalog.set_shape(self.version.id, list(shape))
        self.version = self.ws.catalog.get_version(self.version.id)
        return self.version


def _stage(
    staging: Staging, *, dataset_type_name: str, layout_spec: str, parameters: dict[str, Any]
) -> VersionInfo:
    if staging.version is not None:
        raise RuntimeError(f"{staging.landed}: staged twice")
    dtype = dataset_type(dataset_type_name)
    spec = layout(layout_spec)
    ws = staging.ws
    try:
        staged = ws.catalog.stage_version(
            study=staging.study,
            dataset=staging.dataset,
            modality=staging.modality,
            dataset_type=dtype.name,
            kind="source",
            uri=ws.root.relative_uri(staging.new_version_dir()),
            format=spec.format,
            layout=spec.name,
            layout_version=spec.version,
            digest=staging.digest,
            schema_version=dtype.version,
            shape=[],
            code_version=__version__,
            source_uri=staging.landed,
            run_id=staging.run_id,
            parameters={**parameters, "landing": staging.identity},
        )
    except CatalogError as exc:
        raise InputError(
            staging.landed, "dataset-type", f"{exc}; ingest it as another dataset (--dataset NAME)"
        ) from None
    staging.version = staged
    staging.parameters = parameters
    return staged
