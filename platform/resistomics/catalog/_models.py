"""SQLAlchemy tables of the catalog: study design, datasets, versions and lineage."""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def _now() -> datetime:
    return datetime.now(UTC)


def version_identity(digest: str, landing: Any) -> str:
    """What makes two versions of a dataset the same: the content digest and, for landed
    data, the ingest options it was read with (``parameters["landing"]``; results carry
    theirs in the digest already)."""
    doc = json.dumps({"digest": digest, "landing": landing}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Phase(enum.StrEnum):
    """Where in the course of treatment a sample was taken."""

    BASELINE = "baseline"
    ON_TREATMENT = "on-treatment"
    PROGRESSION = "progression"
    RELAPSE = "relapse"


class Response(enum.StrEnum):
    """Clinical or experimental response of the subject at that sample."""

    SENSITIVE = "sensitive"
    RESISTANT = "resistant"
    PARTIAL = "partial"
    UNKNOWN = "unknown"


class DatasetKind(enum.StrEnum):
    """Whether a dataset holds landed data or a computation on other datasets."""

    SOURCE = "source"
    RESULT = "result"


class VersionStatus(enum.StrEnum):
    STAGED = "staged"
    PUBLISHED = "published"
    QUARANTINED = "quarantined"
    SUPERSEDED = "superseded"


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Fingerprint of the key its subject IDs are pseudonymised with; None: raw IDs.
    pseudonym_key: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    subjects: Mapped[list[Subject]] = relationship(back_populates="study")
    samples: Mapped[list[Sample]] = relationship(back_populates="study")


class Subject(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("study_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40), default="patient")
    study: Mapped[Study] = relationship(back_populates="subjects")
    samples: Mapped[list[Sample]] = relationship(back_populates="subject")


class Sample(Base):
    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("study_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    subject_id: Mapped[int] = mapped_column(ForeignKey("subjects.id"))
    name: Mapped[str] = mapped_column(String(200))
    timepoint: Mapped[float | None] = mapped_column(Float, nullable=True)
    phase: Mapped[Phase | None] = mapped_column(
        Enum(Phase, values_callable=lambda e: [m.value for m in e], native_enum=False),
        nullable=True,
    )
    treatment: Mapped[str | None] = mapped_column(String(200), nullable=True)
    response: Mapped[Response | None] = mapped_column(
        Enum(Response, values_callable=lambda e: [m.value for m in e], native_enum=False),
        nullable=True,
    )
    batch: Mapped[str | None] = mapped_column(String(200), nullable=True)
    site: Mapped[str | None] = mapped_column(String(200), nullable=True)
    annotations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    study: Mapped[Study] = relationship(back_populates="samples")
    subject: Mapped[Subject] = relationship(back_populates="samples")


class Contrast(Base):
    __tablename__ = "contrasts"
    __table_args__ = (UniqueConstraint("study_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    name: Mapped[str] = mapped_column(String(300))
    column: Mapped[str] = mapped_column(String(200))
    group_a: Mapped[str] = mapped_column(String(200))
    group_b: Mapped[str] = mapped_column(String(200))
    where: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    paired_by: Mapped[str | None] = mapped_column(String(200), nullable=True)


class DesignChange(Base):
    """One change to a sample's design made after the study had published data."""

    __tablename__ = "design_changes"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    sample: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(200))  # subject_id, phase, ..., or an annotation
    old_value: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    new_value: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    explicit: Mapped[bool] = mapped_column(Boolean)  # needed --allow-design-change
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)


class Dataset(Base):
    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("study_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    name: Mapped[str] = mapped_column(String(300))
    modality: Mapped[str] = mapped_column(String(60))
    dataset_type: Mapped[str] = mapped_column(String(120))
    kind: Mapped[DatasetKind] = mapped_column(
        Enum(DatasetKind, values_callable=lambda e: [m.value for m in e], native_enum=False),
        default=DatasetKind.SOURCE,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    study: Mapped[Study] = relationship()
    versions: Mapped[list[Version]] = relationship(
        back_populates="dataset", order_by="Version.number"
    )


version_parents = Table(
    "version_parents",
    Base.metadata,
    Column("child_id", ForeignKey("versions.id"), primary_key=True),
    Column("parent_id", ForeignKey("versions.id"), primary_key=True),
)


_PUBLISHED = "status = 'published'"
_PUBLISHED_OR_SUPERSEDED = "status IN ('published', 'superseded')"


class Version(Base):
    """One version of a dataset.

    Two invariants are enforced by the database itself (partial unique indexes), so
    concurrent ingests cannot break them whatever the code does: a dataset has at most
    one *published* version, and no two published-or-superseded versions of a dataset
    share an ``identity`` (content digest + landing options, :func:`version_identity`).
    """

    __tablename__ = "versions"
    __table_args__ = (
        UniqueConstraint("dataset_id", "number"),
        Index(
            "uq_versions_one_published",
            "dataset_id",
            unique=True,
            sqlite_where=text(_PUBLISHED),
            postgresql_where=text(_PUBLISHED),
        ),
        Index(
            "uq_versions_identity",
            "dataset_id",
            "identity",
            unique=True,
            sqlite_where=text(_PUBLISHED_OR_SUPERSEDED),
            postgresql_where=text(_PUBLISHED_OR_SUPERSEDED),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id"))
    number: Mapped[int] = mapped_column(Integer)
    uri: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(40))
    layout: Mapped[str] = mapped_column(String(60))
    layout_version: Mapped[int] = mapped_column(Integer)
    manifest_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    digest: Mapped[str] = mapped_column(String(80), index=True)
    # digest + landing options (version_identity); NULL only for duplicates made by
    # concurrent ingests before revision 0006, which keep their rows
    identity: Mapped[str | None] = mapped_column(String(80), nullable=True)
    schema_version: Mapped[str] = mapped_column(String(40))
    shape: Mapped[list[Any]] = mapped_column(JSON, default=list)
    status: Mapped[VersionStatus] = mapped_column(
        Enum(VersionStatus, values_callable=lambda e: [m.value for m in e], native_enum=False),
        default=VersionStatus.STAGED,
    )
    validation_report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    code_version: Mapped[str] = mapped_column(String(60))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=_now)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    dataset: Mapped[Dataset] = relationship(back_populates="versions")
    parents: Mapped[list[Version]] = relationship(
        secondary=version_parents,
        primaryjoin=id == version_parents.c.child_id,
        secondaryjoin=id == version_parents.c.parent_id,
    )
