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


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "minio/Dockerfile"])
def test_dockerfile_passes_hadolint(dockerfile: str) -> None:
    done = _run(
        _tool("hadolint"),
        "--no-color",
        "--config",
        str(DEPLOY / ".hadolint.yaml"),
        str(DEPLOY / dockerfile),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_makefile_lints_every_manifest() -> None:
    makefile = (REPO / "Makefile").read_text()
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        assert f"deploy/kubernetes/{path.name}" in makefile, path.name
    for path in sorted(DEPLOY.rglob("Dockerfile")):
        assert f"deploy/{path.relative_to(DEPLOY)}" in makefile, path


# -------------------------------------------------------------------------- security
# A literal value after a secret-looking name (YAML `key: value`, env `KEY=value`, a
# CLI `--password value`), a URL with user:password@, a private key or an AWS key ID.
_SECRET_NAME = (
    r"[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|auth[_-]?string)[\w.-]*"
)
_SECRET_PATTERNS = [
    re.compile(rf"^\s*-?\s*[\"']?(?P<name>{_SECRET_NAME})[\"']?\s*[:=]\s*(?P<value>\S.*)$", re.I),
    re.compile(r"://[^/\s:@'\"]+:(?P<value>[^@\s'\"]+)@"),
    re.compile(r"(?P<value>-----BEGIN [A-Z ]*PRIVATE KEY-----)"),
    re.compile(r"(?P<value>\bAKIA[0-9A-Z]{16}\b)"),
]


def _is_reference(value: str) -> bool:
    """A value that points at a secret instead of holding one: an interpolation
    (``${VAR}``, ``$VAR``, ``{{ }}``, a YAML alias), a placeholder (``<password>``, ``…``),
    a reference key or
    mapping (``secretKeyRef``, ``valueFrom``, ``existingSecret: name``), a path, empty."""
    v = value.strip().strip(",").strip("'\"")
    return (
        not v
        or v.startswith(("${", "$", "{{", "<", "/", "./", "#", "{", "[", "*", "&", "…"))
        or v in {"|", ">", "null", "true", "false", "True", "False"}
        or bool(re.fullmatch(r"[A-Za-z0-9_.-]*(<[^>]*>|\$\{[^}]*\}|\$\w+)[^\s]*", v))
    )


def _is_string_literal(value: str) -> bool:
    """A Python string literal without interpolation (``"hunter2"``, not ``keys["x"]`` or
    ``f"{token}"``)."""
    return value.strip()[:1] in {'"', "'"}


_REFERENCE_NAMES = re.compile(
    r"^(secretName|existingSecret|secretKeyRef|secretRef|secrets|.*_FILE|.*_KEY_FILE|"
    r"SECRET_KEY|SECRET_REFERENCE_KEYS|URL_CREDENTIALS|.*_(CERT|KEY))$"
)


def _repo_files(root: Path) -> list[Path]:
    """The files under ``root`` that are or would be committed (tracked, or new and not
    git-ignored: a generated deploy/tls/ or deploy/.env is not the repository's)."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "."],
        capture_output=True,
        cwd=root,
        check=True,
    )
    names = {n for n in done.stdout.decode().split("\0") if n}
    return sorted(root / n for n in names if (root / n).is_file())


def literal_secrets(root: Path, files: list[Path] | None = None) -> list[str]:
    """``file:line: text`` of every literal secret in ``files`` (default: every file
    under ``root``)."""
    found = []
    for path in files if files is not None else sorted(p for p in root.rglob("*") if p.is_file()):
        if path.suffix in {".json", ".pyc"} or "schemas" in path.parts:
            continue  # vendored schemas describe keys, they hold no values
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            for pattern in _SECRET_PATTERNS:
                m = pattern.search(line)
                if m is None:
                    continue
                name = m.groupdict().get("name")
                if name is not None and (
                    _REFERENCE_NAMES.match(name) or line.lstrip().startswith("#")
                ):
                    continue
                if name is not None and _is_reference(m.group("value")):
                    continue
                if (
                    name is not None
                    and path.suffix == ".py"
                    and not _is_string_literal(m.group("value"))
                ):
                    continue  # Python: a variable or call (a generated secret), not a literal
                if name is None and _is_reference(m.group("value")):
                    continue
                found.append(f"{path.relative_to(root)}:{n}: {line.strip()}")
    return found


def test_no_literal_secret_in_deploy(tmp_path: Path) -> None:
    assert literal_secrets(DEPLOY, _repo_files(DEPLOY)) == []
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    secrets = [k for k in env if re.search(r"PASSWORD|SECRET|ACCESS_KEY|AUTH_STRING", k)]
    assert len(secrets) >= 7 and all(env[k] == "" for k in secrets), secrets
    # the scan finds what it is for
    planted = tmp_path / "deploy"
    shutil.copytree(DEPLOY, planted)
    with open(planted / "compose.yaml", "a") as f:
        f.write("x-leak:\n  POSTGRES_PASSWORD: hunter2\n")
    (planted / "helm" / "x.yaml").write_text(
        "url: postgresql://prefect:s3cr3t@db:5432/prefect\nkey: AKIAABCDEFGHIJKLMNOP\n"
    )
    (planted / "tls.pem").write_text("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n")
    (planted / ".env.example").write_text("PREFECT_AUTH_STRING=admin:letmein\n")
    # Python: a literal is found, a generated or looked-up value is not
    (planted / "x.py").write_text(
        'DB_PASSWORD = "hunter2"\nauth_string = keys["auth"]\ntoken = secrets.token_hex(8)\n'
    )
    hits = literal_secrets(planted)
    assert len(hits) == 6, hits


def test_containers_run_as_a_non_root_user() -> None:
    for dockerfile in sorted(DEPLOY.rglob("Dockerfile")):
        users = re.findall(r"^USER\s+(\S+)", dockerfile.read_text(), re.M)
        assert users and users[-1].split(":")[0] not in {"0", "root"}, dockerfile
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, service in compose["services"].items():
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in {"0", "root"}, name
    dask = yaml.safe_load((DEPLOY / "helm" / "dask-values.yaml").read_text())
    for part in ("scheduler", "worker"):
        assert dask[part]["securityContext"]["runAsNonRoot"] is True, part
    for chart, key in (("prefect-server", "server"), ("prefect-worker", "worker")):
        values = yaml.safe_load((DEPLOY / "helm" / f"{chart}-values.yaml").read_text())
        assert values[key]["podSecurityContext"]["runAsNonRoot"] is True, chart
        assert values[key]["containerSecurityContext"]["runAsNonRoot"] is True, chart
    cluster = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    for part in ("scheduler", "worker"):
        assert cluster["spec"][part]["spec"]["securityContext"]["runAsNonRoot"] is True
    pod = _rendered_job()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert all(c["securityContext"]["runAsNonRoot"] for c in pod["containers"])


def _tls_flags(args: list[Any]) -> dict[str, str]:
    args = [str(a) for a in args]
    return {
        flag: args[args.index(flag) + 1]
        for flag in ("--tls-ca-file", "--tls-cert", "--tls-key")
        if flag in args
    }


def test_dask_talks_tls_only_in_compose_helm_and_the_operator_cluster() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    targets = {
        name: {s["target"]: s["source"] for s in svc.get("secrets", [])}
        for name, svc in services.items()
    }
    for name in ("dask-scheduler", "dask-worker"):
        command = [str(c) for c in services[name]["command"]]
        assert command[command.index("--protocol") + 1] == "tls", name
        flags = _tls_flags(command)
        assert len(flags) == 3 and set(flags.values()) <= set(targets[name]), (name, flags)
        assert services[name]["environment"]["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    assert "tls://dask-scheduler:8786" in services["dask-worker"]["command"]
    for source in {s for t in targets.values() for s in t.values()}:
        assert compose["secrets"][source]["file"].startswith("${DASK_TLS_DIR:-./tls}/")
    runner = services["flow-runner"]["environment"]
    assert runner["RESISTOMICS_CLUSTER__ADDRESS"].startswith("tls://")
    tls_settings = {k: v for k, v in runner.items() if k.startswith("RESISTOMICS_CLUSTER__TLS_")}
    assert set(tls_settings.values()) <= set(targets["flow-runner"]), tls_settings
    assert set(tls_settings) == {
        "RESISTOMICS_CLUSTER__TLS_CA_FILE",
        "RESISTOMICS_CLUSTER__TLS_CLIENT_CERT",
        "RESISTOMICS_CLUSTER__TLS_CLIENT_KEY",
    }
    from resistomics.config import ClusterSettings

    fields = set(ClusterSettings.model_fields)
    if any(f.startswith("tls_") for f in fields):  # the settings names the platform reads
        assert {k.removeprefix("RESISTOMICS_CLUSTER__").lower() for k in tls_settings} <= fields
    config = yaml.safe_load((DEPLOY / "kubernetes" / "resistomics-config.yaml").read_text())
    assert {k: v for k, v in config["data"].items() if k.startswith("RESISTOMICS_CLUSTER__TLS_")}
    assert config["data"]["RESISTOMICS_CLUSTER__ADDRESS"].startswith("tls://")
    pod = _rendered_job()["spec"]["template"]["spec"]
    mounted = {m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
    assert "/etc/dask/tls" in mounted
    tls_volume = next(v for v in pod["volumes"] if v["name"] == "dask-tls")
    assert tls_volume["secret"]["secretName"] == "resistomics-dask-tls"

    dask = yaml.safe_load((DEPLOY / "helm" / "dask-values.yaml").read_text())
    assert dask["scheduler"]["extraArgs"] == ["--protocol", "tls"]
    env = {e["name"]: e for e in dask["scheduler"]["env"]}
    for key in ("CA_FILE", "SCHEDULER__CERT", "SCHEDULER__KEY"):
        ref = env[f"DASK_DISTRIBUTED__COMM__TLS__{key}"]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == "resistomics-dask-tls"
    assert dask["worker"]["custom_scheduler_url"].startswith("tls://")
    assert len(_tls_flags(dask["worker"]["extraArgs"])) == 3
    for part in ("scheduler", "worker"):
        names = {e["name"]: e.get("value") for e in dask[part]["env"]}
        assert names["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True", part

    cluster = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    for part in ("scheduler", "worker"):
        spec = cluster["spec"][part]["spec"]
        (container,) = spec["containers"]
        assert len(_tls_flags(container["args"])) == 3, part
        assert "tls" in container["args"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert volumes["dask-tls"]["secret"]["secretName"] == "resistomics-dask-tls"
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION"] == "True"
    assert (
        "tls://resistomics-dask-scheduler:8786"
        in cluster["spec"]["worker"]["spec"]["containers"][0]["args"]
    )


def test_only_flow_runners_and_dask_pods_reach_the_scheduler() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "dask-networkpolicy.yaml").read_text()))
    policies = {d["metadata"]["name"]: d for d in docs}
    assert all(d["kind"] == "NetworkPolicy" for d in docs)
    job_labels = _rendered_job()["spec"]["template"]["metadata"]["labels"]
    cluster = yaml.safe_load((DEPLOY / "kubernetes" / "daskcluster.yaml").read_text())
    scheduler_labels = cluster["spec"]["scheduler"]["service"]["selector"]
    for name in ("resistomics-dask-scheduler", "dask-chart-scheduler"):
        spec = policies[name]["spec"]
        assert spec["policyTypes"] == ["Ingress"]
        comm = next(r for r in spec["ingress"] if {"protocol": "TCP", "port": 8786} in r["ports"])
        selectors = [p["podSelector"]["matchLabels"] for p in comm["from"]]
        assert all("namespaceSelector" not in p for p in comm["from"])  # no other namespace
        # the flow-run pods (the base job template's labels) and the workers, no one else
        assert any(s.items() <= job_labels.items() for s in selectors), selectors
        assert all(
            s.items() <= job_labels.items()
            or s.get("dask.org/component", s.get("component")) == "worker"
            for s in selectors
        ), selectors
    selector = policies["resistomics-dask-scheduler"]["spec"]["podSelector"]["matchLabels"]
    assert selector == scheduler_labels
    assert {"resistomics-dask-workers", "dask-chart-workers"} <= set(policies)


def test_prefect_basic_auth_is_on_in_helm_and_compose() -> None:
    server = yaml.safe_load((DEPLOY / "helm" / "prefect-server-values.yaml").read_text())
    worker = yaml.safe_load((DEPLOY / "helm" / "prefect-worker-values.yaml").read_text())
    assert server["server"]["basicAuth"] == {
        "enabled": True,
        "existingSecret": "prefect-basic-auth",
    }
    auth = worker["worker"]["selfHostedServerApiConfig"]["basicAuth"]
    assert auth == {"enabled": True, "existingSecret": "prefect-basic-auth"}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert "PREFECT_SERVER_API_AUTH_STRING" in compose["prefect-server"]["environment"]
    for name in ("flow-runner", "prefect-deploy"):
        assert "PREFECT_API_AUTH_STRING" in compose[name]["environment"], name


def test_images_are_pinned_to_exact_versions() -> None:
    """Every image reference is an exact version (digests cannot be resolved here)."""
    env = dict(
        line.split("=", 1)
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )

    def resolve(image: str) -> str:
        return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: env.get(m.group(1)) or m.group(2), image)

    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    images = [resolve(str(s["image"])) for s in compose.values() if "image" in s]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    images += re.findall(r"^ARG PYTHON_IMAGE=(\S+)", dockerfile, re.M)
    images += [
        f"quay.io/minio/minio:{v}"
        for v in re.findall(
            r"^ARG MINIO_VERSION=(\S+)", (DEPLOY / "minio" / "Dockerfile").read_text(), re.M
        )
    ]
    for values in ("prefect-server", "prefect-worker"):
        doc = yaml.safe_load((DEPLOY / "helm" / f"{values}-values.yaml").read_text())
        image = (doc.get("global", {}).get("prefect") or doc["worker"])["image"]
        images.append(f"{image['repository']}:{image['prefectTag']}")
    assert len(images) >= 10, images
    for image in images:
        if image.startswith("resistomics"):  # built here from the pinned bases
            continue
        tag = image.rsplit(":", 1)[-1]
        assert re.search(r"\d+\.\d+\.\d+|RELEASE\.\d{4}-|^\d+\.\d+-", tag), image
        assert tag not in {"latest", "16", "3.12", "3"}, image
    assert "python:3.12.12-slim-bookworm" in images


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


def test_ingest_concurrency_comes_from_settings() -> None:
    """The served ingest deployment's limit is RESISTOMICS_INGEST__CONCURRENCY (default by
    catalog backend); prefect.yaml deploys the PostgreSQL default."""
    from flows.serve import build_deployments
    from resistomics.config import POSTGRES_INGEST_CONCURRENCY, IngestSettings, Settings

    def ingest_limit(settings: Settings) -> int | None:
        (ingest,) = [d for d in build_deployments(settings) if d.flow_name == "ingest"]
        limit = ingest.concurrency_limit
        return limit if isinstance(limit, int) or limit is None else limit.limit

    sqlite = Settings(data_root="/tmp/x")
    postgres = Settings(data_root="/tmp/x", catalog_url="postgresql+psycopg://u@h/db")
    assert (sqlite.ingest_concurrency, postgres.ingest_concurrency) == (1, 4)
    assert ingest_limit(sqlite) == 1
    assert ingest_limit(postgres) == POSTGRES_INGEST_CONCURRENCY
    assert ingest_limit(Settings(data_root="/tmp/x", ingest=IngestSettings(concurrency=3))) == 3
    doc = yaml.safe_load((DEPLOY / "prefect.yaml").read_text())
    (ingest,) = [d for d in doc["deployments"] if d["entrypoint"] == "flows.ingest.ingest_flow"]
    assert ingest["concurrency_limit"]["limit"] == POSTGRES_INGEST_CONCURRENCY
