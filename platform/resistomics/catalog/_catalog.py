"""The catalog: what exists, what is published, and where each version came from.

Every state change is one transaction, so a crash at any point leaves the catalog
consistent: a version is either staged (invisible to readers), published, quarantined
or superseded. Readers resolve datasets only through :meth:`Catalog.resolve`, which
returns published versions.

Concurrency. Many processes may write at once (ingests of different datasets run in
parallel on PostgreSQL). Every write transaction that decides something from what it
read first takes the study's lock: ``SELECT ... FOR UPDATE`` of the study row on
PostgreSQL; on SQLite every write transaction is ``BEGIN IMMEDIATE`` (the database's
one write lock, waited for with a busy timeout), so it reads what the previous writer
committed. Under that lock a dataset row is got or created, a version number chosen,
and a publication checked against the versions already published, so two ingests of
the same bytes publish one version and the other finds it (see
:meth:`Catalog.publish_version`). The database enforces the invariants as well
(partial unique indexes, :class:`~resistomics.catalog._models.Version`). A transaction
that fails for a reason that a retry can cure (the server restarted or dropped the
connection, a deadlock or serialisation failure, SQLite's lock still held after the busy
timeout) is retried as a whole, with backoff, for up to ``retry_seconds``; then it fails
with :class:`~resistomics.errors.CatalogUnavailableError`.
"""

from __future__ import annotations

import difflib
import enum
import functools
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from resistomics.catalog._models import (
    Contrast,
    Dataset,
    DatasetKind,
    DesignChange,
    Sample,
    Study,
    Subject,
    Version,
    VersionStatus,
    version_identity,
)
from resistomics.catalog._pseudonyms import SubjectPseudonyms
from resistomics.catalog._samplesheet import SampleRow
from resistomics.catalog._schema import SchemaChange, bring_to_head
from resistomics.errors import (
    CatalogError,
    CatalogUnavailableError,
    DatasetNotFoundError,
    DesignChangeError,
    PrivacyError,
)
from resistomics.names import check_name

__all__ = [
    "Catalog",
    "ContrastInfo",
    "DesignChangeInfo",
    "RegistrationSummary",
    "VersionInfo",
    "version_identity",
]

# PostgreSQL SQLSTATEs a retried transaction can get past: the server shutting down or
# starting up, a connection lost, a serialisation failure or deadlock.
_TRANSIENT_SQLSTATES = {"57P01", "57P02", "57P03", "40001", "40P01"}


@dataclass(frozen=True)
class VersionInfo:
    """A dataset version as the rest of the platform sees it."""

    id: int
    study: str
    dataset: str
    modality: str
    dataset_type: str
    kind: DatasetKind
    number: int
    uri: str
    format: str
    layout: str
    layout_version: int
    manifest_digest: str | None
    digest: str
    schema_version: str
    shape: tuple[int, ...]
    status: VersionStatus
    source_uri: str | None
    run_id: str | None
    code_version: str
    parameters: dict[str, Any] = field(default_factory=dict)
    validation_report: dict[str, Any] = field(default_factory=dict)
    parent_ids: tuple[int, ...] = ()
    created_at: datetime | None = None

    @property
    def ref(self) -> str:
        """``study/dataset@vN``, the name users type."""
        return f"{self.study}/{self.dataset}@v{self.number}"


@dataclass(frozen=True)
class RegistrationSummary:
    study: str
    added: int
    updated: int
    unchanged: int
    design_changes: int = 0  # recorded: values changed after the study published data


@dataclass(frozen=True)
class DesignChangeInfo:
    """A recorded change to a sample's design after the study had published data."""

    study: str
    sample: str
    field: str
    old: Any
    new: Any
    explicit: bool
    changed_at: datetime


def _json_value(value: Any) -> str:
    return json.dumps(value.value if isinstance(value, enum.Enum) else value, default=str)


@dataclass(frozen=True)
class ContrastInfo:
    study: str
    name: str
    column: str
    group_a: str
    group_b: str
    where: dict[str, Any]
    paired_by: str | None


def _info(v: Version) -> VersionInfo:
    return VersionInfo(
        id=v.id,
        study=v.dataset.study.name,
        dataset=v.dataset.name,
        modality=v.dataset.modality,
        dataset_type=v.dataset.dataset_type,
        kind=DatasetKind(v.dataset.kind),
        number=v.number,
        uri=v.uri,
        format=v.format,
        layout=v.layout,
        layout_version=v.layout_version,
        manifest_digest=v.manifest_digest,
        digest=v.digest,
        schema_version=v.schema_version,
        shape=tuple(v.shape or ()),
        status=VersionStatus(v.status),
        source_uri=v.source_uri,
        run_id=v.run_id,
        code_version=v.code_version,
        parameters=dict(v.parameters or {}),
        validation_report=dict(v.validation_report or {}),
        parent_ids=tuple(p.id for p in v.parents),
        created_at=v.created_at,
    )


def _field_changes(
    sample: str, current: dict[str, Any], values: dict[str, Any]
) -> list[tuple[str, str, Any, Any]]:
    """(sample, field, old, new) for each design value that differs; annotations by key."""
    out = []
    for k, new in values.items():
        if k == "annotations":
            old_ann, new_ann = current[k] or {}, new or {}
            for key in sorted(set(old_ann) | set(new_ann)):
                if old_ann.get(key) != new_ann.get(key):
                    out.append((sample, key, old_ann.get(key), new_ann.get(key)))
        elif current[k] != new:
            out.append((sample, k, current[k], new))
    return out


def _pseudonym_mismatch(study: str, recorded: str | None, given: str | None) -> str:
    if recorded is None:
        return (
            f"study {study} is registered with raw subject IDs; pseudonymising it now would "
            "leave them in what it already holds: register the sheet as a new study "
            "with --pseudonymise; nothing was changed"
        )
    if given is None:
        return (
            f"study {study} has pseudonymised subject IDs; register with its key "
            "(RESISTOMICS_PRIVACY__KEY_FILE) and --pseudonymise; nothing was changed"
        )
    return (
        f"study {study} was pseudonymised with another key (fingerprint {recorded}, "
        f"this one {given}): the same subjects would get other pseudonyms; give the "
        "study's key file; nothing was changed"
    )


_READ_ONLY = "resistomics_read_only"


def _sqlite_transactions(engine: Engine) -> None:
    """SQLite: WAL, a busy timeout, and write transactions that take the write lock first.

    pysqlite begins a transaction lazily, at the first write, as ``BEGIN DEFERRED``: a
    transaction that read first then cannot take the write lock once another process
    has committed (SQLite answers "database is locked" at once, whatever the busy
    timeout), and what it read may be stale. So the driver's own transaction handling
    is off and each transaction begins explicitly: ``BEGIN IMMEDIATE`` (waits for the
    write lock, then reads the latest data) unless the session is read-only.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        # the busy timeout first: switching to WAL itself waits for the lock
        cur.execute("PRAGMA busy_timeout=60000")
        # WAL lets flows read while another process publishes
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _transient(exc: DBAPIError) -> bool:
    """Whether a failed transaction can succeed when run again."""
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    module = type(orig).__module__
    if module.startswith("psycopg"):
        # no SQLSTATE: the client could not reach the server (connection refused or
        # closed while it restarts)
        return type(orig).__name__ == "OperationalError"
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def _retried[**P, R](method: Callable[P, R]) -> Callable[P, R]:
    """Run a catalog method (one or more whole transactions) again on a transient failure."""

    @functools.wraps(method)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        catalog = args[0]
        assert isinstance(catalog, Catalog)
        deadline = time.monotonic() + catalog.retry_seconds
        delay = 0.05
        while True:
            try:
                return method(*args, **kwargs)
            except DBAPIError as exc:
                if isinstance(exc, IntegrityError) or not _transient(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    where = catalog.engine.url.render_as_string(hide_password=True)
                    raise CatalogUnavailableError(
                        f"did not answer within {catalog.retry_seconds:g} s "
                        f"({type(exc.orig).__name__}: {str(exc.orig).strip().splitlines()[0]})",
                        place=f"catalog {where}",
                    ) from exc
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    return run


class Catalog:
    """SQL catalog (SQLite by default, PostgreSQL by URL).

    Parameters
    ----------
    url
        A SQLAlchemy URL, e.g. ``sqlite:///data/catalog.sqlite`` or
        ``postgresql+psycopg://user@host/resistomics``.
    """

    def __init__(self, url: str, *, retry_seconds: float = 60.0) -> None:
        self.url = url
        self.retry_seconds = retry_seconds
        # Before the first session: a new catalog is created at the schema head, an old
        # one upgraded (never create_all over an existing catalog).
        self.schema: SchemaChange = bring_to_head(url)
        # pre-ping: a pooled connection that a server restart closed is replaced at
        # checkout instead of failing the next transaction
        self.engine = create_engine(url, future=True, pool_pre_ping=True)
        if url.startswith("sqlite"):
            _sqlite_transactions(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        reader = self.engine.execution_options(**{_READ_ONLY: True})
        self._reads = sessionmaker(reader, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One write transaction: committed on success, rolled back on any error.

        On SQLite it holds the database's write lock from its first statement.
        """
        with self._sessions() as s, s.begin():
            yield s

    @contextmanager
    def _read(self) -> Iterator[Session]:
        """One read-only transaction (on SQLite it takes no write lock)."""
        with self._reads() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # -- studies and samples ---------------------------------------------------------

    def _study(self, s: Session, name: str, *, lock: bool = False) -> Study:
        """The study row; ``lock``: held until the transaction ends (PostgreSQL
        ``FOR UPDATE``; SQLite's write transactions hold the database lock anyway)."""
        q = select(Study).where(Study.name == name)
        study = s.scalar(q.with_for_update() if lock else q)
        if study is None:
            known = list(s.scalars(select(Study.name).order_by(Study.name)))
            close = difflib.get_close_matches(name, known, n=1)
            if close:
                hint = f"did you mean {close[0]!r}?"
            elif known:
                hint = f"studies: {', '.join(known)}"
            else:
                hint = "no study is registered yet"
            raise DatasetNotFoundError(
                f"no study named {name!r} ({hint}); register it with a sample sheet",
                place=f"study {name!r}",
                rule="unknown-study",
            )
        return study

    @_retried
    def studies(self) -> list[str]:
        with self._read() as s:
            return list(s.scalars(select(Study.name).order_by(Study.name)))

    @_retried
    def register_study(
        self,
        name: str,
        rows: Sequence[SampleRow],
        *,
        description: str = "",
        allow_design_change: bool = False,
        pseudonyms: SubjectPseudonyms | None = None,
    ) -> RegistrationSummary:
        """Create or extend a study from validated sample-sheet rows, in one transaction.

        A sample registered again with the same values is left alone; with different
        values it is updated (corrections to a design are normal). Once the study has
        published data, every such change is recorded (:meth:`design_changes`), and
        moving a sample to another subject is refused with
        :class:`~resistomics.errors.DesignChangeError` (nothing changes) unless
        ``allow_design_change``: published results were computed with the old design.

        With ``pseudonyms`` the subject IDs are registered as their pseudonyms (the
        raw IDs go only to the mapping file) and the study records the key's
        fingerprint; a pseudonymised study is only registered again with the same key,
        and a study registered with raw subject IDs is not pseudonymised afterwards
        (:class:`~resistomics.errors.PrivacyError`, nothing changes).
        """
        check_name("study", name)  # it becomes landing/<study>/ and datasets/<study>/
        added = updated = unchanged = 0
        changes: list[tuple[str, str, Any, Any]] = []  # sample, field, old, new
        moves: list[tuple[str, str, str]] = []  # sample, old subject, new subject
        with self.session() as s:
            study = s.scalar(select(Study).where(Study.name == name).with_for_update())
            key = pseudonyms.key_id if pseudonyms is not None else None
            if study is not None and study.pseudonym_key != key:
                raise PrivacyError(_pseudonym_mismatch(name, study.pseudonym_key, key))
            if study is None:
                study = Study(name=name, description=description, pseudonym_key=key)
                s.add(study)
                s.flush()
            if pseudonyms is not None:
                rows = pseudonyms.pseudonymise(name, rows)
            published = self._published_sources(s, study)
            subjects = {sub.name: sub for sub in study.subjects}
            samples = {smp.name: smp for smp in study.samples}
            for row in rows:
                subject = subjects.get(row.subject_id)
                if subject is None:
                    subject = Subject(study=study, name=row.subject_id, kind=row.subject_kind)
                    s.add(subject)
                    subjects[row.subject_id] = subject
                values = {
                    "timepoint": row.timepoint,
                    "phase": row.phase,
                    "treatment": row.treatment,
                    "response": row.response,
                    "batch": row.batch,
                    "site": row.site,
                    "annotations": dict(row.annotations),
                }
                existing = samples.get(row.sample_id)
                if existing is None:
                    s.add(Sample(study=study, subject=subject, name=row.sample_id, **values))
                    added += 1
                    continue
                current = {k: getattr(existing, k) for k in values}
                if current == values and existing.subject.name == row.subject_id:
                    unchanged += 1
                    continue
                if existing.subject.name != row.subject_id:
                    moves.append((row.sample_id, existing.subject.name, row.subject_id))
                    changes.append(
                        (row.sample_id, "subject_id", existing.subject.name, row.subject_id)
                    )
                changes += _field_changes(row.sample_id, current, values)
                for k, v in values.items():
                    setattr(existing, k, v)
                existing.subject = subject
                updated += 1
            if moves and published and not allow_design_change:
                sample, old, new = moves[0]
                more = f" (and {len(moves) - 1} more)" if len(moves) > 1 else ""
                refs = ", ".join(published[:3]) + (", ..." if len(published) > 3 else "")
                raise DesignChangeError(
                    f"sample {sample!r} would move from subject {old!r} to "
                    f"{new!r}{more}, but data of this study were published with the current "
                    f"design ({refs}); a change of design must be explicit: register with "
                    "--allow-design-change (it is recorded); nothing was changed",
                    place=f"study {name}",
                )
            if published:
                for sample, field, old, new in changes:
                    s.add(
                        DesignChange(
                            study_id=study.id,
                            sample=sample,
                            field=field,
                            old_value=_json_value(old),
                            new_value=_json_value(new),
                            explicit=field == "subject_id",  # allowed explicitly
                        )
                    )
        recorded = len(changes) if published else 0
        return RegistrationSummary(name, added, updated, unchanged, recorded)

    def pseudonym_key(self, study: str) -> str | None:
        """The fingerprint of the key the study's subject IDs are pseudonymised with
        (``None``: raw IDs, or no such study yet)."""
        with self.session() as s:
            st = s.scalar(select(Study).where(Study.name == study))
            return st.pseudonym_key if st is not None else None

    @staticmethod
    def _published_sources(s: Session, study: Study) -> list[str]:
        """``study/dataset@vN`` of every published or superseded source version."""
        rows = s.execute(
            select(Dataset.name, Version.number)
            .join(Version)
            .where(
                Dataset.study_id == study.id,
                Dataset.kind == DatasetKind.SOURCE,
                Version.status.in_([VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED]),
            )
            .order_by(Dataset.name, Version.number)
        )
        return [f"{study.name}/{d}@v{n}" for d, n in rows]

    @_retried
    def design_changes(self, study: str) -> list[DesignChangeInfo]:
        """Changes to the study's design made after it had published data, oldest first."""
        with self._read() as s:
            st = self._study(s, study)
            rows = s.scalars(
                select(DesignChange).where(DesignChange.study_id == st.id).order_by(DesignChange.id)
            )
            return [
                DesignChangeInfo(
                    study=study,
                    sample=c.sample,
                    field=c.field,
                    old=json.loads(c.old_value) if c.old_value is not None else None,
                    new=json.loads(c.new_value) if c.new_value is not None else None,
                    explicit=c.explicit,
                    changed_at=c.changed_at,
                )
                for c in rows
            ]

    @_retried
    def samples(self, study: str) -> pd.DataFrame:
        """The study design as a table, one row per sample, indexed by ``sample_id``.

        Columns: ``subject_id``, ``subject_kind``, ``timepoint``, ``phase``,
        ``treatment``, ``response``, ``batch``, ``site``, then every annotation.
        """
        with self._read() as s:
            st = self._study(s, study)
            records = []
            for smp in sorted(st.samples, key=lambda x: x.name):
                rec: dict[str, Any] = {
                    "sample_id": smp.name,
                    "subject_id": smp.subject.name,
                    "subject_kind": smp.subject.kind,
                    "timepoint": smp.timepoint,
                    "phase": smp.phase.value if smp.phase else None,
                    "treatment": smp.treatment,
                    "response": smp.response.value if smp.response else None,
                    "batch": smp.batch,
                    "site": smp.site,
                }
                for k, v in (smp.annotations or {}).items():
                    rec.setdefault(k, v)
                records.append(rec)
        frame = pd.DataFrame.from_records(records)
        if frame.empty:
            return frame
        return frame.set_index("sample_id", drop=False)

    # -- contrasts -----------------------------------------------------------------

    @_retried
    def save_contrast(
        self,
        study: str,
        *,
        column: str,
        group_a: str,
        group_b: str,
        where: dict[str, Any] | None = None,
        paired_by: str | None = None,
        name: str | None = None,
    ) -> ContrastInfo:
        where = dict(where or {})
        cond = ",".join(f"{k}={v}" for k, v in sorted(where.items()))
        name = name or f"{column}:{group_a} vs {group_b}" + (f" [{cond}]" if cond else "")
        with self.session() as s:
            st = self._study(s, study)
            c = s.scalar(select(Contrast).where(Contrast.study_id == st.id, Contrast.name == name))
            if c is None:
                c = Contrast(study_id=st.id, name=name)
                s.add(c)
            c.column, c.group_a, c.group_b, c.where, c.paired_by = (
                column,
                group_a,
                group_b,
                where,
                paired_by,
            )
        return ContrastInfo(study, name, column, group_a, group_b, where, paired_by)

    @_retried
    def contrasts(self, study: str) -> list[ContrastInfo]:
        with self._read() as s:
            st = self._study(s, study)
            rows = s.scalars(select(Contrast).where(Contrast.study_id == st.id))
            return [
                ContrastInfo(study, c.name, c.column, c.group_a, c.group_b, c.where, c.paired_by)
                for c in rows
            ]

    # -- datasets and versions -------------------------------------------------------

    @_retried
    def stage_version(
        self,
        *,
        study: str,
        dataset: str,
        modality: str,
        dataset_type: str,
        uri: str,
        format: str,
        layout: str,
        layout_version: int,
        digest: str,
        schema_version: str,
        shape: Sequence[int],
        code_version: str,
        kind: DatasetKind | str = DatasetKind.SOURCE,
        source_uri: str | None = None,
        run_id: str | None = None,
        parameters: dict[str, Any] | None = None,
        parents: Sequence[int] = (),
    ) -> VersionInfo:
        """Record a new version in state *staged* (invisible to readers).

        ``layout``/``layout_version`` name the versioned on-disk layout the version is
        written in (e.g. ``sparse-matrix`` 1); ``kind`` tells landed data (``source``)
        from computed results (``result``) and is fixed when the dataset is created.
        """
        kind = DatasetKind(kind)
        with self.session() as s:
            st = self._study(s, study, lock=True)  # number and dataset chosen under it
            ds = self._dataset(
                s, st, dataset, modality=modality, dataset_type=dataset_type, kind=kind
            )
            if ds.kind != kind:
                raise CatalogError(
                    f"dataset {study}/{dataset} is a {ds.kind.value} dataset, not {kind.value}"
                )
            elif ds.dataset_type != dataset_type:
                # Only published data fixes a dataset's type: attempts that were all
                # quarantined (or are still staged) leave it free to change.
                if self._has_published(s, ds):
                    raise CatalogError(
                        f"dataset {study}/{dataset} holds {ds.dataset_type!r}, not {dataset_type!r}"
                    )
                ds.dataset_type, ds.modality = dataset_type, modality
            number = (
                s.scalar(select(func.max(Version.number)).where(Version.dataset_id == ds.id)) or 0
            ) + 1
            v = Version(
                dataset=ds,
                number=number,
                uri=uri,
                format=format,
                layout=layout,
                layout_version=layout_version,
                digest=digest,
                identity=version_identity(digest, (parameters or {}).get("landing")),
                schema_version=schema_version,
                shape=list(shape),
                status=VersionStatus.STAGED,
                source_uri=source_uri,
                run_id=run_id,
                code_version=code_version,
                parameters=dict(parameters or {}),
            )
            s.add(v)
            if parents:
                v.parents = list(s.scalars(select(Version).where(Version.id.in_(parents))))
            s.flush()
            return _info(v)

    @staticmethod
    def _dataset(
        s: Session, st: Study, name: str, *, modality: str, dataset_type: str, kind: DatasetKind
    ) -> Dataset:
        """The study's dataset ``name``, created if missing.

        Callers hold the study's lock, so no other transaction creates it meanwhile; a
        writer that does not (an older release) makes the insert fail on the unique
        (study, name), and the row it created is used instead.
        """
        q = select(Dataset).where(Dataset.study_id == st.id, Dataset.name == name)
        ds = s.scalar(q)
        if ds is not None:
            return ds
        try:
            with s.begin_nested():
                ds = Dataset(
                    study=st, name=name, modality=modality, dataset_type=dataset_type, kind=kind
                )
                s.add(ds)
                s.flush()
        except IntegrityError:
            ds = s.scalar(q)
            if ds is None:
                raise
        return ds

    @staticmethod
    def _has_published(s: Session, ds: Dataset) -> bool:
        published = (VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED)
        return (
            s.scalar(
                select(func.count())
                .select_from(Version)
                .where(Version.dataset_id == ds.id, Version.status.in_(published))
            )
            or 0
        ) > 0

    @_retried
    def set_shape(self, version_id: int, shape: Sequence[int]) -> None:
        """Record the shape of a still staged version (once its writer knows it)."""
        with self.session() as s:
            v = s.get(Version, version_id)
            if v is not None and v.status == VersionStatus.STAGED:
                v.shape = list(shape)

    @_retried
    def set_uri(self, version_id: int, uri: str) -> None:
        with self.session() as s:
            v = s.get(Version, version_id)
            if v is None or v.status != VersionStatus.STAGED:
                raise CatalogError(f"version {version_id} is not staged")
            v.uri = uri

    def publish_version(
        self,
        version_id: int,
        report: dict[str, Any],
        *,
        manifest_digest: str | None = None,
        same_as: Literal["dataset", "study"] = "dataset",
    ) -> VersionInfo:
        """Publish a staged version and supersede the previous one, atomically.

        ``manifest_digest`` is the digest of the version's file manifest (the stored
        files' SHA-256s), which integrity checks verify the files against.

        Under the study's lock, a version with the same identity (content digest and
        landing options) already published or superseded in the dataset -- or anywhere
        in the study with ``same_as="study"`` (the same file delivered under another
        name) -- wins: this staged version is deleted instead and *that* version is
        returned (its ``id`` differs from ``version_id``); the caller removes the staged
        files. So two ingests of the same bytes at once publish one version.

        Version numbers decide, not the order publishes finish in: when a higher-numbered
        version of the dataset (staged after this one) is published already, this one is
        recorded as published-and-superseded at once (status ``superseded``, with its
        report and manifest, resolvable when pinned) and the newer stays published. So
        two different files staged into one dataset at once always end with the later
        number published.

        Idempotent across a lost acknowledgement: when the COMMIT reached the database
        but the connection dropped before its answer, the retry (see ``_retried``) finds
        the version no longer staged. If it is published (or superseded) with this very
        ``manifest_digest``, that is this publication and the retry returns it; if the
        version is gone and a version of the same identity is published where this one
        would have been compared (the first attempt deleted it in favour of that one),
        that one is returned. Anything else (another manifest, quarantined, no manifest
        given) still raises :class:`~resistomics.errors.CatalogError`.
        """
        seen: dict[str, Any] = {}  # what an earlier attempt of this call read
        return self._publish(version_id, report, manifest_digest, same_as, seen)

    @_retried
    def _publish(
        self,
        version_id: int,
        report: dict[str, Any],
        manifest_digest: str | None,
        same_as: Literal["dataset", "study"],
        seen: dict[str, Any],
    ) -> VersionInfo:
        done = (VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED)

        def identical(
            s: Session, identity: str | None, dataset_id: int, study_id: int
        ) -> Version | None:
            same = (
                select(Version)
                .join(Dataset)
                .where(
                    Version.identity == identity,
                    Version.status.in_(done),
                    Version.id != version_id,
                )
                .order_by(Version.id.desc())
            )
            same = (
                same.where(Dataset.study_id == study_id)
                if same_as == "study"
                else same.where(Version.dataset_id == dataset_id)
            )
            return s.scalars(same).first()

        with self.session() as s:
            v = s.get(Version, version_id)
            if v is None:
                if seen:  # an attempt before this one saw it staged and may have deleted it
                    self._study(s, seen["study"], lock=True)
                    existing = identical(s, seen["identity"], seen["dataset_id"], seen["study_id"])
                    if existing is not None:
                        return _info(existing)
                raise DatasetNotFoundError(f"no version with id {version_id}")
            study = self._study(s, v.dataset.study.name, lock=True)
            s.refresh(v)  # as committed by whoever held the lock before us
            if v.status != VersionStatus.STAGED:
                if (
                    manifest_digest is not None
                    and v.status in done
                    and v.manifest_digest == manifest_digest
                ):
                    return _info(v)  # this publication, its acknowledgement lost
                raise CatalogError(f"version {v.id} is {v.status.value}, not staged")
            seen.update(
                study=study.name, study_id=study.id, dataset_id=v.dataset_id, identity=v.identity
            )
            existing = identical(s, v.identity, v.dataset_id, study.id)
            if existing is not None:
                v.parents = []
                s.delete(v)
                return _info(existing)
            current = s.scalars(
                select(Version).where(
                    Version.dataset_id == v.dataset_id,
                    Version.status == VersionStatus.PUBLISHED,
                )
            ).all()
            newer = any(old.number > v.number for old in current)
            if not newer:
                for old in current:
                    old.status = VersionStatus.SUPERSEDED
                s.flush()  # the partial unique index allows one published version
            v.status = VersionStatus.SUPERSEDED if newer else VersionStatus.PUBLISHED
            v.validation_report = report
            v.manifest_digest = manifest_digest
            v.published_at = datetime.now(UTC)
            s.flush()
            return _info(v)

    @_retried
    def find_identical(
        self, study: str, *, digest: str, landing: Any, dataset: str | None = None
    ) -> VersionInfo | None:
        """The newest published or superseded version with this content digest and landing
        options, in ``dataset`` (``None``: any dataset of the study)."""
        with self._read() as s:
            st = self._study(s, study)
            q = (
                select(Version)
                .join(Dataset)
                .where(
                    Dataset.study_id == st.id,
                    Version.identity == version_identity(digest, landing),
                    Version.status.in_([VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED]),
                )
                .order_by(Version.id.desc())
            )
            if dataset is not None:
                q = q.where(Dataset.name == dataset)
            v = s.scalars(q).first()
            return _info(v) if v is not None else None

    @_retried
    def quarantine_version(self, version_id: int, report: dict[str, Any], uri: str) -> VersionInfo:
        with self.session() as s:
            v = s.get(Version, version_id)
            if v is None:
                raise DatasetNotFoundError(f"no version with id {version_id}")
            v.status = VersionStatus.QUARANTINED
            v.validation_report = report
            v.uri = uri
            s.flush()
            return _info(v)

    @_retried
    def delete_staged(self, version_id: int) -> None:
        """Forget a staged version (its files are gone); published data is never touched."""
        with self.session() as s:
            v = s.get(Version, version_id)
            if v is not None and v.status == VersionStatus.STAGED:
                v.parents = []
                s.delete(v)

    @_retried
    def find_published_by_digest(self, study: str, digest: str) -> VersionInfo | None:
        """A published (or superseded) version with these content bytes, if any."""
        with self._read() as s:
            st = self._study(s, study)
            v = s.scalar(
                select(Version)
                .join(Dataset)
                .where(
                    Dataset.study_id == st.id,
                    Version.digest == digest,
                    Version.status.in_([VersionStatus.PUBLISHED, VersionStatus.SUPERSEDED]),
                )
                .order_by(Version.id.desc())
            )
            return _info(v) if v is not None else None

    @_retried
    def resolve(self, ref: str, *, study: str | None = None) -> VersionInfo:
        """Resolve ``[study/]dataset[@vN]`` to a published (or superseded, if pinned) version."""
        name, _, pin = ref.partition("@")
        if "/" in name:
            study, name = name.split("/", 1)
        if study is None:
            raise DatasetNotFoundError(
                "give the study as study/dataset or --study", place=repr(ref), rule="dataset-ref"
            )
        with self._read() as s:
            st = self._study(s, study)
            ds = s.scalar(select(Dataset).where(Dataset.study_id == st.id, Dataset.name == name))
            if ds is None:
                known = (
                    ", ".join(
                        sorted(
                            d.name
                            for d in s.scalars(select(Dataset).where(Dataset.study_id == st.id))
                        )
                    )
                    or "none"
                )
                raise DatasetNotFoundError(
                    f"no dataset {name!r} in study {study!r} (datasets: {known})",
                    place=repr(ref),
                    rule="unknown-dataset",
                )
            if pin:
                try:
                    number = int(pin.lstrip("v"))
                except ValueError:
                    raise DatasetNotFoundError(
                        "a version must look like @v3", place=repr(ref), rule="dataset-ref"
                    ) from None
                v = s.scalar(
                    select(Version).where(Version.dataset_id == ds.id, Version.number == number)
                )
                if v is None or v.status not in (
                    VersionStatus.PUBLISHED,
                    VersionStatus.SUPERSEDED,
                ):
                    raise DatasetNotFoundError(
                        f"no published version {pin}", place=repr(ref), rule="not-published"
                    )
            else:
                v = s.scalar(
                    select(Version).where(
                        Version.dataset_id == ds.id, Version.status == VersionStatus.PUBLISHED
                    )
                )
                if v is None:
                    raise DatasetNotFoundError(
                        "no published version", place=repr(ref), rule="not-published"
                    )
            return _info(v)

    @_retried
    def get_version(self, version_id: int) -> VersionInfo:
        with self._read() as s:
            v = s.get(Version, version_id)
            if v is None:
                raise DatasetNotFoundError(f"no version with id {version_id}")
            return _info(v)

    @_retried
    def versions(
        self, *, study: str | None = None, status: VersionStatus | None = None
    ) -> list[VersionInfo]:
        with self._read() as s:
            q = select(Version).join(Dataset).join(Study)
            if study is not None:
                self._study(s, study)  # an unknown study is an error, not an empty list
                q = q.where(Study.name == study)
            if status is not None:
                q = q.where(Version.status == status)
            q = q.order_by(Study.name, Dataset.name, Version.number)
            return [_info(v) for v in s.scalars(q)]

    def snapshot(self) -> list[tuple[Any, ...]]:
        """Every version's identity and state, for tests that prove nothing changed."""
        return [
            (v.id, v.study, v.dataset, v.number, v.status.value, v.digest, v.uri)
            for v in self.versions()
        ]
