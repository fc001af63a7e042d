"""The signatures package stays a pure, lazy computation layer."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import resistomics.signatures as signatures

PACKAGE_DIR = Path(signatures.__file__).parent


def test_importing_pulls_in_no_io_or_orchestration():
    code = (
        "import sys, resistomics.signatures\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'prefect', 'zarr'}"
        " or m.startswith('resistomics.storage'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def test_source_never_computes_or_persists():
    for path in PACKAGE_DIR.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in {"compute", "persist"}:
                raise AssertionError(f"{path.name}:{node.lineno} calls .{node.attr}")
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = (
                    [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else [a.name for a in node.names]
                )
                for name in names:
                    assert not name.startswith(("prefect", "zarr", "resistomics.storage")), (
                        f"{path.name}:{node.lineno} imports {name}"
                    )


def test_public_api_is_exported():
    for name in signatures.__all__:
        assert hasattr(signatures, name), name
    assert all(not name.startswith("_") for name in signatures.__all__)
