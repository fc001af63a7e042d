"""The deployment material in deploy/ parses, passes its checks and agrees with flows/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def test_manifests_pass_their_checks() -> None:
    spec = importlib.util.spec_from_file_location("check_manifests", DEPLOY / "check_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems = module.check(DEPLOY, strict=True)
    assert problems == [], problems


def test_prefect_yaml_schedules_and_triggers_match_serve() -> None:
    from flows.serve import (
        GC_CRON,
        INTEGRITY_CRON,
        RECOMPUTE_CRON,
        SWEEP_CRON,
        build_deployments,
    )

    doc = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    crons = [s["cron"] for d in doc["deployments"] for s in d.get("schedules", []) if "cron" in s]
    assert sorted(crons) == sorted([SWEEP_CRON, RECOMPUTE_CRON, GC_CRON, INTEGRITY_CRON])
    served = {(d.flow_name, d.name) for d in build_deployments()}
    assert len(served) == len(doc["deployments"]) == 8
    expects = sorted(
        e for d in doc["deployments"] for t in d.get("triggers", []) for e in t["expect"]
    )
    assert expects == sorted(
        [
            "resistomics.file.landed",
            "resistomics.dataset.published",  # signatures (expression)
            "resistomics.dataset.published",  # clonal (variants)
            "resistomics.signature.published",
        ]
    )
