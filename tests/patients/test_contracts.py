"""The patients package is generic, pure computation: it names no modality, does no I/O
and never imports Prefect (pyproject's import-linter contracts do not list it yet)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import resistomics.patients as patients

PACKAGE_DIR = Path(patients.__file__).parent
ALLOWED_FIRST_PARTY = {"resistomics.errors", "resistomics.patients"}


def test_importing_pulls_in_no_io_orchestration_or_modality():
    code = (
        "import sys, resistomics.patients\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'prefect', 'zarr', 'flows'}"
        " or m.startswith(('resistomics.storage', 'resistomics.catalog',"
        " 'resistomics.pipeline', 'resistomics.modalities')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_source_imports_only_errors_from_the_platform():
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for name in names:
                    if name.split(".")[0] in {"resistomics", "flows"}:
                        assert any(
                            name == allowed or name.startswith(allowed + ".")
                            for allowed in ALLOWED_FIRST_PARTY
                        ), f"{path.name}:{node.lineno} imports {name}"
