#!/usr/bin/env python3
"""The platform's own rules for the deployment material in ``deploy/``.

Whether a file is *valid* is checked by the tools that own its format (``make
lint-deploy``: check-jsonschema against the charts' vendored ``values.schema.json`` and
the Compose Specification, kubernetes-validate, hadolint). This script keeps only what
no schema knows: the cross-file invariants the platform relies on: the deployments,
triggers and schedules of ``prefect.yaml`` against ``flows/``; services, health checks
and settings of ``compose.yaml``; policy in the Helm values (external database, pinned
Prefect, the flow-run pods' settings); the DaskCluster / DaskAutoscaler pair; the
dask-jobqueue SLURM profile; and that no secret is written into any of them.

Nothing here talks to Docker, Kubernetes, SLURM or Prefect: it is a syntax and
consistency check, not a deployment test. Standard library + PyYAML only.

    python deploy/check_manifests.py            # exit 1 on errors
    python deploy/check_manifests.py --strict   # also fail on warnings (e.g. missing flow files)

From Python (tests)::

    problems = check(Path("deploy"))            # list[Problem]
    errors = [p for p in problems if p.level == "error"]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import yaml

__all__ = ["Problem", "check", "main", "parse_bytes"]

WORK_POOL = "resistomics-pool"
CLUSTER_KINDS = {"local", "address", "kubernetes", "slurm"}

# flow (file:function) -> (expected trigger event or None, parameters the trigger fills)
FLOWS: dict[str, tuple[str | None, set[str]]] = {
    "flows/ingest.py:ingest_flow": (
        "resistomics.file.landed",
        {"path", "study", "modality", "dataset"},
    ),
    "flows/analyse.py:analyse_flow": (
        "resistomics.dataset.published",
        {"dataset_ref", "study"},
    ),
    "flows/report.py:report_flow": ("resistomics.signature.published", {"result_ref", "study"}),
    "flows/sweep.py:sweep_flow": (None, set()),
    "flows/maintenance.py:gc_flow": (None, set()),
    "flows/maintenance.py:integrity_flow": (None, set()),
}
SCHEDULED = {
    "flows/sweep.py:sweep_flow",
    "flows/maintenance.py:gc_flow",
    "flows/maintenance.py:integrity_flow",
}
# module-path entrypoints (flows.ingest.ingest_flow) are the ones prefect.yaml uses
MODULE_ENTRYPOINT = re.compile(
    r"^(?P<mod>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.(?P<func>[A-Za-z_]\w*)$"
)
COMPOSE_SERVICES = {
    "postgres",
    "prefect-server",
    "minio",
    "minio-init",
    "dask-scheduler",
    "dask-worker",
    "prefect-deploy",
    "flow-runner",
}
ONE_SHOT_SERVICES = {"minio-init", "prefect-deploy"}
FLOW_RUNNER_ENV = {
    "RESISTOMICS_DATA_ROOT",
    "RESISTOMICS_CATALOG_URL",
    "RESISTOMICS_LANDING_ZONE",
    "RESISTOMICS_STORAGE_OPTIONS",
    "RESISTOMICS_CLUSTER__KIND",
    "RESISTOMICS_CLUSTER__ADDRESS",
    "PREFECT_API_URL",
}
DEPENDS_ON_CONDITIONS = {
    "service_started",
    "service_healthy",
    "service_completed_successfully",
}

SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|access[_-]?key)", re.I)
# keys whose value names a Secret object (a reference), not a secret value
SECRET_REFERENCE_KEYS = {"secretName", "existingSecret"}
# user:password@ inside a URL
URL_CREDENTIALS = re.compile(r"://[^/\s:@]+:(?P<pw>.+?)@[\w.\-\[\]]")
# `event.resource.<label>` is undefined in Prefect templates (labels contain dots);
# only item access `event.resource['a.b']` or `.get(...)` works.
ATTRIBUTE_LABEL_ACCESS = re.compile(r"event\.resource\.(?!get\b|id\b)(\w+)")
CRON_5_FIELDS = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")


class Problem(NamedTuple):
    level: str  # "error" | "warning"
    path: str  # file relative to deploy/
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():7} {self.path}: {self.message}"


class _Report:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def error(self, path: str, message: str) -> None:
        self.problems.append(Problem("error", path, message))

    def warn(self, path: str, message: str) -> None:
        self.problems.append(Problem("warning", path, message))


# ----------------------------------------------------------------------------- helpers
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}


def parse_bytes(value: str | int | float) -> int:
    """Bytes of a Dask memory string ("4GiB", "32.00GiB") or a Kubernetes quantity ("8Gi").

    Both use the same convention for these forms: G = 10**9, Gi / GiB = 2**30.
    """
    if isinstance(value, (int, float)):
        return int(value)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a byte quantity: {value!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


_INTERP = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?error}, $$ interpolation."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name, "")
        if op in (":-", "-"):
            return value if (value or (op == "-" and name in env)) else arg
        if op in (":?", "?"):
            return value or f"<{name}>"
        return value

    return _INTERP.sub(repl, text)


def _compose_vars(text: str) -> Iterator[tuple[str, str | None]]:
    for m in _INTERP.finditer(text):
        if m.group(0) != "$$":
            yield m.group("name"), m.group("op")


def _get(d: Any, dotted: str, default: Any = None) -> Any:
    cur = d
    for part in dotted.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return default
        cur = cur[part]
    return cur


def _walk(node: Any, trail: str = "") -> Iterator[tuple[str, Any, Any]]:
    """Yield (trail, key, value) for every mapping entry, recursively."""
    if isinstance(node, dict):
        for k, v in node.items():
            t = f"{trail}.{k}" if trail else str(k)
            yield t, k, v
            yield from _walk(v, t)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{trail}[{i}]")


def _env_map(env: Any) -> dict[str, str]:
    """Compose `environment` (mapping or KEY=VALUE list) as a dict."""
    if isinstance(env, dict):
        return {str(k): "" if v is None else str(v) for k, v in env.items()}
    if isinstance(env, list):
        out: dict[str, str] = {}
        for item in env:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out
    return {}


def _arg_after(args: list[Any], flag: str) -> str | None:
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k.strip()] = v.strip()
    return env


# ----------------------------------------------------------------------------- generic
def _check_no_inline_secrets(rel: str, docs: list[Any], rep: _Report) -> None:
    for doc in docs:
        for trail, key, value in _walk(doc):
            if not isinstance(value, str) or not value.strip():
                continue
            literal = "${" not in value and not value.startswith("<")
            if SECRET_KEY.search(str(key)) and literal and key not in SECRET_REFERENCE_KEYS:
                rep.error(rel, f"{trail}: looks like an inlined secret; reference it instead")
            for m in URL_CREDENTIALS.finditer(value):
                pw = m.group("pw")
                if not (pw.startswith("${") or pw.startswith("<")):
                    rep.error(rel, f"{trail}: URL with an inlined password")


def _check_k8s_objects(rel: str, docs: list[Any], rep: _Report) -> None:
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            rep.error(rel, f"document {i} is not a mapping")
            continue
        for key in ("apiVersion", "kind", "metadata"):
            if key not in doc:
                rep.error(rel, f"document {i}: missing {key}")
        if not _get(doc, "metadata.name"):
            rep.error(rel, f"document {i}: missing metadata.name")


# ----------------------------------------------------------------------------- compose
def _check_compose(rel: str, doc: Any, rep: _Report, deploy_dir: Path) -> None:
    services = doc.get("services") if isinstance(doc, dict) else None
    if not isinstance(services, dict):
        rep.error(rel, "no services")
        return
    missing = COMPOSE_SERVICES - set(services)
    if missing:
        rep.error(rel, f"missing services: {sorted(missing)}")

    env_file = _read_env_file(deploy_dir / ".env.example")
    raw = (
        (deploy_dir / "compose.yaml").read_text() if (deploy_dir / "compose.yaml").exists() else ""
    )
    for name, op in _compose_vars(raw):
        if op is None and name not in env_file:
            rep.error(rel, f"${{{name}}} has no default and is not in .env.example")
        if op in (":?", "?") and name not in env_file:
            rep.error(rel, f"required ${{{name}}} is not listed in .env.example")

    for name, svc in services.items():
        if not isinstance(svc, dict):
            rep.error(rel, f"service {name} is not a mapping")
            continue
        if "image" not in svc and "build" not in svc:
            rep.error(rel, f"service {name}: neither image nor build")
        if name not in ONE_SHOT_SERVICES and "healthcheck" not in svc:
            rep.error(rel, f"service {name}: no healthcheck")
        if name in ONE_SHOT_SERVICES and svc.get("restart", "no") != "no":
            rep.error(rel, f"one-shot service {name} must not restart")
        deps = svc.get("depends_on", {})
        if isinstance(deps, dict):
            for dep, spec in deps.items():
                if dep not in services:
                    rep.error(rel, f"service {name}: depends_on unknown service {dep}")
                cond = spec.get("condition") if isinstance(spec, dict) else None
                if cond not in DEPENDS_ON_CONDITIONS:
                    rep.error(rel, f"service {name}: depends_on {dep} has condition {cond!r}")
                if cond == "service_healthy" and "healthcheck" not in services.get(dep, {}):
                    rep.error(
                        rel, f"service {name}: waits for {dep} healthy, which has no healthcheck"
                    )
                if cond == "service_completed_successfully" and dep not in ONE_SHOT_SERVICES:
                    rep.error(rel, f"service {name}: waits for long-running {dep} to complete")

    pg = services.get("postgres", {})
    if not any("/var/lib/postgresql" in str(v) for v in pg.get("volumes", [])):
        rep.error(rel, "postgres: no data volume")
    if "16" not in interpolate(str(pg.get("image", "")), env_file):
        rep.error(rel, "postgres: image is not PostgreSQL 16")

    server_env = _env_map(services.get("prefect-server", {}).get("environment"))
    url = server_env.get("PREFECT_API_DATABASE_CONNECTION_URL", "")
    if not url.startswith("postgresql+asyncpg://"):
        rep.error(
            rel, "prefect-server: PREFECT_API_DATABASE_CONNECTION_URL must be postgresql+asyncpg"
        )
    if server_env.get("PREFECT_SERVER_ANALYTICS_ENABLED", "").lower() != "false":
        rep.error(rel, "prefect-server: PREFECT_SERVER_ANALYTICS_ENABLED must be false")

    runner = services.get("flow-runner", {})
    runner_env = _env_map(runner.get("environment"))
    for var in sorted(FLOW_RUNNER_ENV - set(runner_env)):
        rep.error(rel, f"flow-runner: environment lacks {var}")
    kind = interpolate(runner_env.get("RESISTOMICS_CLUSTER__KIND", ""), env_file)
    if kind and kind not in CLUSTER_KINDS:
        rep.error(
            rel, f"flow-runner: RESISTOMICS_CLUSTER__KIND={kind!r} not in {sorted(CLUSTER_KINDS)}"
        )
    opts = interpolate(runner_env.get("RESISTOMICS_STORAGE_OPTIONS", "{}"), env_file)
    try:
        if not isinstance(json.loads(opts), dict):
            raise ValueError
    except ValueError:
        rep.error(rel, "flow-runner: RESISTOMICS_STORAGE_OPTIONS is not a JSON object")
    cmd = [str(c) for c in runner.get("command", [])]
    if _arg_after(cmd, "--pool") != WORK_POOL or "worker" not in cmd:
        rep.error(rel, f"flow-runner: must run `prefect worker start --pool {WORK_POOL}`")

    images = {
        n: interpolate(str(services.get(n, {}).get("image", "")), env_file)
        for n in ("dask-scheduler", "dask-worker", "flow-runner", "prefect-deploy")
    }
    if len(set(images.values())) != 1:
        rep.error(rel, f"Dask services and flow runner must share one image: {images}")

    worker = services.get("dask-worker", {})
    limit_arg = _arg_after(worker.get("command", []), "--memory-limit")
    mem = _get(worker, "deploy.resources.limits.memory")
    if not limit_arg or not mem:
        rep.error(rel, "dask-worker: needs --memory-limit and deploy.resources.limits.memory")
    else:
        a, b = interpolate(str(limit_arg), env_file), interpolate(str(mem), env_file)
        try:
            if parse_bytes(a) != parse_bytes(b):
                rep.error(rel, f"dask-worker: --memory-limit {a} != container limit {b}")
        except ValueError as exc:
            rep.error(rel, f"dask-worker: {exc}")


# ----------------------------------------------------------------------------- prefect.yaml
def _check_prefect(rel: str, doc: Any, rep: _Report, repo_root: Path) -> None:
    deployments = doc.get("deployments") if isinstance(doc, dict) else None
    if not isinstance(deployments, list) or not deployments:
        rep.error(rel, "no deployments")
        return
    pull = doc.get("pull") or []
    if not any("prefect.deployments.steps.set_working_directory" in step for step in pull):
        rep.error(rel, "top-level pull lacks set_working_directory")

    by_entry: dict[str, dict[str, Any]] = {}
    for dep in deployments:
        name, entry = dep.get("name"), dep.get("entrypoint")
        if not name or not entry:
            rep.error(rel, f"deployment without name or entrypoint: {dep!r:.80}")
            continue
        if _get(dep, "work_pool.name") != WORK_POOL:
            rep.error(rel, f"{name}: work_pool.name must be {WORK_POOL}")
        key = _check_entrypoint(rel, name, entry, rep, repo_root)
        if key is None:
            continue
        if key in by_entry:
            rep.error(rel, f"{name}: second deployment of {entry}")
        by_entry[key] = dep

    for entry, (event, params) in FLOWS.items():
        dep = by_entry.get(entry)
        if dep is None:
            rep.error(rel, f"no deployment for {entry}")
            continue
        name = dep["name"]
        triggers = dep.get("triggers") or []
        if event is not None:
            matching = [t for t in triggers if event in (t.get("expect") or [])]
            if not matching:
                rep.error(rel, f"{name}: no trigger expecting {event}")
            for t in matching:
                _check_trigger(rel, name, t, params, rep)
        if entry in SCHEDULED:
            scheds = dep.get("schedules") or []
            if not scheds:
                rep.error(rel, f"{name}: no schedule")
            for s in scheds:
                if not CRON_5_FIELDS.match(str(s.get("cron", ""))):
                    rep.error(rel, f"{name}: schedule without a 5-field cron: {s!r}")
                if not s.get("timezone"):
                    rep.warn(rel, f"{name}: schedule without explicit timezone")


def _check_trigger(rel: str, name: str, t: dict[str, Any], params: set[str], rep: _Report) -> None:
    if t.get("type", "event") != "event":
        rep.error(rel, f"{name}: trigger type {t.get('type')!r}, expected event")
    match = t.get("match")
    if not isinstance(match, dict) or not match:
        rep.error(rel, f"{name}: trigger without match")
    got = t.get("parameters") or {}
    if set(got) != params:
        rep.error(rel, f"{name}: trigger parameters {sorted(got)} != {sorted(params)}")
    for key, value in got.items():
        if not isinstance(value, str) or "{{" not in value:
            rep.error(rel, f"{name}: parameter {key} is not a Jinja template")
            continue
        bad = ATTRIBUTE_LABEL_ACCESS.search(value)
        if bad:
            rep.error(
                rel,
                f"{name}: parameter {key} uses event.resource.{bad.group(1)} (undefined); "
                "use event.resource['label'] or event.resource.get('label')",
            )
        for label in re.findall(r"event\.resource(?:\[|\.get\()\s*['\"]([^'\"]+)['\"]", value):
            optional = ".get(" in value
            if not optional and isinstance(match, dict) and label not in match:
                rep.warn(
                    rel, f"{name}: parameter {key} needs label {label} that match does not require"
                )


def _check_entrypoint(rel: str, name: str, entry: str, rep: _Report, repo_root: Path) -> str | None:
    """Normalise an entrypoint to ``path.py:function`` and check the function exists."""
    if ":" in entry:
        if entry.count(":") != 1 or not entry.split(":")[0].endswith(".py"):
            rep.error(rel, f"{name}: entrypoint {entry!r} is not path.py:function")
            return None
        rep.warn(rel, f"{name}: file-path entrypoint {entry!r}; module paths pickle safely on Dask")
        path, func = entry.split(":")
    else:
        m = MODULE_ENTRYPOINT.match(entry)
        if not m:
            rep.error(
                rel, f"{name}: entrypoint {entry!r} is neither a module path nor path.py:function"
            )
            return None
        path, func = m.group("mod").replace(".", "/") + ".py", m.group("func")
    file = repo_root / path
    if not file.exists():
        rep.warn(rel, f"{name}: {path} does not exist (yet)")
    elif not re.search(rf"^\s*(async\s+)?def\s+{re.escape(func)}\s*\(", file.read_text(), re.M):
        rep.error(rel, f"{name}: {path} defines no function {func}")
    return f"{path}:{func}"


# ----------------------------------------------------------------------------- helm
def _check_prefect_server_values(rel: str, doc: Any, rep: _Report) -> None:
    if _get(doc, "postgresql.enabled") is not False:
        rep.error(rel, "postgresql.enabled must be false (external PostgreSQL)")
    if _get(doc, "secret.create") is not False or not _get(doc, "secret.name"):
        rep.error(rel, "secret.create must be false with secret.name set (existing Secret)")
    if not _get(doc, "global.prefect.image.prefectTag"):
        rep.error(rel, "global.prefect.image.prefectTag must pin the Prefect version")
    if not _get(doc, "server.resources.requests"):
        rep.error(rel, "server.resources.requests missing")
    env = (_get(doc, "global.prefect.env") or []) + (_get(doc, "server.env") or [])
    if not any(
        e.get("name") == "PREFECT_SERVER_ANALYTICS_ENABLED"
        and str(e.get("value")).lower() == "false"
        for e in env
    ):
        rep.error(rel, "PREFECT_SERVER_ANALYTICS_ENABLED=false missing")


def _check_prefect_worker_values(rel: str, doc: Any, rep: _Report) -> None:
    if _get(doc, "worker.config.workPool") != WORK_POOL:
        rep.error(rel, f"worker.config.workPool must be {WORK_POOL}")
    if _get(doc, "worker.config.type") != "kubernetes":
        rep.error(rel, "worker.config.type must be kubernetes")
    if _get(doc, "worker.apiConfig") != "selfHostedServer":
        rep.error(rel, "worker.apiConfig must be selfHostedServer (self-hosted Prefect server)")
    if not str(_get(doc, "worker.selfHostedServerApiConfig.apiUrl", "")).endswith("/api"):
        rep.error(rel, "worker.selfHostedServerApiConfig.apiUrl must end with /api")
    if not _get(doc, "worker.resources.requests"):
        rep.error(rel, "worker.resources.requests missing")
    raw = _get(doc, "worker.config.baseJobTemplate.configuration")
    if not raw:
        rep.error(rel, "worker.config.baseJobTemplate.configuration missing")
        return
    try:
        tpl = json.loads(raw)
    except ValueError as exc:
        rep.error(rel, f"base job template is not JSON: {exc}")
        return
    for key in ("job_configuration", "variables"):
        if key not in tpl:
            rep.error(rel, f"base job template lacks {key}")
    if not _get(tpl, "variables.properties.image.default"):
        rep.error(rel, "base job template: no default image")
    containers = _get(tpl, "job_configuration.job_manifest.spec.template.spec.containers") or [{}]
    refs = containers[0].get("envFrom") or []
    if not any("secretRef" in r for r in refs) or not any("configMapRef" in r for r in refs):
        rep.error(
            rel, "base job template: flow-run container needs envFrom configMapRef + secretRef"
        )


def _check_dask_values(rel: str, doc: Any, rep: _Report) -> None:
    s_img = (_get(doc, "scheduler.image.repository"), _get(doc, "scheduler.image.tag"))
    w_img = (_get(doc, "worker.image.repository"), _get(doc, "worker.image.tag"))
    if not all(s_img) or s_img != w_img:
        rep.error(rel, f"scheduler and worker must use the same pinned image: {s_img} vs {w_img}")
    limits = _get(doc, "worker.resources.limits") or {}
    requests = _get(doc, "worker.resources.requests") or {}
    if "memory" not in limits or "cpu" not in limits:
        rep.error(
            rel,
            "worker.resources.limits needs cpu and memory (the chart derives "
            "--nthreads / --memory-limit from them)",
        )
    elif requests.get("memory") and parse_bytes(requests["memory"]) != parse_bytes(
        limits["memory"]
    ):
        rep.warn(rel, "worker memory request != limit (risk of OOM kill before spilling)")
    if _get(doc, "jupyter.enabled") is not False:
        rep.warn(rel, "jupyter.enabled should be false")


# ----------------------------------------------------------------------------- kubernetes
def _check_daskcluster(rel: str, docs: list[Any], rep: _Report) -> str | None:
    if len(docs) != 1:
        rep.error(
            rel, "must be ONE document: KubeCluster(custom_cluster_spec=path) uses yaml.safe_load"
        )
    doc = docs[0] if docs else {}
    if doc.get("apiVersion") != "kubernetes.dask.org/v1" or doc.get("kind") != "DaskCluster":
        rep.error(rel, "first document must be kubernetes.dask.org/v1 DaskCluster")
        return None
    name = _get(doc, "metadata.name")
    for part in ("scheduler.spec.containers", "scheduler.service", "worker.spec.containers"):
        if not _get(doc, f"spec.{part}"):
            rep.error(rel, f"spec.{part} missing")
    selector = _get(doc, "spec.scheduler.service.selector") or {}
    if selector.get("dask.org/cluster-name") != name:
        rep.error(rel, "scheduler service selector dask.org/cluster-name must equal metadata.name")
    s_cont = (_get(doc, "spec.scheduler.spec.containers") or [{}])[0]
    w_cont = (_get(doc, "spec.worker.spec.containers") or [{}])[0]
    if s_cont.get("image") != w_cont.get("image"):
        rep.error(rel, "scheduler and worker must run the same image")
    limit_arg = _arg_after(w_cont.get("args") or [], "--memory-limit")
    mem = _get(w_cont, "resources.limits.memory")
    if not limit_arg or not mem:
        rep.error(rel, "worker needs --memory-limit and resources.limits.memory")
    elif parse_bytes(limit_arg) != parse_bytes(mem):
        rep.error(rel, f"worker --memory-limit {limit_arg} != resources.limits.memory {mem}")
    routes = next(
        (
            e.get("value", "")
            for e in s_cont.get("env") or []
            if e.get("name") == "DASK_DISTRIBUTED__SCHEDULER__HTTP__ROUTES"
        ),
        "",
    )
    if "distributed.http.scheduler.api" not in routes:
        rep.warn(rel, "scheduler HTTP API route not enabled (DaskAutoscaler falls back to RPC)")
    return name


def _check_daskautoscaler(rel: str, docs: list[Any], cluster: str | None, rep: _Report) -> None:
    scalers = [d for d in docs if isinstance(d, dict) and d.get("kind") == "DaskAutoscaler"]
    if not scalers:
        rep.error(rel, "no DaskAutoscaler")
    for d in scalers:
        if d.get("apiVersion") != "kubernetes.dask.org/v1":
            rep.error(rel, "DaskAutoscaler apiVersion must be kubernetes.dask.org/v1")
        lo, hi = _get(d, "spec.minimum"), _get(d, "spec.maximum")
        if not isinstance(lo, int) or not isinstance(hi, int) or not 0 <= lo <= hi:
            rep.error(rel, f"DaskAutoscaler needs integer 0 <= minimum <= maximum, got {lo}, {hi}")
        if cluster and _get(d, "spec.cluster") != cluster:
            rep.error(rel, f"DaskAutoscaler spec.cluster must be {cluster}")


# ----------------------------------------------------------------------------- slurm
def _check_jobqueue(rel: str, doc: Any, rep: _Report) -> None:
    prof = _get(doc, "jobqueue.slurm")
    if not isinstance(prof, dict):
        rep.error(rel, "jobqueue.slurm profile missing")
        return
    for key in ("cores", "memory", "walltime", "local-directory", "python"):
        if not prof.get(key):
            rep.error(rel, f"jobqueue.slurm.{key} missing")
    if not isinstance(prof.get("job-extra-directives"), list):
        rep.error(rel, "jobqueue.slurm.job-extra-directives must be a list")
    try:
        parse_bytes(prof.get("memory", ""))
    except ValueError as exc:
        rep.error(rel, f"jobqueue.slurm.memory: {exc}")
    cores, procs = prof.get("cores"), prof.get("processes") or 1
    if isinstance(cores, int) and isinstance(procs, int) and cores % procs:
        rep.error(rel, f"cores ({cores}) not divisible by processes ({procs})")
    if not re.fullmatch(r"(\d+-)?\d{1,2}:\d{2}:\d{2}", str(prof.get("walltime", ""))):
        rep.error(rel, f"walltime {prof.get('walltime')!r} is not [D-]HH:MM:SS")


# ----------------------------------------------------------------------------- driver
def check(deploy_dir: Path | str | None = None, *, strict: bool = False) -> list[Problem]:
    """Check every YAML file under ``deploy_dir`` (default: this script's folder)."""
    deploy_dir = Path(deploy_dir) if deploy_dir else Path(__file__).resolve().parent
    repo_root = deploy_dir.parent
    rep = _Report()

    files = sorted(
        p for p in deploy_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
    )
    parsed: dict[str, list[Any]] = {}
    for path in files:
        rel = path.relative_to(deploy_dir).as_posix()
        try:
            parsed[rel] = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        except yaml.YAMLError as exc:
            rep.error(rel, f"YAML does not parse: {exc}")
            continue
        if not parsed[rel]:
            rep.error(rel, "empty YAML file")
        _check_no_inline_secrets(rel, parsed[rel], rep)

    def one(rel: str, fn: Callable[..., None], *extra: Any) -> None:
        if rel not in parsed:
            if not any(p.path == rel for p in rep.problems):
                rep.error(rel, "file missing")
            return
        fn(rel, parsed[rel][0] if parsed[rel] else {}, rep, *extra)

    one("compose.yaml", _check_compose, deploy_dir)
    one("prefect.yaml", _check_prefect, repo_root)
    one("helm/prefect-server-values.yaml", _check_prefect_server_values)
    one("helm/prefect-worker-values.yaml", _check_prefect_worker_values)
    one("helm/dask-values.yaml", _check_dask_values)
    one("slurm/jobqueue.yaml", _check_jobqueue)

    cluster = None
    if "kubernetes/daskcluster.yaml" in parsed:
        cluster = _check_daskcluster(
            "kubernetes/daskcluster.yaml", parsed["kubernetes/daskcluster.yaml"], rep
        )
    else:
        rep.error("kubernetes/daskcluster.yaml", "file missing")
    if "kubernetes/daskautoscaler.yaml" in parsed:
        _check_daskautoscaler(
            "kubernetes/daskautoscaler.yaml", parsed["kubernetes/daskautoscaler.yaml"], cluster, rep
        )
    else:
        rep.error("kubernetes/daskautoscaler.yaml", "file missing")
    for rel, docs in parsed.items():
        if rel.startswith("kubernetes/"):
            _check_k8s_objects(rel, docs, rep)

    for required in ("Dockerfile", "README.md", ".env.example"):
        if not (deploy_dir / required).exists():
            rep.error(required, "file missing")

    problems = rep.problems
    if strict:
        problems = [p._replace(level="error") for p in problems]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("deploy_dir", nargs="?", type=Path, default=None)
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    args = parser.parse_args(argv)
    problems = check(args.deploy_dir, strict=args.strict)
    for p in problems:
        print(p)
    n_err = sum(p.level == "error" for p in problems)
    n_files = len(list((args.deploy_dir or Path(__file__).resolve().parent).rglob("*.y*ml")))
    print(f"{n_files} YAML files checked: {n_err} errors, {len(problems) - n_err} warnings")
    return 1 if n_err else 0


if __name__ == "__main__":
    sys.exit(main())
