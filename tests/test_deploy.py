"""The deployment material in deploy/ passes the tools that own its formats, its own
cross-file rules, and agrees with flows/ and with the tested environment."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prefect.utilities.templating import apply_values

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
SCHEMAS = DEPLOY / "schemas"
BIN = Path(sys.executable).parent
KUBERNETES = "1.37.0"  # kubernetes-validate's newest bundled schemas


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed (pyproject.toml dev extra)"
    return found


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO)


@pytest.mark.parametrize("chart", ["prefect-worker", "prefect-server"])
def test_helm_values_pass_the_chart_schema(chart: str) -> None:
    done = _run(
        _tool("check-jsonschema"),
        "--schemafile",
        str(SCHEMAS / f"{chart}.values.schema.json"),
        str(DEPLOY / "helm" / f"{chart}-values.yaml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_worker_schema_rejects_the_keys_renamed_upstream(tmp_path: Path) -> None:
    values = yaml.safe_load((DEPLOY / "helm" / "prefect-worker-values.yaml").read_text())
    worker = values["worker"]
    worker["apiConfig"] = "server"
    worker["serverApiConfig"] = worker.pop("selfHostedServerApiConfig")
    old = tmp_path / "old-values.yaml"
    old.write_text(yaml.safe_dump(values))
    done = _run(
        _tool("check-jsonschema"),
        "--schemafile",
        str(SCHEMAS / "prefect-worker.values.schema.json"),
        str(old),
    )
    assert done.returncode == 1
    assert "'serverApiConfig' was unexpected" in done.stdout
    assert "'server' is not one of" in done.stdout


def test_compose_file_passes_the_compose_spec() -> None:
    done = _run(
        _tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.compose-spec",
        str(DEPLOY / "compose.yaml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_kubernetes_manifests_pass_strict_validation() -> None:
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["apiVersion"].startswith("kubernetes.dask.org/"):
                continue  # the operator's CRDs: their own schemas, below
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)


@pytest.mark.parametrize("kind", ["daskcluster", "daskautoscaler"])
def test_dask_operator_objects_pass_their_crd_schema(kind: str) -> None:
    done = _run(
        _tool("check-jsonschema"),
        "--schemafile",
        str(SCHEMAS / f"{kind}.v1.schema.json"),
        str(DEPLOY / "kubernetes" / f"{kind}.yaml"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_daskcluster_schema_catches_a_wrong_type(tmp_path: Path) -> None:
    cluster = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    cluster["spec"]["worker"]["replicas"] = "two"
    bad = tmp_path / "daskcluster.yaml"
    bad.write_text(yaml.safe_dump(cluster))
    done = _run(
        _tool("check-jsonschema"),
        "--schemafile",
        str(SCHEMAS / "daskcluster.v1.schema.json"),
        str(bad),
    )
    assert done.returncode == 1 and "replicas" in done.stdout


def _rendered_job() -> dict[str, Any]:
    """The base job template's Job as a Kubernetes worker fills it for one flow run:
    the template's defaults plus what the worker supplies (name, command, env, labels);
    keys whose value stays null are left out, as the Kubernetes API does."""
    values = yaml.safe_load((DEPLOY / "helm" / "prefect-worker-values.yaml").read_text())
    template = json.loads(values["worker"]["config"]["baseJobTemplate"]["configuration"])
    filled = {k: v.get("default") for k, v in template["variables"]["properties"].items()}
    filled.update(
        name="ingest-1a2b3c",
        command=["prefect", "flow-run", "execute"],
        env=[{"name": "PREFECT__FLOW_RUN_ID", "value": "1a2b3c"}],
        labels={"prefect.io/flow-run-id": "1a2b3c"},
        annotations={},
    )
    job = apply_values(template["job_configuration"]["job_manifest"], filled)

    def without_nulls(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: without_nulls(v) for k, v in node.items() if v is not None}
        if isinstance(node, list):
            return [without_nulls(v) for v in node]
        return node

    return without_nulls(job)  # type: ignore[no-any-return]


def test_the_base_job_template_renders_a_valid_job() -> None:
    job = _rendered_job()
    # strict: `completions` / `parallelism` in the pod spec were rejected here
    kubernetes_validate.validate(job, KUBERNETES, strict=True)
    assert job["kind"] == "Job" and job["spec"]["completions"] == job["spec"]["parallelism"] == 1


def test_dockerfile_passes_hadolint() -> None:
    done = _run(
        _tool("hadolint"),
        "--no-color",
        "--config",
        str(DEPLOY / ".hadolint.yaml"),
        str(DEPLOY / "Dockerfile"),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _pins(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;#]+)", line.strip().strip('",'))
        if m:
            pins[m.group(1).lower().replace("_", "-")] = m.group(3)
    return pins


def _installed_closure(root: str, extras: set[str]) -> dict[str, str]:
    """Installed version of every distribution ``root[extras]`` needs, transitively."""
    found: dict[str, str] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(root, frozenset(extras))]
    while todo:
        name, wanted = todo.pop()
        key = canonicalize_name(name)
        if (key, wanted) in seen:
            continue
        seen.add((key, wanted))
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue  # an optional dependency for another platform or Python
        found[key] = dist.version
        envs = [{"extra": e} for e in wanted] or [{"extra": ""}]
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return found


def test_the_image_installs_the_tested_versions() -> None:
    """constraints.txt (make setup, the Dockerfile) pins exactly what this venv runs.

    Fails after a dependency change until ``make constraints`` re-pins."""
    constraints = {
        canonicalize_name(k): v for k, v in _pins((REPO / "constraints.txt").read_text()).items()
    }
    tested = _installed_closure("resistomics", {"dev", "s3", "test", "postgres"})
    tested.pop("resistomics")
    assert {"dask", "distributed", "prefect", "zarr"} <= set(tested)
    differ = {k: (constraints.get(k), v) for k, v in tested.items() if constraints.get(k) != v}
    assert not differ, f"constraints.txt vs installed: {differ}; run `make constraints`"
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert (
        "COPY constraints.txt" in dockerfile and "--constraint /tmp/constraints.txt" in dockerfile
    )
    assert "DASK_VERSION" not in dockerfile + (DEPLOY / "compose.yaml").read_text()
    # every requirement of pyproject.toml accepts its pinned version (make setup uses both)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [r for r in extra if not r.startswith("resistomics[")]
    for line in requirements:
        req = Requirement(line)
        pin = constraints.get(canonicalize_name(req.name))
        assert pin is None or req.specifier.contains(pin, prereleases=True), (line, pin)
    env_example = (DEPLOY / ".env.example").read_text()
    assert f"PREFECT_VERSION={constraints['prefect']}" in env_example


def test_manifests_pass_their_own_rules() -> None:
    spec = importlib.util.spec_from_file_location("check_manifests", DEPLOY / "check_manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problems = module.check(DEPLOY, strict=True)
    assert problems == [], problems


def test_prefect_yaml_and_readme_match_serve() -> None:
    from flows.serve import (
        GC_CRON,
        INTEGRITY_CRON,
        RECOMPUTE_CRON,
        SWEEP_CRON,
        build_deployments,
    )

    deployments = build_deployments()
    doc = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    crons = [s["cron"] for d in doc["deployments"] for s in d.get("schedules", []) if "cron" in s]
    assert sorted(crons) == sorted([SWEEP_CRON, RECOMPUTE_CRON, GC_CRON, INTEGRITY_CRON])
    served = {f"{d.flow_name}/{d.name}" for d in deployments}
    assert len(served) == len(doc["deployments"])
    expects = sorted(
        e for d in doc["deployments"] for t in d.get("triggers", []) for e in t["expect"]
    )
    assert expects == sorted(e for d in deployments for t in d.triggers for e in t.expect)
    # deploy/README: the count and the table of deployments
    readme = (DEPLOY / "README.md").read_text()
    assert f"{len(deployments)} deployments" in readme
    table = readme.split("## Deployments, triggers, schedules", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `([^`]+)` \|", table, re.M))
    assert listed == served
