"""The registry of modalities: built-ins registered explicitly, others by entry point.

As xarray's ``list_engines()``: the built-in modalities are listed here by name (their
modules are imported when the registry is first asked, never as an import side effect),
and any installed package can add one through the entry-point group
``resistomics.modalities``::

    # the plugin's pyproject.toml
    [project.entry-points."resistomics.modalities"]
    methylation = "resistomics_methylation:MethylationModality"

The object an entry point names is a :class:`~resistomics.modalities.Modality` subclass
(instantiated without arguments) or instance. A plugin may not shadow a built-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel

from resistomics.dataset_types import add_schema_dir
from resistomics.errors import ConfigError, InputError, MethodInputError, UnknownNameError
from resistomics.modalities._plugin import Analysis, Modality

__all__ = [
    "ENTRY_POINT_GROUP",
    "analysis_for_result",
    "guess_modality",
    "modalities",
    "modality",
    "modality_names",
    "plot_dataset",
    "plot_options",
    "plots_available",
    "reader_for",
    "refresh",
]

ENTRY_POINT_GROUP = "resistomics.modalities"

#: The built-in modalities: registry name -> "module:class".
BUILTINS: dict[str, str] = {
    "expression": "resistomics.modalities.expression._modality:ExpressionModality",
    "variants": "resistomics.modalities.variants._modality:VariantsModality",
    "methylation": "resistomics.modalities.methylation._modality:MethylationModality",
    "metabolomics": "resistomics.modalities.metabolomics._modality:MetabolomicsModality",
    "spatial": "resistomics.modalities.spatial._modality:SpatialModality",
    "accessibility": "resistomics.modalities.accessibility._modality:AccessibilityModality",
}


def _load(target: Any, origin: str) -> Modality:
    obj = target() if isinstance(target, type) else target
    if not isinstance(obj, Modality):
        raise ConfigError(f"{origin} is not a resistomics Modality (got {type(obj).__name__})")
    return obj


def _import(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


@cache
def modalities() -> dict[str, Modality]:
    """Every registered modality by name: built-ins, then installed entry points."""
    out = {name: _load(_import(spec), spec) for name, spec in BUILTINS.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        origin = f"entry point {ep.name} = {ep.value}"
        if ep.name in out:
            raise ConfigError(f"{origin}: a modality named {ep.name!r} is already registered")
        m = _load(ep.load(), origin)
        if m.name != ep.name:
            raise ConfigError(f"{origin}: the modality calls itself {m.name!r}")
        out[m.name] = m
    for m in out.values():
        if m.schemas is not None:
            add_schema_dir(m.schemas)
    return out


def refresh() -> None:
    """Forget what was loaded (after installing a plugin in a running process; tests)."""
    modalities.cache_clear()


def modality_names() -> list[str]:
    return sorted(modalities())


def modality(name: str) -> Modality:
    """The modality ``name``.

    Raises
    ------
    UnknownNameError
        (also a ``KeyError``) listing the registered modalities and the closest match.
    """
    try:
        return modalities()[name]
    except KeyError:
        raise UnknownNameError("modality", name, modalities()) from None


def reader_for(
    modality_name: str, path: str, fmt: str | None = None
) -> tuple[str, Callable[..., Any]]:
    """``(format, read function)`` for ``path``: by explicit format, else by guessing."""
    m = modality(modality_name)
    r = m.reader(fmt) if fmt is not None else m.guess_reader(path)
    return r.name, r.read


def guess_modality(path: str) -> Modality:
    """The modality whose reader recognises ``path``: the longest matching suffix wins,
    and between equally long ones a reader that recognised the content
    (:attr:`Reader.sniffs`, e.g. DSS's ``chr pos N X`` header in a ``.txt``) wins over
    one that goes by the name; a full tie goes to the first registered.

    Raises
    ------
    InputError
        Rule ``modality`` when no registered reader recognises the file.
    """
    lower = path.lower().rstrip("/")
    best: tuple[tuple[int, bool], Modality] | None = None
    for m in modalities().values():
        for r in m.readers:
            if not r.guess_can_open(path):
                continue
            length = max((len(s) for s in r.suffixes if lower.endswith(s)), default=0)
            if best is None or (length, r.sniffs) > best[0]:
                best = ((length, r.sniffs), m)
    if best is None:
        # Nothing opens it (a FIFO, a broken link): go by the name alone, so the landing
        # step can say what is wrong with the entry itself.
        for m in modalities().values():
            for length in (len(s) for s in m.suffixes() if lower.endswith(s)):
                if best is None or (length, False) > best[0]:
                    best = ((length, False), m)
    if best is None:
        raise InputError(
            path,
            "modality",
            f"no reader recognises this file; give --modality ({', '.join(modality_names())})",
        )
    return best[1]


def analysis_for_result(dataset_type: str) -> tuple[Modality, Analysis]:
    """The modality and analysis that publish results of ``dataset_type``."""
    found = {a.result_type: (m, a) for m in modalities().values() for a in m.analyses}
    try:
        return found[dataset_type]
    except KeyError:
        raise UnknownNameError("result type", dataset_type, found) from None


def plots_available() -> dict[str, str]:
    """What can be plotted: ``<modality> datasets`` and result types, with what is drawn."""
    out: dict[str, str] = {}
    for m in modalities().values():
        if m.plot_description:
            out[f"{m.name} datasets"] = m.plot_description
        for a in m.analyses:
            if a.plot is not None:
                out[a.result_type] = f"{a.name} ({m.name})"
    return out


def plot_options() -> dict[str, type[BaseModel]]:
    """The options each plot declares, keyed as :func:`plots_available` (plots without
    options have :class:`~resistomics.modalities.NoOptions`, which has no fields)."""
    out: dict[str, type[BaseModel]] = {}
    for m in modalities().values():
        if m.plot_description:
            out[f"{m.name} datasets"] = m.plot_options
        for a in m.analyses:
            if a.plot is not None:
                out[a.result_type] = a.plot_options
    return out


def plot_dataset(ws: Any, version: Any, output: Any, **options: Any) -> Any:
    """Plot a published dataset: a result with its analysis's plot, a source dataset with
    its modality's plot. Returns the path written.

    ``options`` are validated against the plot's declared options
    (:attr:`Analysis.plot_options`, :attr:`Modality.plot_options`) before anything is
    read or drawn; the plot function gets every declared field (defaults included).

    Raises
    ------
    MethodInputError
        For a dataset nothing can plot; the message lists what can be plotted.
    InputError
        Rule ``option`` for an option the plot does not declare (did-you-mean) or a value
        it does not accept.
    """
    draw: Callable[..., Any] | None = None
    parse: Callable[[Any], Any] | None = None
    if version.kind == "result":
        try:
            _, analysis = analysis_for_result(version.dataset_type)
            draw, parse = analysis.plot, analysis.parse_plot_options
        except UnknownNameError:
            pass
    else:
        try:
            m = modality(version.modality)
            if m.plot_description:
                draw, parse = m.plot, m.parse_plot_options
        except UnknownNameError:
            pass
    if draw is None or parse is None:
        raise MethodInputError(
            f"no plot for {version.dataset_type}; plots exist for "
            + "; ".join(f"{k}: {v}" for k, v in plots_available().items()),
            place=version.ref,
            rule="plot",
        )
    validated = parse(options)
    return draw(ws, version, output, **dict(validated))
