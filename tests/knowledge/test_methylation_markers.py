"""The methylation-marker catalogue: versioned, referenced, coordinates that are real hg19
promoters (checked against RefSeq TSSs and CpG islands), and entry refusals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from resistomics.errors import InputError
from resistomics.knowledge import builtin_methylation_markers, read_marker_catalogue
from shared_data import SHARED_DATA

ANNOTATION = SHARED_DATA / "annotation_hg19"


def test_builtin_catalogue_is_versioned_referenced_and_has_the_named_markers() -> None:
    cat = builtin_methylation_markers()
    assert cat.source == "builtin:methylation_markers" and cat.version == "2026.12.1"
    assert cat.genome == "hg19"
    assert {e.gene for e in cat.entries} >= {"MGMT", "MLH1", "BRCA1", "RAD51C"}
    for e in cat.entries:
        assert e.effect in {"resistance", "sensitivity"} and e.therapy and e.citation, e
        assert (e.pmid and e.pmid.isdigit()) or e.doi.startswith("10."), e
        assert 0 < e.threshold < 1 and e.min_cpgs >= 1
    mgmt = next(e for e in cat.entries if e.gene == "MGMT")
    assert mgmt.pmid == "15758010" and "temozolomide" in mgmt.therapy  # Hegi et al. 2005
    # BRCA1 for PARP inhibitors and for platinum: two entries, one region
    assert len(cat.regions()) == len({(e.contig, e.start, e.end) for e in cat.entries})


def test_every_marker_window_is_a_refseq_promoter_with_its_cpg_island() -> None:
    tss = pd.read_csv(ANNOTATION / "RefSeqTSS.hg19.bed.gz", sep="\t", header=None)
    islands = pd.read_csv(ANNOTATION / "CpGIsland.hg19.bed.gz", sep="\t", header=None)
    for e in builtin_methylation_markers().entries:
        centre = (e.start + e.end) // 2
        on = tss[tss[0] == e.contig]
        assert (on[2] == centre).any(), f"{e.gene}: {e.contig}:{centre} is not a RefSeq TSS"
        isl = islands[islands[0] == e.contig]
        inside = (isl[1] + 1 >= e.start) & (isl[2] <= e.end)
        assert inside.any(), f"{e.gene}: no CpG island inside {e.contig}:{e.start}-{e.end}"


def _write(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "markers.yaml"
    path.write_text(f"catalogue: mine\nversion: '1'\ngenome: hg19\nentries:\n{entry}")
    return path


GOOD = (
    "  - gene: MGMT\n"
    "    region: {contig: chr10, start: 131264949, end: 131265710}\n"
    "    therapy: temozolomide\n    effect: sensitivity\n    threshold: 0.3\n"
    "    pmid: '15758010'\n"
)


def test_user_catalogues_read_and_bad_entries_are_refused_with_their_line(tmp_path: Path) -> None:
    cat = read_marker_catalogue(_write(tmp_path, GOOD))
    (e,) = cat.entries
    assert (e.contig, e.start, e.end, e.region, e.min_cpgs) == (
        "chr10",
        131264949,
        131265710,
        "explicit",
        3,
    )
    for change, rule in (
        (("effect: sensitivity", "effect: both"), "effect"),
        (("threshold: 0.3", "threshold: 1.5"), "threshold"),
        (("pmid: '15758010'", "pmid: 'PMID1'"), "reference"),
        (("start: 131264949", "start: 131265711"), "region"),
        (("gene: MGMT", "gene: 'MG MT'"), "gene-symbol"),
    ):
        with pytest.raises(InputError) as err:
            read_marker_catalogue(_write(tmp_path, GOOD.replace(*change)))
        assert err.value.rule == rule and err.value.location.line == 5, str(err.value)
    with pytest.raises(InputError) as err:
        read_marker_catalogue(_write(tmp_path, GOOD + GOOD))
    assert err.value.rule == "unique-entries" and err.value.location.line == 11
    with pytest.raises(InputError, match="file-exists"):
        read_marker_catalogue(tmp_path / "none.yaml")
