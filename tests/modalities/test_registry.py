"""The modality registry: explicit built-ins, entry points, did-you-mean errors, layouts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from resistomics.dataset_types import dataset_type
from resistomics.errors import ConfigError, InputError, ResistomicsError, UnknownNameError
from resistomics.modalities import (
    ENTRY_POINT_GROUP,
    Modality,
    guess_modality,
    modalities,
    modality,
    modality_names,
    refresh,
)
from resistomics.storage import layout, layouts


def test_builtins_are_registered_with_their_parts() -> None:
    assert {"expression", "variants"} <= set(modality_names())
    expression = modality("expression")
    assert [r.name for r in expression.readers] == ["bulk-table", "10x-mtx", "h5ad"]
    assert {t.name for t in expression.dataset_types()} == {
        "expression.counts",
        "expression.normalized",
    }
    assert set(expression.options.model_fields) == {"values", "sample", "scale"}
    assert [a.name for a in expression.default_analyses()] == ["signatures"]
    variants = modality("variants")
    assert [t.name for t in variants.dataset_types()] == ["variants.calls"]
    assert [a.name for a in variants.default_analyses()] == ["clonal"]
    for m in modalities().values():
        for a in m.analyses:
            assert dataset_type(a.result_type).layout == "result-tables@1"
        for t in m.dataset_types():
            assert not layout(t.layout).planned, t


def test_unknown_names_say_what_exists_and_what_was_meant() -> None:
    with pytest.raises(UnknownNameError) as err:
        modality("expresion")
    assert isinstance(err.value, ResistomicsError) and isinstance(err.value, KeyError)
    assert str(err.value) == (
        "unknown modality 'expresion'; did you mean 'expression'? (known: "
        + ", ".join(modality_names())
        + ")"
    )
    with pytest.raises(UnknownNameError, match="did you mean 'h5ad'"):
        modality("expression").reader("h5da")
    with pytest.raises(UnknownNameError, match=r"did you mean 'expression\.counts'"):
        dataset_type("expression.count")
    with pytest.raises(UnknownNameError, match="did you mean 'clonal'"):
        modality("variants").analysis("clonl")
    with pytest.raises(UnknownNameError, match="did you mean 'sparse-matrix@1'"):
        layout("sparse-matrx@1")


def test_files_find_their_modality(tmp_path: Path) -> None:
    for name in ("calls.maf.txt", "counts.tsv.gz", "notes.docx"):
        (tmp_path / name).write_text("x")
    # .txt is also a table suffix: the longer reader suffix wins
    assert guess_modality(str(tmp_path / "calls.maf.txt")).name == "variants"
    assert guess_modality(str(tmp_path / "counts.tsv.gz")).name == "expression"
    with pytest.raises(InputError, match=r"\[modality\] no reader recognises"):
        guess_modality(str(tmp_path / "notes.docx"))


def test_layouts_are_versioned_and_implemented() -> None:
    specs = {x.spec: x for x in layouts()}
    implemented = {
        "sparse-matrix@1",
        "partitioned-table@1",
        "result-tables@1",
        "feature-matrix@1",
        "spatialdata@1",
    }
    assert implemented <= set(specs)
    for spec in implemented:  # what integrity, export and the CLI dispatch on
        x = specs[spec]
        assert not x.planned and x.tables is not None and x.read_table is not None, spec
    assert (
        set(specs["feature-matrix@1"].exports) == set(specs["sparse-matrix@1"].exports) == {"h5ad"}
    )
    assert set(specs["spatialdata@1"].exports) == {"h5ad", "spatialdata"}


def test_importing_the_registry_imports_no_modality() -> None:
    code = (
        "import sys, resistomics.modalities, resistomics.pipeline\n"
        "print(sorted(m for m in sys.modules if m.startswith('resistomics.modalities.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "expression" not in out.stdout and "variants" not in out.stdout, out.stdout


def test_a_plugin_registers_through_its_entry_point(toy_plugin: Path) -> None:
    toy = modality("toy")
    assert isinstance(toy, Modality)
    assert {t.name for t in toy.dataset_types()} == {"toy.values", "toy.summary"}
    assert dataset_type("toy.values").layout == "partitioned-table@1"
    assert dataset_type("toymatrix.values").layout == "feature-matrix@1"


def test_a_plugin_may_not_shadow_a_builtin(tmp_path: Path) -> None:
    dist = tmp_path / "shadow-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shadow\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nexpression = toy_modality:ToyModality\n"
    )
    sys.path.insert(0, str(tmp_path))
    refresh()
    try:
        with pytest.raises(ConfigError, match="already registered"):
            modalities()
    finally:
        sys.path.remove(str(tmp_path))
        refresh()
