"""Garbage collection against a moved data root, and its refusal when catalog and root disagree."""

from __future__ import annotations

import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from resistomics.catalog import SampleRow
from resistomics.config import Settings
from resistomics.errors import RootMismatchError
from resistomics.pipeline import Workspace, collect_garbage, ingest
from resistomics.storage import open_sparse_matrix

SAMPLES = ["S1", "S2", "S3", "S4"]


def _counts(ws: Workspace, name: str, seed: int, *, negative: bool = False) -> str:
    path = Path(ws.settings.resolved_landing_zone) / "st" / "expression" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["gene_id\t" + "\t".join(SAMPLES)]
    for g in range(30):
        values = [(g * 7 + s * 3 + seed) % 50 for s in range(len(SAMPLES))]
        if negative and g == 0:
            values[0] = -1
        lines.append(f"G{g:02d}\t" + "\t".join(map(str, values)))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _populate(ws: Workspace) -> None:
    """Three published datasets (one superseded version) and one quarantined attempt."""
    ws.catalog.register_study("st", [SampleRow(s, f"P{i // 2}") for i, s in enumerate(SAMPLES)])
    for dataset, seed in (("a", 0), ("a", 1), ("b", 2), ("c", 3)):
        out = ingest(ws, _counts(ws, f"{dataset}{seed}.tsv", seed), study="st", dataset=dataset)
        assert out.status == "published", out.message
    bad = ingest(ws, _counts(ws, "bad.tsv", 9, negative=True), study="st", dataset="a")
    assert bad.status == "quarantined"


@pytest.fixture(scope="module")
def populated_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data root that :func:`_populate` filled, once for the module (five ingests)."""
    from resistomics.config import ClusterSettings

    root = tmp_path_factory.mktemp("housekeeping") / "root"
    ws = Workspace.open(
        Settings(
            data_root=str(root),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    try:
        _populate(ws)
    finally:
        ws.close()
    return root


@pytest.fixture
def populated(settings: Settings, populated_root: Path) -> Settings:
    """``settings`` whose data root is a fresh copy of :func:`populated_root` (GC and
    the tests change it). A copied root is a moved one: the catalog's URIs are relative
    to the root, which the ``moved`` case below checks on this very copy."""
    shutil.copytree(populated_root, settings.data_root, symlinks=True)
    return settings


def _version_dirs(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.glob("datasets/*/*/*")}


def _reopen(settings: Settings, root: Path) -> Workspace:
    return Workspace.open(settings.model_copy(update={"data_root": str(root)}))


@pytest.mark.parametrize("how", ["moved", "symlink"])
def test_gc_after_the_root_moved_removes_nothing_and_everything_resolves(
    populated: Settings, tmp_path: Path, how: str
) -> None:
    settings = populated
    ws = Workspace.open(settings)
    refs = [v.ref for v in ws.catalog.versions()]
    ws.close()
    old_root = Path(settings.data_root)
    before = _version_dirs(old_root)
    assert len(before) == 5  # a@v1, a@v2, a@v3 (quarantined), b@v1, c@v1
    if how == "moved":
        new_root = tmp_path / "elsewhere" / "root"
        new_root.parent.mkdir()
        shutil.move(old_root, new_root)
    else:
        new_root = tmp_path / "link"
        os.symlink(old_root, new_root)

    ws = _reopen(settings, new_root)
    try:
        assert collect_garbage(ws, older_than=timedelta(0)) == []
        assert _version_dirs(new_root) == before
        assert [v.ref for v in ws.catalog.versions()] == refs
        for name in ("a", "b", "c"):
            v = ws.catalog.resolve(f"st/{name}")
            assert ws.root.to_path(v.uri).startswith(str(new_root))
            assert open_sparse_matrix(ws.root, ws.root.to_path(v.uri)).shape == (4, 30)
    finally:
        ws.close()


def test_gc_refuses_when_most_catalog_directories_are_missing(populated: Settings) -> None:
    settings = populated
    ws = Workspace.open(settings)
    root = Path(settings.data_root)
    # A crashed write (an orphan directory) that GC would normally remove ...
    orphan = root / "datasets" / "st" / "a" / "v-0123456789abcdef"
    orphan.mkdir()
    (orphan / "chunk").write_bytes(b"partial")
    # ... but the root lost most of the catalog's directories (a wrong or half-restored root).
    published = [ws.catalog.resolve(f"st/{n}") for n in ("a", "b", "c")]
    for v in published:
        shutil.rmtree(ws.root.to_path(v.uri))
    snapshot = ws.catalog.snapshot()
    left = _version_dirs(root)

    with pytest.raises(
        RootMismatchError, match=r"garbage collection refused: 3 catalog version\(s\)"
    ) as err:
        collect_garbage(ws, older_than=timedelta(0), max_disagreement=3)
    assert str(err.value).startswith(f"{ws.root.url}: [root-mismatch] garbage collection refused")
    assert _version_dirs(root) == left and orphan.exists()
    assert ws.catalog.snapshot() == snapshot

    # The threshold comes from the settings; a root within it is collected as usual.
    ws.settings.gc_max_disagreement = 4
    found = collect_garbage(ws, older_than=timedelta(0))
    assert [(f.kind, f.path) for f in found] == [("unreferenced-directory", str(orphan))]
    ws.close()


def test_gc_never_removes_a_directory_a_catalog_row_names(populated: Settings) -> None:
    settings = populated
    ws = Workspace.open(settings)
    quarantined = [v for v in ws.catalog.versions() if v.status.value == "quarantined"]
    superseded = [v for v in ws.catalog.versions() if v.status.value == "superseded"]
    assert quarantined and superseded
    assert collect_garbage(ws, older_than=timedelta(0)) == []
    for v in quarantined + superseded:
        assert Path(ws.root.to_path(v.uri)).is_dir()
    ws.close()


def test_gc_of_a_staged_duplicate_row_keeps_the_directory_a_published_row_names(
    populated: Settings,
) -> None:
    """A staging transaction whose COMMIT acknowledgement was lost is retried and stages
    a second row with the same directory (the first row stays staged); the retry's row
    is then published. Garbage collection drops the leftover row, not the directory."""
    ws = Workspace.open(populated)
    try:
        v = ws.catalog.resolve("st/b")
        leftover = ws.catalog.stage_version(
            study="st",
            dataset="b",
            modality=v.modality,
            dataset_type=v.dataset_type,
            uri=v.uri,
            format=v.format,
            layout=v.layout,
            layout_version=v.layout_version,
            digest=v.digest,
            schema_version=v.schema_version,
            shape=v.shape,
            code_version=v.code_version,
        )
        found = collect_garbage(ws, older_than=timedelta(0))
        assert [(f.kind, f.ref) for f in found] == [("staged-version", leftover.ref)]
        assert [x.id for x in ws.catalog.versions() if x.dataset == "b"] == [v.id]
        assert Path(ws.root.to_path(v.uri)).is_dir()
        assert open_sparse_matrix(ws.root, ws.root.to_path(v.uri)).shape == (4, 30)
    finally:
        ws.close()


def test_gc_removes_only_abandoned_partial_copies_of_our_own(settings: Settings) -> None:
    """A copy into the landing zone killed mid-way leaves ``.<name>.<uid>.partial``
    (pipeline.land); GC removes it once old, and leaves anything else in flight alone."""
    ws = Workspace.open(settings)
    folder = Path(ws.settings.resolved_landing_zone) / "st" / "expression"
    folder.mkdir(parents=True)
    ours = folder / ".counts.tsv.0123abcd.partial"
    ours.write_text("gene_id\tS1\nG1\t")
    ours_dir = folder / ".run_10x.89abcdef.partial"
    ours_dir.mkdir()
    (ours_dir / "matrix.mtx").write_text("%%MatrixMarket")
    theirs = folder / "upload.tsv.part"  # another tool's transfer: not ours to remove
    theirs.write_text("x")
    fresh = collect_garbage(ws, older_than=timedelta(hours=1))
    assert [f for f in fresh if f.kind == "abandoned-landing"] == []  # may still be copying
    assert ours.exists()
    dry = collect_garbage(ws, older_than=timedelta(0), dry_run=True)
    assert {Path(f.path).name for f in dry} == {ours.name, ours_dir.name}
    assert ours.exists() and ours_dir.exists()
    found = collect_garbage(ws, older_than=timedelta(0))
    assert {(f.kind, Path(f.path).name, f.removed) for f in found} == {
        ("abandoned-landing", ours.name, True),
        ("abandoned-landing", ours_dir.name, True),
    }
    assert not ours.exists() and not ours_dir.exists() and theirs.exists()
