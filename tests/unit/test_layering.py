"""The layering rules, read from every import statement of the package (an AST walk, imports
inside functions included):

- nothing in biggan/ but the CLI imports prefect or flows;
- nothing but the Ray launcher imports ray;
- train/ and eval/ never import each other;
- the floors: config/errors/files/storage/presets/logs/timefmt -> data, models -> sampling -> runs,
  experiment -> train | eval | interop | export -> study -> cli. A module imports only from its own floor or below.

And one reporting rule, read the same way: library code never prints. Outside biggan/cli nothing
calls or even names `print` (a `warn=print` default prints too); it logs under `biggan.<area>`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "biggan"

FLOORS = [
    ("biggan.config", "biggan.errors", "biggan.files", "biggan.storage", "biggan.presets", "biggan.logs",
     "biggan.timefmt"),
    ("biggan.data", "biggan.models"),
    ("biggan.sampling",),
    ("biggan.runs", "biggan.experiment"),
    ("biggan.train", "biggan.eval", "biggan.interop", "biggan.export"),
    ("biggan.study",),  # plans runs and scores them: above eval, and train and eval never see it
    ("biggan.cli", "biggan.__main__"),  # `python -m biggan` is the command line too
]
RAY_LAUNCHER = "biggan.train.launcher"
SIDE_BY_SIDE = ("biggan.train", "biggan.eval")  # the same floor, never importing each other


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _floor(module: str) -> int | None:
    for index, names in enumerate(FLOORS):
        if any(_within(module, name) for name in names):
            return index
    return None


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def imports_of(source: str, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import in `source`, at any depth."""
    found = []
    package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names
                         if _floor(f"{base}.{alias.name}") is not None and base == "biggan")
    return found


def violations(module: str, source: str) -> list[str]:
    out = []
    mine = _floor(module)
    for line, target in imports_of(source, module):
        where = f"{module}:{line} imports {target}"
        top = target.split(".")[0]
        if top in ("prefect", "prefect_ray", "flows", "biggan_flows") and not _within(module, "biggan.cli"):
            out.append(f"{where} (only the CLI reaches Prefect and the flows)")
        if top == "ray" and not _within(module, RAY_LAUNCHER):
            out.append(f"{where} (only {RAY_LAUNCHER} imports Ray)")
        theirs = _floor(target)
        if mine is not None and theirs is not None and theirs > mine:
            out.append(f"{where} (floor {theirs} above floor {mine})")
        for a, b in (SIDE_BY_SIDE, SIDE_BY_SIDE[::-1]):
            if _within(module, a) and _within(target, b):
                out.append(f"{where} ({a} and {b} never import each other)")
    return out


def test_every_import_of_the_package_keeps_the_layers():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        assert _floor(module) is not None or module == "biggan", f"{module} is on no floor: add it to FLOORS"
        found += violations(module, path.read_text())
    assert found == []


def test_the_checker_catches_each_kind_of_violation():
    source = ("import ray\n"
              "def f():\n"
              "    from prefect import flow\n"
              "    from biggan.eval.scoring import x\n"
              "    from biggan.cli import main\n"
              "    import biggan_flows.train\n")
    found = violations("biggan.train.loop", source)
    assert len(found) == 5, found
    assert any("only biggan.train.launcher imports Ray" in v for v in found)
    assert any("never import each other" in v for v in found)
    assert any("floor 6 above floor 4" in v for v in found)
    assert violations("biggan.train.launcher", "import ray\nimport ray.train\n") == []
    assert violations("biggan.models.layers", "from biggan.runs import RunStore\n")  # below may not look up
    assert violations("biggan.cli.train", "def f():\n    from biggan_flows.train import train_biggan_flow\n") == []


def prints_in(module: str, source: str) -> list[str]:
    """`module:line` for every use of the builtin print (a call, or passed on as a callback)
    outside the command line, which is where the package talks to a terminal."""
    if _within(module, "biggan.cli"):
        return []
    return [f"{module}:{node.lineno} uses print (log under biggan.<area> instead)"
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Name) and node.id == "print" and isinstance(node.ctx, ast.Load)]


def test_library_code_never_prints():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += prints_in(module_name(path), path.read_text())
    assert found == []


def test_the_print_checker_catches_calls_and_callbacks():
    source = ("def f(x, warn=print):\n"
              "    print(x)\n"
              "    def g():\n"
              "        print('inside', flush=True)\n"
              "    return map(print, [x])\n")
    found = prints_in("biggan.runs.store", source)
    assert sorted(v.split(" ")[0] for v in found) == ["biggan.runs.store:1", "biggan.runs.store:2",
                                                      "biggan.runs.store:4", "biggan.runs.store:5"], found
    assert prints_in("biggan.cli.train", source) == []  # the command line talks to the terminal
    assert prints_in("biggan.train.loop", "log.info('print(x)')\nprinted = 1\n") == []  # strings, other names


def fault_hooks_in(module: str, source: str) -> list[str]:
    """`module:line` for what only a fault injector does: exit the process without cleanup
    (os._exit), or read a BIGGAN_FAIL* switch. Tests inject faults from tests/ (tests/support)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "_exit" and getattr(node.value, "id", None) == "os":
            found.append(f"{module}:{node.lineno} calls os._exit")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("BIGGAN_FAIL"):
            found.append(f"{module}:{node.lineno} names the switch {node.value}")
    return found


def test_no_test_fault_switch_lives_in_the_package():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        found += fault_hooks_in(module_name(path), path.read_text())
    assert found == []
    caught = fault_hooks_in("biggan.x", "import os\nif os.environ.get('BIGGAN_FAIL_AT'):\n    os._exit(17)\n")
    assert sorted(caught) == ["biggan.x:2 names the switch BIGGAN_FAIL_AT", "biggan.x:3 calls os._exit"]


def test_cli_import_does_not_pull_in_prefect_or_ray():
    code = ("import sys, biggan.cli\n"
            "print(sorted({k.split('.')[0] for k in sys.modules} & {'prefect', 'ray', 'flows', 'biggan_flows'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"
