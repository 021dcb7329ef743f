"""glibc's malloc thresholds (biggan.train.allocator) are process-wide state: they are set where a
training process starts (a Ray worker's entry, launch_training's in-process path, the `biggan`
command's entry), never by TrainStep, which any thread may build (issue 21, item 4). Read from
the source with ast, as tests/unit/test_layering.py reads imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETTER = "keep_freed_memory"


def _names(tree: ast.AST) -> set[str]:
    """Every name a piece of code uses or imports (calls, references, `from x import name`)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.ImportFrom):
            found.update(alias.name for alias in node.names)
    return found


def _functions(path: Path) -> dict[str, ast.AST]:
    return {node.name: node for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)}


def test_the_training_step_does_not_set_the_malloc_thresholds():
    assert SETTER not in _names(ast.parse((ROOT / "biggan/train/step.py").read_text()))


def test_only_process_entries_set_them():
    users = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "biggan").rglob("*.py")
                   if SETTER in _names(ast.parse(path.read_text())))
    assert users == ["biggan/cli/entry.py", "biggan/train/launcher/trainer.py"]  # (allocator.py defines it)
    launcher = _functions(ROOT / "biggan/train/launcher/trainer.py")
    assert SETTER in _names(launcher["_worker_loop"])  # every Ray worker process
    assert SETTER in _names(launcher["launch_training"])  # the in-process path (num_workers=0)
    assert SETTER in _names(_functions(ROOT / "biggan/cli/entry.py")["run"])  # the `biggan` command

