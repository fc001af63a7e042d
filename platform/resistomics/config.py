"""Settings for every entry point (CLI, flows, tests).

Built once at an entry point with :func:`load_settings` and passed down; library code
never reads the environment itself. Environment variables use the ``RESISTOMICS_``
prefix and ``__`` for nested sections, e.g. ``RESISTOMICS_CLUSTER__N_WORKERS=4``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "ClusterSettings",
    "IngestSettings",
    "InputLimits",
    "PrivacySettings",
    "Settings",
    "load_settings",
]

#: Ingest runs at once by default with a PostgreSQL catalog (row locks let them publish
#: in parallel); a SQLite catalog has one write lock for the whole file, so 1 there.
POSTGRES_INGEST_CONCURRENCY = 4


class ClusterSettings(BaseModel):
    """Where Dask computations run.

    TLS is on when ``tls_ca_file`` is set: every connection is then ``tls://`` with
    certificates signed by that CA (``distributed.Security(require_encryption=True)``),
    and a peer without such a certificate is refused. The client pair is this process's;
    the scheduler and worker pairs are needed by the kinds that start them (``local``,
    ``slurm``). ``deploy/production/tls.py`` makes a set.
    """

    kind: Literal["local", "address", "kubernetes", "slurm"] = "local"
    address: str | None = Field(
        default=None,
        description="Scheduler address (tcp://host:8786, tls://host:8786) when kind=address.",
    )
    n_workers: int = Field(
        default=2, ge=1, description="Workers (local), pods (kubernetes), at most jobs (slurm)."
    )
    threads_per_worker: int = Field(default=1, ge=1)
    memory_limit: str = Field(default="4GiB", description="Per-worker memory limit.")
    processes: bool = True
    dashboard: bool = False
    # TLS (local, address, slurm)
    tls_ca_file: str | None = Field(default=None, description="CA certificate (PEM): TLS on.")
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_scheduler_cert: str | None = None
    tls_scheduler_key: str | None = None
    tls_worker_cert: str | None = None
    tls_worker_key: str | None = None
    # slurm: where the scheduler (in this process) listens for the jobs' workers
    scheduler_host: str = Field(
        default="127.0.0.1",
        description="Scheduler listen address (slurm); ignored when `interface` is set.",
    )
    interface: str | None = Field(
        default=None, description="Network interface of scheduler and workers (slurm), e.g. ib0."
    )
    adaptive: bool = Field(
        default=True,
        description="slurm: adapt between minimum_jobs and n_workers jobs, else always n_workers "
        "(a job that dies is replaced either way).",
    )
    minimum_jobs: int = Field(default=0, ge=0)
    # kubernetes / slurm
    kubernetes_cluster_spec: str | None = Field(
        default=None, description="Path to a DaskCluster YAML (dask-kubernetes)."
    )
    slurm_queue: str | None = None
    slurm_account: str | None = None
    slurm_walltime: str = "02:00:00"
    slurm_job_extra_directives: list[str] = Field(
        default_factory=list, description="Extra #SBATCH lines, e.g. ['--tmp=200G']."
    )
    slurm_log_directory: str | None = Field(
        default=None, description="Folder for the worker jobs' output (else the Dask config's)."
    )
    slurm_python: str | None = Field(
        default=None,
        description="Python of the worker jobs (else the Dask config's, else this process's).",
    )

    @property
    def tls(self) -> bool:
        return self.tls_ca_file is not None

    @model_validator(mode="after")
    def _address_needed(self) -> ClusterSettings:
        if self.kind == "address" and not self.address:
            raise ValueError("cluster.kind=address needs cluster.address (tcp://host:8786)")
        return self

    @model_validator(mode="after")
    def _tls_complete(self) -> ClusterSettings:
        pairs = {"client": (self.tls_client_cert, self.tls_client_key)}
        if self.kind in ("local", "slurm"):
            pairs["scheduler"] = (self.tls_scheduler_cert, self.tls_scheduler_key)
            pairs["worker"] = (self.tls_worker_cert, self.tls_worker_key)
        given = [
            name
            for name in type(self).model_fields
            if name.startswith("tls_") and getattr(self, name) is not None
        ]
        if not self.tls:
            if given:
                raise ValueError(f"cluster.{given[0]} is set but cluster.tls_ca_file is not")
            if self.kind == "address" and (self.address or "").startswith("tls://"):
                raise ValueError(
                    f"cluster.address {self.address} is TLS: set cluster.tls_ca_file, "
                    "tls_client_cert and tls_client_key"
                )
            return self
        for role, (cert, key) in pairs.items():
            if not cert or not key:
                raise ValueError(
                    f"cluster.tls_ca_file is set: cluster.kind={self.kind} also needs "
                    f"cluster.tls_{role}_cert and cluster.tls_{role}_key"
                )
        if self.kind == "address" and not (self.address or "").startswith("tls://"):
            raise ValueError(
                f"cluster.tls_ca_file is set but cluster.address {self.address} is not tls://"
            )
        return self


class PrivacySettings(BaseModel):
    """Pseudonymised subject IDs (``resistomics study register --pseudonymise``)."""

    pseudonymise: bool = Field(
        default=False,
        description="Pseudonymise the subject IDs of every new study (as --pseudonymise).",
    )
    key_file: str | None = Field(
        default=None,
        description="The secret key of the keyed hash; created (mode 0600) on first use. "
        "Must lie outside the data root and the landing zone.",
    )
    mapping_file: str | None = Field(
        default=None,
        description="Pseudonym -> raw subject ID table (mode 0600); default: "
        "subject-pseudonyms.tsv next to the key file. Outside the data root.",
    )

    @property
    def resolved_mapping_file(self) -> str | None:
        if self.mapping_file:
            return self.mapping_file
        if self.key_file:
            return str(Path(self.key_file).expanduser().parent / "subject-pseudonyms.tsv")
        return None


class IngestSettings(BaseModel):
    """How landed files are taken."""

    concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Most ingest flow runs at once (the ingest deployment's concurrency "
        f"limit); default 1 with a SQLite catalog, {POSTGRES_INGEST_CONCURRENCY} with "
        "PostgreSQL. Correctness never depends on it: the catalog's locks and constraints "
        "keep concurrent ingests of the same bytes or dataset to one version.",
    )


class InputLimits(BaseModel):
    """Bounds on what one input file may cost (``RESISTOMICS_LIMITS__<KEY>``).

    A landed file comes from outside: a line or field of gigabytes, a gzip bomb or a
    FIFO must end in a one-line refusal, not exhausted memory or a hung ingest.
    """

    max_line_chars: int = Field(
        default=1 << 20, ge=1024, description="Longest line of a text input (characters)."
    )
    max_field_chars: int = Field(
        default=1 << 16,
        ge=256,
        description="Longest single field (gene ID, barcode, sample name, annotation value).",
    )
    max_inflation_ratio: float = Field(
        default=200.0,
        ge=1.0,
        description="Most bytes a compressed input may inflate to per compressed byte "
        "read so far (real gzip text: 2-10; a gzip bomb: ~1000), checked once the output "
        "passes inflation_floor_bytes.",
    )
    inflation_floor_bytes: int = Field(
        # 16 MiB: real near-all-zero tables compress better than 200x (dense exports
        # of single-cell counts with 99.5-99.9 % zeros: 200-500x at gzip -6/-9, README
        # "Limits against hostile input"), so the ratio alone cannot tell them from a
        # bomb; up to this much any ratio is allowed. Bounded by the bomb tests: each
        # still ends within its 2 GiB memory cap (at 128 MiB the rows bomb did not) and
        # in reasonable time (at 32 MiB it was parsed for over 120 s)
        default=16 << 20,
        ge=0,
        description="Inflated bytes any compressed input may reach whatever its ratio.",
    )
    max_inflated_bytes: int = Field(
        default=64 << 30, ge=1, description="Most bytes any compressed input may inflate to."
    )
    ingest_timeout_seconds: float | None = Field(
        default=6 * 3600.0,
        gt=0,
        description="An ingest task running longer than this fails and its file is "
        "quarantined (rule ingest-timeout); none: no limit.",
    )


class Settings(BaseSettings):
    """All settings of the platform.

    ``data_root`` is an fsspec URL (a plain path means a local folder). The catalog
    defaults to a SQLite file inside a local data root; give a PostgreSQL URL in
    production. The landing zone defaults to ``<data_root>/landing``.
    """

    model_config = SettingsConfigDict(
        env_prefix="RESISTOMICS_", env_nested_delimiter="__", extra="ignore"
    )

    data_root: str = Field(default_factory=lambda: str(Path(".resistomics").absolute()))
    catalog_url: str | None = None
    landing_zone: str | None = None
    storage_options: dict[str, object] = Field(default_factory=dict)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    validation: dict[str, object] = Field(
        default_factory=dict,
        description="Deprecated, removed in the next release: the former "
        "RESISTOMICS_VALIDATION__<KEY> section. Its keys now belong to a modality's section "
        "(RESISTOMICS_MODALITIES__<NAME>__<KEY>); that modality still reads them here, "
        "with a warning, when its own section does not set them.",
    )
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    limits: InputLimits = Field(default_factory=InputLimits)
    # Parameters of the shared sparse-matrix@1 layout (any modality stored in it).
    rows_per_chunk: int = Field(
        default=8192, ge=16, description="Rows (observations) per Zarr chunk of a sparse matrix."
    )
    genes_per_block: int = Field(
        default=1024,
        ge=1,
        description="Columns (features) per block of a sparse matrix's column-major copy.",
    )
    normalize_target_sum: float = Field(default=1e4, gt=0)
    gc_max_disagreement: int = Field(
        default=5,
        ge=0,
        description="Garbage collection refuses to run when more catalog versions lack "
        "their directory plus version directories lack a catalog row than this "
        "(a moved or wrong data root, not crashed writes).",
    )
    claim_stale_after_hours: float = Field(
        default=24.0,
        gt=0,
        description="A landed entry claimed by an ingest on another host (whose process "
        "cannot be checked from here) is given back to the landing zone by the sweep once "
        "the claim is this old; set it above the longest ingest. Claims of this host are "
        "given back as soon as their process is gone.",
    )
    modalities: dict[str, dict[str, object]] = Field(
        default_factory=dict,
        description="One settings section per modality (RESISTOMICS_MODALITIES__<NAME>__<KEY>), "
        "validated by that modality's settings model.",
    )

    @property
    def is_local(self) -> bool:
        return "://" not in self.data_root or self.data_root.startswith("file://")

    @property
    def local_root(self) -> Path:
        return Path(self.data_root.removeprefix("file://"))

    @property
    def resolved_catalog_url(self) -> str:
        if self.catalog_url:
            return self.catalog_url
        if not self.is_local:
            raise ValueError("a remote data_root needs an explicit catalog_url (e.g. PostgreSQL)")
        return f"sqlite:///{self.local_root / 'catalog.sqlite'}"

    @property
    def ingest_concurrency(self) -> int:
        """The ingest concurrency limit: the setting, else the catalog backend's default."""
        if self.ingest.concurrency is not None:
            return self.ingest.concurrency
        sqlite = self.resolved_catalog_url.startswith("sqlite")
        return 1 if sqlite else POSTGRES_INGEST_CONCURRENCY

    @property
    def resolved_landing_zone(self) -> str:
        if self.landing_zone:
            return self.landing_zone
        return self.data_root.rstrip("/") + "/landing"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment, then apply explicit overrides."""
    return Settings(**overrides)  # type: ignore[arg-type]
