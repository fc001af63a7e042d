"""Bad variant files end to end through ``ingest``: quarantined, named, nothing changed.

A good VCF is published first as dataset ``calls``; every bad file is then landed under
the same name, so a leak into the published state would show. Each must be quarantined
with a report, give a one-line message naming the file, the rule and the place, and
leave the catalog's published versions and every stored byte exactly as they were (a
quarantined version keeps its staged files beside, for inspection; GC never removes them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest

from modalities.variants.variant_files import (
    BRAF,
    GOOD_RECORDS,
    SAMPLES,
    SUBJECTS,
    bgzip_bytes,
    vcf_header,
    write_text,
)
from resistomics.catalog import SampleRow, VersionStatus

STUDY = "var"
GOOD = vcf_header() + "".join(GOOD_RECORDS)


def _truncated_bgzip(path: Path) -> Path:
    body = "".join(BRAF.replace("140453136", str(140453136 + i)) for i in range(5000))
    data = bgzip_bytes((vcf_header() + body).encode(), block=4096)
    path.write_bytes(data[: len(data) // 2])
    return path


def _text(body: str) -> Callable[[Path], Path]:
    return lambda path: write_text(path, body)


CASES: dict[str, tuple[str, Callable[[Path], Path], str, str]] = {
    # name: (file name, writer, rule, a place the message must name)
    "truncated bgzip": ("calls.vcf.gz", _truncated_bgzip, "gzip-integrity", "end-of-file block"),
    "malformed header": (
        "calls.vcf",
        _text(vcf_header().replace("\t", " ", 3) + BRAF),
        "vcf-header",
        "line 1",
    ),
    "VAF above 1": (
        "calls.vcf",
        _text(vcf_header() + BRAF.replace("0/1:10,30:40:0.75", "0/1:10,30:40:1.3")),
        "vaf-range",
        "P1_relapse2",
    ),
    "AD and DP disagree": (
        "calls.vcf",
        _text(vcf_header() + BRAF.replace("0/1:30,10:40:0.25", "0/1:30,10:25:0.25")),
        "depth-covers-counts",
        "P1_relapse",
    ),
    "unknown sample": (
        "calls.vcf",
        _text(vcf_header((*SAMPLES[:2], "P7_mystery")) + BRAF),
        "registered-samples",
        "P7_mystery",
    ),
    "CR line endings": (
        "calls.vcf",
        _text(GOOD.replace("\n", "\r")),
        "vcf-line-endings",
        "line 1",
    ),
    "duplicate call": (
        "calls.vcf",
        _text(GOOD + GOOD_RECORDS[0]),
        "unique-calls",
        "chr7:140453136",
    ),
}


def _stored_bytes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and "quarantine" not in p.parts
        and "landing" not in p.parts
        and not p.name.startswith("catalog.sqlite")
    }


@pytest.fixture
def published(workspace, land, tmp_path: Path):  # type: ignore[no-untyped-def]
    rows = [
        SampleRow(sample_id=s, subject_id=SUBJECTS[s], phase=p, timepoint=t)
        for s, p, t in zip(SAMPLES, ("baseline", "relapse", "relapse"), (0, 200, 300), strict=True)
    ]
    workspace.catalog.register_study(STUDY, rows)
    from resistomics.pipeline import ingest

    (tmp_path / "good").mkdir()
    good = write_text(tmp_path / "good" / "calls.vcf", GOOD)
    out = ingest(
        workspace,
        land(workspace, good, STUDY, modality="variants"),
        study=STUDY,
        modality="variants",
    )
    assert out.status == "published", out.message
    return workspace


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_variant_file_is_quarantined_and_changes_nothing(
    published, land, tmp_path: Path, case: str
) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import ingest

    name, write, rule, place = CASES[case]
    before = [v for v in published.catalog.snapshot() if v[4] == "published"]
    root = Path(published.settings.data_root)
    stored = _stored_bytes(root)
    (tmp_path / "bad").mkdir()
    bad = write(tmp_path / "bad" / name)
    out = ingest(
        published,
        land(published, bad, STUDY, modality="variants"),
        study=STUDY,
        modality="variants",
    )
    assert out.status == "quarantined", out.message
    assert len(out.message.splitlines()) == 1
    # reader rules read "[rule]", validation rules "[validation] rule:"
    assert name in out.message, out.message
    assert f"[{rule}]" in out.message or f"[validation] {rule}:" in out.message, out.message
    assert place in out.message, out.message
    assert [v for v in published.catalog.snapshot() if v[4] == "published"] == before
    after = _stored_bytes(root)
    assert {k: after.get(k) for k in stored} == stored  # every stored byte as it was
    assert out.quarantine_uri is not None and (Path(out.quarantine_uri) / "report.md").exists()
    assert not published.catalog.versions(study=STUDY, status=VersionStatus.STAGED)
