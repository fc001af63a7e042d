"""Run a dataset type's Great Expectations suites on summary tables.

Every expectation result is read strictly: anything but ``success=True`` is a failure,
including an expectation that raised (GX 1.x reports those as ``success=False`` with
exception info; they are labelled ``error`` in the report, never passed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["ExpectationOutcome", "ValidationReport", "run_expectations"]


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's result in words a person can act on."""

    table: str
    rule: str
    expectation: str
    meaning: str
    success: bool
    errored: bool
    unexpected_count: int
    element_count: int
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.success:
            return f"{self.rule}: ok"
        if self.errored:
            return f"{self.rule}: the check itself failed to run ({self.meaning})"
        ex = f"; e.g. {', '.join(self.examples[:3])}" if self.examples else ""
        return f"{self.rule}: {self.meaning} — {self.unexpected_count} failing{ex}"


@dataclass(frozen=True)
class ValidationReport:
    dataset_type: str
    dataset_type_version: str
    outcomes: list[ExpectationOutcome]
    gx_version: str

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_type": self.dataset_type,
            "dataset_type_version": self.dataset_type_version,
            "success": self.success,
            "engine": f"great_expectations {self.gx_version}",
            "expectations": [o.__dict__ for o in self.outcomes],
        }

    def markdown(self) -> str:
        lines = [
            "| table | rule | result | failing | examples |",
            "|---|---|---|---|---|",
        ]
        for o in self.outcomes:
            status = "pass" if o.success else ("error" if o.errored else "FAIL")
            ex = ", ".join(o.examples[:3]).replace("|", "/")
            lines.append(f"| {o.table} | {o.rule} | {status} | {o.unexpected_count} | {ex} |")
        return "\n".join(lines)


def _substitute(value: Any, params: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value.startswith("$"):
        return params[value[1:]]
    if isinstance(value, list):
        return [_substitute(v, params) for v in value]
    return value


def _expectation_class(name: str) -> type:
    import great_expectations as gx

    camel = "".join(part.capitalize() for part in name.split("_"))
    return getattr(gx.expectations, camel)  # type: ignore[no-any-return]


def run_expectations(
    *,
    dataset_type: str,
    dataset_type_version: str,
    suites: Mapping[str, list[dict[str, Any]]],
    tables: Mapping[str, pd.DataFrame],
    params: Mapping[str, Any],
) -> ValidationReport:
    """Validate each summary table with its suite from the dataset type.

    Parameters
    ----------
    suites
        Table name -> list of ``{rule, expectation, kwargs, meaning, examples?}``.
    tables
        Table name -> pandas frame (the summaries).
    params
        Values for ``$name`` placeholders in expectation kwargs.
    """
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("resistomics-summaries")
    outcomes: list[ExpectationOutcome] = []
    for table, specs in suites.items():
        frame = tables[table]
        asset = source.add_dataframe_asset(table)
        batch_def = asset.add_batch_definition_whole_dataframe(f"{table}-all")
        suite = context.suites.add(gx.ExpectationSuite(name=f"{dataset_type}-{table}"))
        configured = []
        for spec in specs:
            kwargs = {k: _substitute(v, params) for k, v in spec.get("kwargs", {}).items()}
            expectation = _expectation_class(spec["expectation"])(**kwargs)
            suite.add_expectation(expectation)
            configured.append((spec, expectation))
        validation = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{dataset_type}-{table}", data=batch_def, suite=suite)
        )
        result = validation.run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "COMPLETE", "partial_unexpected_count": 20},
        )
        by_id = {
            r.expectation_config.id: r for r in result.results if r.expectation_config is not None
        }
        for spec, expectation in configured:
            r = by_id.get(expectation.id)
            errored = r is None or _raised(r)
            res = dict(r.result) if r is not None else {}
            unexpected = int(res.get("unexpected_count") or 0)
            idx = list(res.get("unexpected_index_list") or [])
            examples: list[str] = []
            example_col = spec.get("examples")
            if example_col and idx:
                for i in idx:
                    examples.extend(str(e) for e in frame.loc[i, example_col])
                    if len(examples) >= 5:
                        break
                # counts are per chunk: report values, not chunks
                col = spec["kwargs"]["column"]
                unexpected = int(frame.loc[idx, col].sum())
            elif idx:
                key = (
                    "obs_id"
                    if "obs_id" in frame.columns
                    else ("var_id" if "var_id" in frame.columns else None)
                )
                examples = (
                    [
                        f"{frame.iloc[i][key]}"
                        + (
                            f" ({spec['kwargs']['column']}={frame.iloc[i][spec['kwargs']['column']]})"
                            if spec["kwargs"].get("column") not in (key, None)
                            else ""
                        )
                        for i in idx[:5]
                    ]
                    if key
                    else [str(v) for v in (res.get("partial_unexpected_list") or [])[:5]]
                )
            outcomes.append(
                ExpectationOutcome(
                    table=table,
                    rule=spec["rule"],
                    expectation=spec["expectation"],
                    meaning=spec.get("meaning", spec["expectation"]),
                    success=bool(r is not None and r.success and not errored),
                    errored=errored,
                    unexpected_count=unexpected,
                    element_count=int(res.get("element_count") or len(frame)),
                    examples=examples,
                )
            )
    return ValidationReport(
        dataset_type=dataset_type,
        dataset_type_version=dataset_type_version,
        outcomes=outcomes,
        gx_version=gx.__version__,
    )


def _raised(result: Any) -> bool:
    info = result.exception_info or {}
    if isinstance(info, dict):
        if info.get("raised_exception"):
            return True
        return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())
    return bool(getattr(info, "raised_exception", False))
