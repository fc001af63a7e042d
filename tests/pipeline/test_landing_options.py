"""Ingest options declared by the landing folder (``.ingest-options.yaml``): the way files
that arrive by events or the sweep, which carry no command-line options, get them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import land
from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, Settings
from resistomics.errors import InputError
from resistomics.pipeline import Workspace, ingest
from resistomics.storage import open_feature_matrix

STUDY = "opt"
IDS = [f"P{i}" for i in range(4)]


def _workspace(tmp_path: Path) -> Workspace:
    ws = Workspace.open(
        Settings(
            data_root=str(tmp_path / "root"),
            cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
        )
    )
    ws.catalog.register_study(STUDY, [SampleRow(sample_id=s, subject_id=s) for s in IDS])
    return ws


def _table(path: Path) -> Path:
    """A MetaboAnalyst table with a text column (``site``) that is not a metabolite."""
    rows = ["sample_id,site,alanine,glycine"]
    rows += [f"{s},{'3-4' if i % 2 else 'A'},{i + 1.5},{i * 2 + 0.25}" for i, s in enumerate(IDS)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _options(ws: Workspace, text: str) -> Path:
    folder = Path(ws.settings.resolved_landing_zone) / STUDY / "metabolomics"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / ".ingest-options.yaml"
    target.write_text(text)
    return target


def test_the_folder_options_apply_by_pattern_and_given_ones_win(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    src = _table(tmp_path / "t.csv")
    # without options the text column is a metabolite with text in it: refused
    out = ingest(ws, land(ws, src, STUDY, "a.csv", modality="metabolomics"), study=STUDY)
    assert out.status == "quarantined" and "'site'" in out.message, out.message
    _options(ws, "files:\n  'b*.csv': {extra_columns: [site]}\n  'c.csv': {extra_columns: [x]}\n")
    # a pattern that matches applies ...
    out = ingest(ws, land(ws, src, STUDY, "b1.csv", modality="metabolomics"), study=STUDY)
    assert out.status == "published", out.message
    assert out.version.parameters["landing"]["extra_columns"] == ["site"]
    store = open_feature_matrix(ws.root, ws.root.to_path(out.version.uri))
    assert store.features["feature_id"].tolist() == ["alanine", "glycine"]
    assert store.samples["site"].tolist() == ["A", "3-4", "A", "3-4"]
    # ... one that does not, does not; options given by the caller override the folder's
    out = ingest(ws, land(ws, src, STUDY, "z.csv", modality="metabolomics"), study=STUDY)
    assert out.status == "quarantined", out.message
    _options(ws, "extra_columns: [nothing]\n")
    out = ingest(
        ws,
        land(ws, src, STUDY, "d.csv", modality="metabolomics"),
        study=STUDY,
        options={"extra_columns": ["site"]},
    )
    # the same bytes with the same options as b1.csv: b1's version, not a new one
    assert out.status == "unchanged" and "opt/b1@v1" in out.message, out.message
    ws.close()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("extra_columns: [site\n", "not readable as YAML"),
        ("- a\n- b\n", "must be a mapping"),
        ("files: [a]\n", "'files' must map"),
        ("files:\n  '*.csv': 3\n", "must map option names"),
        ("orientaton: rows\n", "did you mean --orientation"),
        ("orientation: diagonal\n", "orientation"),
    ],
)
def test_a_bad_options_file_is_refused_naming_it_and_nothing_moves(
    tmp_path: Path, text: str, says: str
) -> None:
    ws = _workspace(tmp_path)
    where = _options(ws, text)
    path = land(ws, _table(tmp_path / "t.csv"), STUDY, modality="metabolomics")
    with pytest.raises(InputError) as info:
        ingest(ws, path, study=STUDY)
    assert info.value.file == str(where) and info.value.rule == "ingest-options"
    assert says in str(info.value) and "\n" not in str(info.value), str(info.value)
    assert Path(path).is_file()  # not claimed, not quarantined
    assert ws.catalog.versions() == []
    ws.close()
