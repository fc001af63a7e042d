"""Catalog: registration, versions, publish/supersede, lineage, digests."""

from __future__ import annotations

from pathlib import Path

import pytest

from resistomics.catalog import Catalog, DatasetKind, Phase, SampleRow, VersionStatus
from resistomics.errors import CatalogError, DatasetNotFoundError, DesignChangeError


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    c = Catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
    c.register_study("s", [SampleRow("A", "P1", annotations={"arm": "x"}), SampleRow("B", "P1")])
    return c


def _stage(c: Catalog, digest: str, parents: tuple[int, ...] = ()):  # type: ignore[no-untyped-def]
    return c.stage_version(
        study="s",
        dataset="d",
        modality="expression",
        dataset_type="expression.counts",
        uri=f"/x/{digest}",
        format="zarr",
        layout="sparse-matrix",
        layout_version=1,
        digest=digest,
        schema_version="1",
        shape=[2, 3],
        code_version="t",
        parents=parents,
    )


def test_register_is_idempotent_and_updates(catalog: Catalog) -> None:
    again = catalog.register_study("s", [SampleRow("A", "P1", annotations={"arm": "x"})])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 1)
    changed = catalog.register_study("s", [SampleRow("A", "P1", annotations={"arm": "y"})])
    assert changed.updated == 1
    assert catalog.samples("s").loc["A", "arm"] == "y"


def test_staged_versions_are_invisible_until_published(catalog: Catalog) -> None:
    v1 = _stage(catalog, "sha256:1")
    with pytest.raises(DatasetNotFoundError):
        catalog.resolve("s/d")
    catalog.publish_version(v1.id, {"success": True})
    assert catalog.resolve("s/d").number == 1
    v2 = _stage(catalog, "sha256:2", parents=(v1.id,))
    catalog.publish_version(v2.id, {})
    assert catalog.resolve("s/d").number == 2
    assert catalog.get_version(v1.id).status is VersionStatus.SUPERSEDED
    assert catalog.resolve("s/d@v1").id == v1.id
    assert catalog.get_version(v2.id).parent_ids == (v1.id,)
    assert catalog.find_published_by_digest("s", "sha256:2").id == v2.id
    with pytest.raises(CatalogError):
        catalog.publish_version(v2.id, {})


def test_the_higher_version_number_stays_published_whatever_order_publishes_finish(
    catalog: Catalog,
) -> None:
    """Two files staged into one dataset at once (v1, then v2) and v2 published first:
    v1 publishing last is recorded superseded at once; v2 stays what resolves."""
    v1, v2 = _stage(catalog, "sha256:1"), _stage(catalog, "sha256:2")
    assert (v1.number, v2.number) == (1, 2)
    catalog.publish_version(v2.id, {"success": True, "file": "two"})
    late = catalog.publish_version(v1.id, {"success": True, "file": "one"}, manifest_digest="m1")

    assert late.id == v1.id and late.status is VersionStatus.SUPERSEDED
    assert catalog.resolve("s/d").id == v2.id
    assert catalog.get_version(v2.id).status is VersionStatus.PUBLISHED
    pinned = catalog.resolve("s/d@v1")  # recorded as validated, resolvable when pinned
    assert pinned.id == v1.id and pinned.manifest_digest == "m1"
    # in order, the later number still supersedes the earlier one
    v3 = _stage(catalog, "sha256:3")
    catalog.publish_version(v3.id, {})
    assert catalog.resolve("s/d").id == v3.id
    assert catalog.get_version(v2.id).status is VersionStatus.SUPERSEDED


def test_quarantined_never_resolves(catalog: Catalog) -> None:
    v = _stage(catalog, "sha256:q")
    catalog.quarantine_version(v.id, {"success": False}, "/q")
    with pytest.raises(DatasetNotFoundError, match="no published version"):
        catalog.resolve("s/d")
    assert catalog.find_published_by_digest("s", "sha256:q") is None


def test_unknown_names_are_clear(catalog: Catalog) -> None:
    with pytest.raises(DatasetNotFoundError, match="no study named 'nope'"):
        catalog.samples("nope")
    with pytest.raises(DatasetNotFoundError, match="no dataset 'zzz'"):
        catalog.resolve("s/zzz")


def test_versions_record_kind_and_layout(catalog: Catalog) -> None:
    v = _stage(catalog, "sha256:k")
    assert (v.kind, v.layout, v.layout_version, v.manifest_digest) == (
        DatasetKind.SOURCE,
        "sparse-matrix",
        1,
        None,
    )
    r = catalog.stage_version(
        study="s",
        dataset="de",
        modality="signatures",
        dataset_type="signatures.de",
        kind="result",
        uri="/r",
        format="parquet",
        layout="result-tables",
        layout_version=1,
        digest="sha256:r",
        schema_version="1",
        shape=[1, 1],
        code_version="t",
        parents=(v.id,),
    )
    assert r.kind is DatasetKind.RESULT and r.layout == "result-tables"
    with pytest.raises(CatalogError, match="is a result dataset, not source"):
        catalog.stage_version(
            study="s",
            dataset="de",
            modality="signatures",
            dataset_type="signatures.de",
            uri="/r2",
            format="parquet",
            layout="result-tables",
            layout_version=1,
            digest="sha256:r2",
            schema_version="1",
            shape=[1, 1],
            code_version="t",
        )


def test_only_a_published_version_fixes_the_dataset_type(catalog: Catalog) -> None:
    def stage(dtype: str, digest: str):  # type: ignore[no-untyped-def]
        return catalog.stage_version(
            study="s",
            dataset="e",
            modality="expression",
            dataset_type=dtype,
            uri=f"datasets/s/e/{digest}",
            format="zarr-anndata",
            layout="sparse-matrix",
            layout_version=1,
            digest=digest,
            schema_version="1",
            shape=[1, 1],
            code_version="t",
        )

    q = stage("expression.counts", "sha256:q")
    catalog.quarantine_version(q.id, {"success": False}, q.uri)
    n = stage("expression.normalized", "sha256:n")  # nothing published: free to change
    assert n.dataset_type == "expression.normalized"
    catalog.publish_version(n.id, {})
    with pytest.raises(
        CatalogError, match=r"holds 'expression\.normalized', not 'expression\.counts'"
    ):
        stage("expression.counts", "sha256:c")


def _publish_source(c: Catalog) -> None:
    v = _stage(c, "sha256:pub")
    c.publish_version(v.id, {})


def test_moving_a_sample_to_another_subject_after_publication_needs_to_be_explicit(
    catalog: Catalog,
) -> None:
    # before any data: corrections are free and not recorded
    before = catalog.register_study("s", [SampleRow("B", "P2")])
    assert before.updated == 1 and before.design_changes == 0
    catalog.register_study("s", [SampleRow("B", "P1")])
    _publish_source(catalog)
    snapshot = catalog.samples("s").to_dict()

    moved = [SampleRow("A", "P1", annotations={"arm": "x"}), SampleRow("B", "P9")]
    with pytest.raises(
        DesignChangeError,
        match=r"sample 'B' would move from subject 'P1' to 'P9'.*s/d@v1.*--allow-design-change",
    ):
        catalog.register_study("s", moved)
    assert catalog.samples("s").to_dict() == snapshot  # nothing changed
    assert catalog.design_changes("s") == []

    summary = catalog.register_study("s", moved, allow_design_change=True)
    assert summary.updated == 1 and summary.design_changes == 1
    assert catalog.samples("s").loc["B", "subject_id"] == "P9"
    (change,) = catalog.design_changes("s")
    assert (change.sample, change.field, change.old, change.new, change.explicit) == (
        "B",
        "subject_id",
        "P1",
        "P9",
        True,
    )
    assert change.changed_at is not None


def test_value_corrections_after_publication_are_recorded(catalog: Catalog) -> None:
    _publish_source(catalog)
    summary = catalog.register_study(
        "s", [SampleRow("A", "P1", phase=Phase.PROGRESSION, annotations={"arm": "y"})]
    )
    assert summary.updated == 1 and summary.design_changes == 2
    assert {(c.field, c.old, c.new, c.explicit) for c in catalog.design_changes("s")} == {
        ("phase", None, "progression", False),
        ("arm", "x", "y", False),
    }
