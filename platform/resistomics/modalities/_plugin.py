"""What a modality is: the one interface every modality (built-in or third-party) implements.

In the spirit of xarray's ``BackendEntrypoint`` and anndata's ``IOSpec``: a modality
declares its readers, its ingest options and settings, how it writes a landed file as a
staged version in one of the shared layouts (:mod:`resistomics.storage`), how it
summarises a stored version for validation, and its analyses. The pipeline, the flows
and the generic CLI only ever talk to this interface through the registry
(:mod:`resistomics.modalities._registry`), so a new modality is one folder under
``modalities/`` plus its dataset types in ``schemas/``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from resistomics.dataset_types import DatasetType, dataset_types
from resistomics.errors import InputError, MethodInputError, UnknownNameError

if TYPE_CHECKING:
    import pandas as pd
    import typer

    from resistomics.catalog import VersionInfo
    from resistomics.config import Settings
    from resistomics.publishing import ResultOutcome, Staging, Workspace

__all__ = [
    "Analysis",
    "Artifact",
    "Modality",
    "NoOptions",
    "Reader",
    "Summaries",
    "Written",
    "deferred",
    "option_flags",
    "parse_options",
]


def deferred(module: str, name: str) -> Callable[..., Any]:
    """The function ``module.name``, imported on its first call.

    A modality's readers and analyses pull in pandas, anndata, cyvcf2 or scipy; the
    registry, the CLI's option checks and ``--help`` need none of them. Declaring
    ``Reader(..., read=deferred("pkg._readers", "read_x"))`` keeps those imports out of
    start-up (``tests/test_cli.py`` checks that the CLI imports none of them).
    """
    target: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        if not target:
            import importlib

            target.append(getattr(importlib.import_module(module), name))
        return target[0](*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__module__ = module
    call.__doc__ = f"{module}.{name}, imported on first use."
    return call


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's module ``__getattr__`` (PEP 562) that imports ``package.<where[name]>``
    on the first use of ``name``, so a modality package exports its readers and analyses
    without importing them at start-up: ``__getattr__ = lazy_exports(__name__, _LAZY)``."""

    def __getattr__(name: str) -> Any:
        if name in where:
            import importlib

            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


@dataclass(frozen=True)
class Reader:
    """One source format a modality reads.

    ``guess_can_open(path)`` must be cheap (suffix, a few header bytes) and never raise;
    ``read(path, context)`` returns whatever the modality's writer consumes and raises
    :class:`~resistomics.errors.InputError` (file, rule, place) for a bad file.
    ``sniffs`` says that ``guess_can_open`` checks the content (a header line), not only
    the name: when readers of two modalities claim a file by equally long suffixes
    (``.txt``), the one that recognised its content wins
    (:func:`~resistomics.modalities.guess_modality`).
    """

    name: str
    suffixes: tuple[str, ...]
    description: str
    guess_can_open: Callable[[str], bool]
    read: Callable[..., Any]
    sniffs: bool = False


@dataclass(frozen=True)
class Written:
    """What a modality's writer reports once the staged version is complete.

    ``summaries`` are the validation summary tables when the writer computed them in its
    streaming pass (saving a second read); without them the pipeline asks
    :meth:`Modality.summarize` on the stored version.
    """

    shape: tuple[int, ...]
    detail: str
    report: Mapping[str, Any] = field(default_factory=dict)
    summaries: Summaries | None = None


@dataclass(frozen=True)
class Summaries:
    """Validation input for a dataset type's suites: summary tables and ``$name`` values."""

    tables: Mapping[str, pd.DataFrame]
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    """A Prefect-free description of something a run shows (flows turn it into an artifact).

    ``key_parts`` become the artifact key (lower-cased, dashes); ``table`` is a frame of
    rows, ``markdown`` a document.
    """

    kind: Literal["table", "markdown"]
    key_parts: tuple[str, ...]
    description: str
    table: pd.DataFrame | None = None
    markdown: str | None = None


class NoOptions(BaseModel):
    """No options: a modality without ingest options, a plot without plot options."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def option_flags(model: type[BaseModel]) -> list[str]:
    """The command-line flags of an options model's fields (``gene_set`` -> ``--gene-set``)."""
    return [f"--{name.replace('_', '-')}" for name in model.model_fields]


def parse_options(
    model: type[BaseModel], values: Mapping[str, Any] | BaseModel | None, *, what: str
) -> Any:
    """Validate ``--name value`` options (names with underscores) into ``model``.

    Ingest options (:meth:`Modality.parse_options`) and plot options
    (:meth:`Analysis.parse_plot_options`) share this, so both say the same things.

    Parameters
    ----------
    model
        The pydantic model declaring the options (``extra="forbid"``).
    values
        Raw values (strings from the command line, or typed), or an instance of ``model``.
    what
        What the options belong to, for the message (``"expression ingest"``).

    Raises
    ------
    InputError
        Rule ``option``, placed at the option and its value (``--values 'z'``), saying
        what it accepts (or, for an unknown option, the closest one).
    """
    if isinstance(values, model):
        return values
    raw = values.model_dump() if isinstance(values, BaseModel) else dict(values or {})
    fields = model.model_fields
    for name in raw:
        if name not in fields:
            flag = f"--{name.replace('_', '-')}"
            unknown = UnknownNameError("option", name, fields)
            hint = (
                f"did you mean --{unknown.suggestion.replace('_', '-')}? "
                if unknown.suggestion
                else ""
            )
            known = ", ".join(option_flags(model)) or "none"
            raise InputError(flag, "option", f"not an option of {what}; {hint}(options: {known})")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        flag = f"--{name.replace('_', '-')} {raw.get(name)!r}"
        ctx = first.get("ctx") or {}
        if first["type"] == "literal_error" and "expected" in ctx:
            message = f"choose {str(ctx['expected']).replace(chr(39), '')}"
        else:
            message = first["msg"]
        raise InputError(flag, "option", message) from None


@dataclass(frozen=True)
class Analysis:
    """One analysis a modality offers on its published datasets.

    Parameters
    ----------
    name
        Short name (``signatures``, ``clonal``): the flow run and artifact keys use it.
    result_type
        The dataset type it publishes (declared in ``schemas/``).
    run
        ``run(ws, ref, *, study, run_id, **parameters) -> ResultOutcome``; raises
        :class:`~resistomics.errors.MethodInputError` or ``InputError`` when the data
        cannot be analysed this way.
    default
        Whether the ``analyse`` deployment runs it on every newly published dataset.
    artifacts
        ``artifacts(ws, result) -> [Artifact]``: what a run shows about its result.
    plot
        ``plot(ws, result, output, **options)``: writes a figure of the result; it is
        called with the fields of :attr:`plot_options` as keyword arguments.
    plot_options
        The plot's options as a pydantic model (``extra="forbid"``; each field's
        ``description`` is its help): ``resistomics plot RESULT -o F --NAME VALUE``
        validates them with :meth:`parse_plot_options` before anything is drawn. The
        default, :class:`NoOptions`, takes none.
    per_contrast
        The analysis compares two arms: the ``analyse`` deployment runs it once per
        contrast registered for the study (``Catalog.contrasts``), passing
        ``contrast=Contrast(...)``; a study without contrasts does not run it (and the
        run says so).
    consumes
        The name of another analysis of the modality whose result this one takes as its
        input: the deployment runs it after each run of that analysis, on that run's
        result ref (so it inherits that run's contrast), and not when that one failed.
    deployment_parameters
        Keyword arguments the ``analyse`` deployment passes to :attr:`run` (where its
        defaults differ from the function's, e.g. smoothing on by default).
    """

    name: str
    result_type: str
    run: Callable[..., ResultOutcome]
    description: str
    default: bool = True
    artifacts: Callable[[Workspace, VersionInfo], Sequence[Artifact]] | None = None
    plot: Callable[..., Path] | None = None
    plot_options: type[BaseModel] = NoOptions
    per_contrast: bool = False
    consumes: str | None = None
    deployment_parameters: Mapping[str, Any] = field(default_factory=dict)

    def parse_plot_options(self, values: Mapping[str, Any] | BaseModel | None) -> Any:
        """Validate plot options into :attr:`plot_options` (see :func:`parse_options`).

        Raises
        ------
        InputError
            Rule ``option``: an option the plot does not declare (with the closest one),
            or a value it does not accept.
        """
        return parse_options(
            self.plot_options, values, what=f"the {self.name} plot ({self.result_type})"
        )


class Modality(ABC):
    """A modality: its name, readers, options, writer, validation summaries and analyses.

    Subclasses set the class attributes and implement :meth:`write` and
    :meth:`summarize`. Register built-ins in :mod:`resistomics.modalities._registry`;
    third-party packages declare an entry point in the group ``resistomics.modalities``
    whose object is a :class:`Modality` subclass or instance.
    """

    #: Registry name, also the folder under ``schemas/`` and the landing-zone folder.
    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: Readers, tried in this order when no format is given.
    readers: ClassVar[tuple[Reader, ...]] = ()
    #: Ingest options (``resistomics ingest --NAME VALUE``), validated at the edge.
    options: ClassVar[type[BaseModel]] = NoOptions
    #: The settings section of this modality (``RESISTOMICS_MODALITIES__<NAME>__...``).
    settings: ClassVar[type[BaseModel]] = NoOptions
    analyses: ClassVar[tuple[Analysis, ...]] = ()
    #: A plugin's own folder of dataset-type YAML files (built-ins live in ``schemas/``).
    schemas: ClassVar[Path | None] = None

    # ------------------------------------------------------------------ declared data
    def dataset_types(self) -> list[DatasetType]:
        """The dataset types this modality's data is stored as (``schemas/<name>/``)."""
        return [t for t in dataset_types().values() if t.modality == self.name]

    def reader(self, fmt: str) -> Reader:
        """The reader of format ``fmt`` (did-you-mean when there is none)."""
        for r in self.readers:
            if r.name == fmt:
                return r
        raise UnknownNameError(f"{self.name} format", fmt, [r.name for r in self.readers])

    def guess_reader(self, path: str) -> Reader:
        """The first reader whose ``guess_can_open`` accepts ``path``.

        Raises
        ------
        InputError
            Rule ``format``, listing this modality's formats, when none does.
        """
        for r in self.readers:
            if r.guess_can_open(path):
                return r
        known = ", ".join(f"{r.name} ({' '.join(r.suffixes)})" for r in self.readers)
        raise InputError(
            path, "format", f"no {self.name} reader recognises this file (formats: {known})"
        )

    def suffixes(self) -> tuple[str, ...]:
        """Every file suffix a reader of this modality claims, longest first."""
        return tuple(sorted({s for r in self.readers for s in r.suffixes}, key=len, reverse=True))

    def analysis(self, name: str) -> Analysis:
        for a in self.analyses:
            if a.name == name:
                return a
        raise UnknownNameError(f"{self.name} analysis", name, [a.name for a in self.analyses])

    def parse_options(self, values: Mapping[str, Any] | BaseModel | None, *, file: str) -> Any:
        """Validate ingest options into :attr:`options` (see :func:`parse_options`).

        Raises
        ------
        InputError
            Rule ``option``, placed at the option and its value (``--values 'z'``), saying
            what it accepts (or, for an unknown option, the closest one).
        """
        return parse_options(self.options, values, what=f"{self.name} ingest")

    def parse_plot_options(self, values: Mapping[str, Any] | BaseModel | None) -> Any:
        """Validate the options of this modality's source-dataset plot (:attr:`plot_options`)."""
        return parse_options(self.plot_options, values, what=f"the {self.name} dataset plot")

    def settings_of(self, settings: Settings) -> Any:
        """This modality's settings section, validated."""
        return self.settings.model_validate(settings.modalities.get(self.name, {}))

    # ------------------------------------------------------------------ behaviour
    @abstractmethod
    def write(self, staging: Staging, reader: Reader, options: Any) -> Written:
        """Read ``staging.local`` with ``reader`` and write it as a staged version.

        Call ``staging.stage(dataset_type=..., layout=...)`` before the first byte goes
        under ``staging.version_dir``; raise ``InputError`` for a bad file (the pipeline
        removes what was staged and quarantines the file).
        """

    @abstractmethod
    def summarize(self, ws: Workspace, version: VersionInfo) -> Summaries:
        """The validation summaries of a stored version (re-validation, integrity)."""

    #: What :meth:`plot` draws of a source dataset ("" when the modality has no such plot).
    plot_description: ClassVar[str] = ""
    #: Options of :meth:`plot` (as :attr:`Analysis.plot_options`); none by default.
    plot_options: ClassVar[type[BaseModel]] = NoOptions

    def plot(self, ws: Workspace, version: VersionInfo, output: Path, **options: Any) -> Path:
        """Draw one of this modality's source datasets to ``output`` (PNG).

        Raises
        ------
        MethodInputError
            When the modality has no plot of its source datasets (the default).
        """
        raise MethodInputError(
            f"no plot for {version.dataset_type}", place=version.ref, rule="plot"
        )

    def default_analyses(self) -> list[Analysis]:
        return [a for a in self.analyses if a.default]

    def commands(self) -> typer.Typer | None:
        """This modality's command group, if it has one; the CLI adds it under the
        group's own name (``typer.Typer(name="signatures")``)."""
        return None

    def __repr__(self) -> str:
        return f"<modality {self.name}: {', '.join(r.name for r in self.readers)}>"
