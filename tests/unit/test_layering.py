"""The layering rule: the package never imports Prefect; the training loop never imports Ray."""

import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "biggan"


def _modules(sub: str) -> list[str]:
    root = PACKAGE.parent
    return [
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((PACKAGE / sub).rglob("*.py"))
    ]


def _imported_after(modules: list[str], forbidden: str) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(sorted(k for k in sys.modules if k == {forbidden!r} or k.startswith({forbidden!r} + '.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip())  # a printed list of module names


def test_package_never_imports_prefect():
    mods = [m for m in _modules("") if not m.startswith("biggan.cli")]
    assert _imported_after(mods, "prefect") == []


def test_cli_import_does_not_pull_in_prefect():
    assert _imported_after(["biggan.cli"], "prefect") == []


def test_training_loop_never_imports_ray():
    mods = [m for m in _modules("train") if not m.endswith("launcher")]
    assert _imported_after(mods, "ray") == []
