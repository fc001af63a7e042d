"""Expression's settings section: its environment names, the deprecated ones, and that ingest
applies them (a bound from either name quarantines a file that breaks it)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from pydantic import ValidationError

from resistomics.catalog import SampleRow
from resistomics.config import ClusterSettings, load_settings
from resistomics.modalities import modality
from resistomics.pipeline import Workspace, ingest

NEW = "RESISTOMICS_MODALITIES__EXPRESSION__"
OLD = "RESISTOMICS_VALIDATION__"


def _settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_settings(
        data_root=str(tmp_path / "root"),
        cluster=ClusterSettings(n_workers=1, processes=False, memory_limit="2GiB"),
    )


def test_section_is_read_from_the_modalities_variables(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(f"{NEW}MIN_LIBRARY_SIZE", "5")
    monkeypatch.setenv(f"{NEW}MAX_DETECTED_GENES", "700")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn about nothing
        section = modality("expression").settings_of(_settings(tmp_path))
    assert section.min_library_size == 5.0
    assert section.max_detected_genes == 700
    assert section.max_library_size is None
    assert section.min_detected_genes == 0


def test_deprecated_validation_variables_still_work_with_a_warning(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(f"{OLD}MIN_DETECTED_GENES", "3")
    monkeypatch.setenv(f"{OLD}MAX_LIBRARY_SIZE", "9000")
    monkeypatch.setenv(f"{NEW}MAX_LIBRARY_SIZE", "8000")  # the new name wins
    with pytest.warns(FutureWarning) as caught:
        section = modality("expression").settings_of(_settings(tmp_path))
    assert section.min_detected_genes == 3
    assert section.max_library_size == 8000.0
    (message,) = [str(w.message) for w in caught]
    assert message == (
        f"deprecated setting {OLD}MIN_DETECTED_GENES (removed in the next release): "
        f"set {NEW}MIN_DETECTED_GENES instead"
    )


def test_a_misspelt_key_is_refused(monkeypatch, tmp_path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(f"{NEW}MIN_LIBRARY_SIZ", "5")
    with pytest.raises(ValidationError, match="min_library_siz"):
        modality("expression").settings_of(_settings(tmp_path))


@pytest.mark.parametrize("prefix", [NEW, OLD], ids=["modalities", "deprecated"])
def test_ingest_applies_the_bound(monkeypatch, tmp_path, land, prefix):  # type: ignore[no-untyped-def]
    # four samples of 50 genes x ~20 counts: library sizes ~1000, far below the bound
    monkeypatch.setenv(f"{prefix}MIN_LIBRARY_SIZE", "100000")
    ws = Workspace.open(_settings(tmp_path))
    try:
        samples = ("S1", "S2", "S3", "S4")
        ws.catalog.register_study("st", [SampleRow(sample_id=s, subject_id=s) for s in samples])
        rows = ["\t".join(["gene_id", *samples])]
        rows += ["\t".join([f"G{i}", *(str(20 + i % 3) for _ in samples)]) for i in range(50)]
        table = tmp_path / "counts.tsv"
        table.write_text("\n".join(rows) + "\n")
        with warnings.catch_warnings():
            # the deprecation warning is the deprecated case's; the new name has none
            warnings.simplefilter("ignore" if prefix == OLD else "error", FutureWarning)
            outcome = ingest(ws, land(ws, table, "st"), study="st")
        assert outcome.status == "quarantined", outcome.message
        assert "library-size" in outcome.message
    finally:
        ws.close()
