"""biggan.interop and biggan.export sit below training, evaluation and orchestration.

They may import biggan.config, biggan.models and biggan.files; never Prefect, Ray, the flows,
biggan.train, biggan.eval or the CLI (those call them, not the other way round). Every import
statement is read, function-level ones included.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "biggan"
FORBIDDEN = ("prefect", "ray", "flows", "biggan.train", "biggan.eval", "biggan.cli", "biggan.runs")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", ["interop", "export"])
def test_no_upward_imports(package):
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files
    bad = [(f.name, name) for f in files for name in _imports(f)
           if any(name == p or name.startswith(p + ".") for p in FORBIDDEN)]
    assert bad == []
