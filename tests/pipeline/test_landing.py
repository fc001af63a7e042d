"""The landing zone: confinement, atomic landing, claim-then-hash, links and odd files,
refusals quarantined, and the identity of a landing (bytes + dataset + options)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from resistomics.errors import InputError
from resistomics.pipeline import ingest
from resistomics.pipeline._landing import land

GOOD = "gene_id\tveh_WT_rep1\tveh_WT_rep2\nG1\t3\t4\nG2\t5\t6\n"


def _zone(ws) -> Path:  # type: ignore[no-untyped-def]
    return Path(ws.settings.resolved_landing_zone)


def _published(ws) -> list:  # type: ignore[no-untyped-def]
    return [v for v in ws.catalog.snapshot() if v[4] == "published"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("study", ".."), ("study", "../../escaped"), ("modality", "a/b"), ("dataset", "counts@v2")],
)
def test_path_arguments_are_names(t47d_study, land, tmp_path, option, value) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    landed = land(t47d_study, src, "t47d")
    kwargs = {"study": "t47d", option: value}
    with pytest.raises(InputError) as err:
        ingest(t47d_study, landed, **kwargs)
    assert err.value.rule == "name" and err.value.file == f"{option} {value!r}"
    assert Path(landed).read_text() == GOOD  # refused before it was claimed: still waiting


def test_an_interrupted_landing_never_shows_under_the_final_name(tmp_path: Path) -> None:
    src = tmp_path / "big.tsv"
    src.write_bytes(os.urandom(64 << 20))
    directory = tmp_path / "landing" / "st" / "expression"
    directory.mkdir(parents=True)
    target = directory / "big.tsv"
    seen: set[int] = set()
    done = threading.Event()

    def watch() -> None:  # what a sweep (or a second ingest) could see at any moment
        while not done.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(target.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        land(src, directory)
    finally:
        done.set()
        watcher.join()
    assert seen <= {src.stat().st_size}, sorted(seen)[:5]
    assert target.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in directory.iterdir()) == ["big.tsv"]  # no .partial left


def test_a_partial_file_is_neither_announced_nor_ingested(t47d_study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flows.sweep import find_landed

    partial = _zone(t47d_study) / "t47d" / "expression" / ".expr.tsv.1a2b3c4d.partial"
    partial.parent.mkdir(parents=True)
    partial.write_text(GOOD[:20])
    assert find_landed(t47d_study, min_age_seconds=0) == []
    with pytest.raises(InputError) as err:
        ingest(t47d_study, str(partial), study="t47d")
    assert err.value.rule == "partial"
    assert partial.read_text() == GOOD[:20] and _published(t47d_study) == []


def test_two_runs_landing_the_same_path_hash_what_one_of_them_reads(
    t47d_study, land, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from resistomics.config import Settings
    from resistomics.pipeline import Workspace

    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    landed = land(t47d_study, src, "t47d")
    start = threading.Barrier(2)
    results: list[object] = []

    def run() -> None:
        ws = Workspace.open(Settings.model_validate(t47d_study.settings.model_dump()))
        try:
            start.wait()
            results.append(ingest(ws, landed, study="t47d"))
        except InputError as exc:
            results.append(exc)
        finally:
            ws.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    published = [r for r in results if getattr(r, "status", None) == "published"]
    gone = [r for r in results if isinstance(r, InputError)]
    assert len(published) == 1 and len(gone) == 1, results
    assert gone[0].rule == "file-exists"  # the flow turns this into a Skipped run
    digest = "sha256:" + hashlib.sha256(GOOD.encode()).hexdigest()
    assert published[0].version.digest == digest
    assert len(_published(t47d_study)) == 1


def test_a_link_inside_a_landed_directory_is_refused_unread(t47d_study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:SECRET-CONTENT:/root:/bin/bash\n")
    run = _zone(t47d_study) / "t47d" / "expression" / "run1"
    run.mkdir(parents=True)
    (run / "matrix.mtx").write_text(
        "%%MatrixMarket matrix coordinate integer general\n1 1 1\n1 1 3\n"
    )
    (run / "features.tsv").write_text("G1\tSYM1\tGene Expression\n")
    (run / "barcodes.tsv").symlink_to(secret)

    outcome = ingest(t47d_study, str(run), study="t47d", options={"sample": "veh_WT_rep1"})

    assert outcome.status == "quarantined"
    assert outcome.message.startswith(f"{run}/barcodes.tsv: [symlink] is a symbolic link")
    qdir = Path(outcome.quarantine_uri)
    report = (qdir / "report.json").read_text() + (qdir / "report.md").read_text()
    assert json.loads((qdir / "report.json").read_text())["rule"] == "symlink"
    for text in (outcome.message, report):
        assert "SECRET" not in text and str(secret) not in text
    assert secret.read_text().startswith("root:")  # the target is untouched
    assert not run.exists() and _published(t47d_study) == []


def test_a_fifo_is_refused_with_a_line_instead_of_hanging(t47d_study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fifo = _zone(t47d_study) / "t47d" / "expression" / "counts.tsv"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)

    outcome = ingest(t47d_study, str(fifo), study="t47d")

    assert outcome.status == "quarantined"
    assert outcome.message.startswith(f"{fifo}: [file-type] is not a regular file")
    assert not os.path.lexists(fifo)


def test_a_file_refused_before_reading_is_quarantined(t47d_study, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from flows.sweep import find_landed

    odd = _zone(t47d_study) / "t47d" / "expression" / "notes.docx"
    odd.parent.mkdir(parents=True)
    odd.write_bytes(b"PK\x03\x04 not a table")

    outcome = ingest(t47d_study, str(odd), study="t47d")

    assert outcome.status == "quarantined" and "[format]" in outcome.message
    assert str(odd) in outcome.message and ".intake" not in outcome.message
    qdir = Path(outcome.quarantine_uri)
    assert sorted(p.name for p in qdir.iterdir()) == ["notes.docx", "report.json", "report.md"]
    assert json.loads((qdir / "report.json").read_text())["rule"] == "format"
    assert find_landed(t47d_study, min_age_seconds=0) == []  # not announced again
    assert _published(t47d_study) == []


def test_the_options_are_part_of_the_identity(t47d_study, land, tmp_path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "expr.tsv"
    src.write_text(GOOD)
    first = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d")
    assert first.status == "published"

    same = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d")
    assert same.status == "unchanged" and same.version.id == first.version.id

    renamed = ingest(t47d_study, land(t47d_study, src, "t47d", name="expr_copy.tsv"), study="t47d")
    assert renamed.status == "unchanged"  # delivered again under another name: recognised

    other = ingest(t47d_study, land(t47d_study, src, "t47d"), study="t47d", dataset="expr_b")
    assert other.status == "published" and other.version.ref == "t47d/expr_b@v1"

    normalized = ingest(
        t47d_study,
        land(t47d_study, src, "t47d"),
        study="t47d",
        options={"values": "normalized"},
        dataset="expr_n",
    )
    assert normalized.status == "published"
    assert normalized.version.dataset_type == "expression.normalized"

    again = ingest(
        t47d_study, land(t47d_study, src, "t47d"), study="t47d", options={"values": "normalized"}
    )
    assert again.status == "unchanged" and again.version.ref == "t47d/expr_n@v1"
    assert "same options" in again.message

    refused = ingest(
        t47d_study,
        land(t47d_study, src, "t47d"),
        study="t47d",
        options={"values": "normalized"},
        dataset="expr",
    )
    assert refused.status == "quarantined" and "[dataset-type]" in refused.message
    assert t47d_study.catalog.resolve("t47d/expr").id == first.version.id


def test_a_landing_zone_over_the_data_root_never_hands_over_stored_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from resistomics.catalog import parse_sample_sheet
    from resistomics.config import ClusterSettings, Settings
    from resistomics.pipeline import Workspace
    from shared_data import T47D

    root = tmp_path / "root"
    settings = Settings(
        data_root=str(root),
        landing_zone=str(root),  # misconfigured: the landing zone is the data root itself
        cluster=ClusterSettings(n_workers=1, processes=False),
    )
    ws = Workspace.open(settings)
    try:
        ws.catalog.register_study("t47d", parse_sample_sheet(T47D / "samples.tsv"))
        landed = root / "t47d" / "expression" / "expr.tsv"
        landed.parent.mkdir(parents=True)
        landed.write_text(GOOD)
        published = ingest(ws, str(landed), study="t47d")
        assert published.status == "published"
        version_dir = Path(ws.root.to_path(published.version.uri))
        before = sorted(p.relative_to(root) for p in version_dir.rglob("*"))

        for target in (version_dir, version_dir.parent, root / "datasets" / "t47d"):
            with pytest.raises(InputError) as err:
                ingest(ws, str(target), study="t47d")
            assert err.value.rule == "landing-zone" and "stored data" in err.value.detail

        assert sorted(p.relative_to(root) for p in version_dir.rglob("*")) == before
        assert ws.catalog.resolve("t47d/expr").id == published.version.id
    finally:
        ws.close()


def test_the_sweep_leaves_what_ingest_would_refuse_without_taking(t47d_study) -> None:  # type: ignore[no-untyped-def]
    from flows.sweep import find_landed

    zone = _zone(t47d_study)
    odd = zone / "t47d" / "rna seq" / "expr.tsv"  # a modality folder that is no modality name
    odd.parent.mkdir(parents=True)
    odd.write_text(GOOD)
    copying = zone / "t47d" / "expression" / "expr.tsv.part"  # another tool's copy in flight
    copying.parent.mkdir(parents=True)
    copying.write_text(GOOD[:10])

    (entry,) = find_landed(t47d_study, min_age_seconds=0)
    assert entry.modality == "rna seq" and entry.status == "bad-name"
    with pytest.raises(InputError) as err:
        ingest(t47d_study, str(copying), study="t47d")
    assert err.value.rule == "partial" and copying.read_text() == GOOD[:10]


def test_a_dead_runs_claim_is_given_back_and_announced_again(t47d_study, land) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from flows.sweep import find_landed
    from resistomics.pipeline._landing import claim_landed

    src = _zone(t47d_study).parent / "expr.tsv"
    src.write_text(GOOD)
    landed = land(t47d_study, src, "t47d")
    claim = claim_landed(t47d_study, landed)
    assert not Path(landed).exists() and find_landed(t47d_study, min_age_seconds=0) == []

    # the claim as a run killed after claiming leaves it: its process is gone
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    record = Path(claim.directory) / ".claim.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "pid": int(dead.stdout)}))

    (entry,) = find_landed(t47d_study, min_age_seconds=0)

    assert entry.path == landed and entry.status == "announced"
    assert Path(landed).read_text() == GOOD and not Path(claim.directory).exists()
    assert ingest(t47d_study, landed, study="t47d").status == "published"


def _claimed(ws, land, name: str = "expr.tsv"):  # type: ignore[no-untyped-def]
    from resistomics.pipeline._landing import claim_landed

    src = _zone(ws).parent / name
    src.write_text(GOOD)
    landed = land(ws, src, "t47d")
    claim = claim_landed(ws, landed)
    record = Path(claim.directory) / ".claim.json"
    return landed, claim, record


def _rewrite(record: Path, **changes: object) -> None:
    record.write_text(json.dumps({**json.loads(record.read_text()), **changes}))


def test_a_claim_records_its_owner_and_a_live_owner_keeps_it(t47d_study, land) -> None:  # type: ignore[no-untyped-def]
    import socket
    from datetime import UTC, datetime

    from resistomics.pipeline import release_abandoned_claims

    landed, claim, record = _claimed(t47d_study, land)
    owner = json.loads(record.read_text())
    assert owner["host"] == socket.gethostname() and owner["pid"] == os.getpid()
    assert abs(owner["process_start"] - _start_by_ps()) < 2
    assert datetime.fromisoformat(owner["claimed_at"]) <= datetime.now(UTC)
    # this process is alive and is the one that claimed: nothing is given back, ever
    far = datetime(2100, 1, 1, tzinfo=UTC)
    assert release_abandoned_claims(t47d_study, now=far) == []
    assert Path(claim.path).exists() and not Path(landed).exists()


def _start_by_ps() -> float:
    """This process's start time from ps (an oracle independent of /proc parsing)."""
    import subprocess
    from datetime import UTC, datetime

    out = subprocess.run(
        ["ps", "-o", "lstart=", "-p", str(os.getpid())],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C", "TZ": "UTC"},
    )
    return (
        datetime.strptime(out.stdout.strip(), "%a %b %d %H:%M:%S %Y")
        .replace(tzinfo=UTC)
        .timestamp()
    )


def test_a_claim_whose_pid_now_names_another_process_is_given_back(t47d_study, land) -> None:  # type: ignore[no-untyped-def]
    from resistomics.pipeline import release_abandoned_claims

    landed, claim, record = _claimed(t47d_study, land)
    # the pid is alive (this test's own), but it started long after the claiming process:
    # the claimer died and its pid was reused
    _rewrite(record, process_start=json.loads(record.read_text())["process_start"] - 3600)
    assert release_abandoned_claims(t47d_study) == [landed]
    assert Path(landed).read_text() == GOOD and not Path(claim.directory).exists()


def test_a_claim_of_another_host_is_given_back_by_the_sweep_once_stale(t47d_study, land) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from flows.sweep import find_landed
    from resistomics.pipeline import release_abandoned_claims

    landed, claim, record = _claimed(t47d_study, land)
    claimed_at = datetime.now(UTC) - timedelta(hours=2)
    # another host's process cannot be checked from here: a pid that is dead *here* means
    # nothing, only the claim's age does
    _rewrite(record, host="other-node.example", pid=999_999_999, claimed_at=claimed_at.isoformat())
    assert t47d_study.settings.claim_stale_after_hours == 24
    assert release_abandoned_claims(t47d_study) == []
    assert find_landed(t47d_study, min_age_seconds=0) == [] and Path(claim.path).exists()
    assert release_abandoned_claims(t47d_study, now=claimed_at + timedelta(hours=23.9)) == []

    # past the setting (here 1 h), the sweep gives it back and announces it again
    t47d_study.settings.claim_stale_after_hours = 1.0
    (entry,) = find_landed(t47d_study, min_age_seconds=0)
    assert entry.path == landed and entry.status == "announced"
    assert Path(landed).read_text() == GOOD and not Path(claim.directory).exists()
    assert ingest(t47d_study, landed, study="t47d").status == "published"


def test_a_claim_recorded_without_a_time_ages_by_its_record(t47d_study, land) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from resistomics.pipeline import release_abandoned_claims

    landed, _claim, record = _claimed(t47d_study, land)
    _rewrite(record, host="other-node.example")
    owner = json.loads(record.read_text())
    del owner["claimed_at"], owner["process_start"]  # as an older release wrote it
    record.write_text(json.dumps(owner))
    now = datetime.now(UTC)
    assert release_abandoned_claims(t47d_study, now=now + timedelta(hours=23)) == []
    assert release_abandoned_claims(t47d_study, now=now + timedelta(hours=25)) == [landed]
    assert Path(landed).exists()


def test_a_claim_folder_left_without_its_record_is_removed_once_stale(t47d_study) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from resistomics.pipeline import release_abandoned_claims

    intake = _zone(t47d_study) / ".intake"
    empty, torn, holding = (intake / n for n in ("a" * 16, "b" * 16, "c" * 16))
    for d in (empty, torn, holding):
        d.mkdir(parents=True)
    (torn / ".claim.json").write_text('{"landed": "/x/y", "ho')  # cut mid-write
    (holding / "expr.tsv").write_text(GOOD)  # cannot happen (record first), kept if it does
    now = datetime.now(UTC)
    assert release_abandoned_claims(t47d_study, now=now) == []
    assert empty.exists() and torn.exists()  # young: a claim may be being written
    assert release_abandoned_claims(t47d_study, now=now + timedelta(hours=25)) == []
    assert not empty.exists() and not torn.exists()
    assert (holding / "expr.tsv").read_text() == GOOD
