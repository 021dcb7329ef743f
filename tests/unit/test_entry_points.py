"""How the package is installed and started: the flows install as `biggan_flows` (never as a
top-level `flows`), and `python -m biggan` / `python -m biggan.cli` are the `biggan` command
itself (one-line errors with the log's path, `--debug`), not click's bare group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("biggan")  # the console script pip installed beside python


def test_the_flows_install_as_biggan_flows_not_as_a_top_level_flows(tmp_path):
    code = ("import importlib.util, json\n"
            "found = {name: importlib.util.find_spec(name) for name in ('flows', 'biggan_flows')}\n"
            "print(json.dumps({name: spec and spec.origin for name, spec in found.items()}))\n")
    # Outside the checkout, without PYTHONPATH: what the installation provides.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what is installed
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True)
    found = json.loads(done.stdout)
    assert found["flows"] is None, f"a top-level `flows` is importable from the installation: {found}"
    assert found["biggan_flows"] == str(ROOT / "flows" / "__init__.py"), found


def test_every_package_folder_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "biggan").rglob("__init__.py")}
    assert folders | {"biggan_flows"} == listed


def _run(argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, BIGGAN_LOG_DIR=str(tmp_path / "logs"), BIGGAN_NO_REAPER="1")
    return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["biggan", "biggan.cli"])
def test_python_m_is_the_biggan_command(module, tmp_path):
    command = [sys.executable, "-m", module]
    # --help as the console script prints it; --debug is the entry point's flag, not a click option.
    assert _run([*command, "--debug", "--help"], tmp_path).stdout == _run([str(SCRIPT), "--help"], tmp_path).stdout

    # A failure is one `Error:` line plus the log's path; the traceback is in the log.
    failing = ["demo-data", "--out", "/dev/null/demo"]
    done = _run([*command, *failing], tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0].startswith("Error: NotADirectoryError: ") and lines[1].startswith("(full log: "), done.stderr
    log = Path(lines[1].removeprefix("(full log: ").removesuffix(")"))
    assert log.parent == tmp_path / "logs" and "Traceback" in log.read_text()
    # With --debug the traceback is on the terminal too.
    debug = _run([*command, "--debug", *failing], tmp_path)
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr, debug.stderr
