"""Checkpoints in a run store: `checkpoint_<iteration:08d>/` holding `state.pt` (state dicts
only), `meta.json` and `manifest.json`, the size and sha256 of the other two, written LAST.

A checkpoint exists when its manifest does and every file it lists has the listed size; it is
intact when the bytes also hash to the listed sha256 (checked on every load). So a checkpoint
cut short by a crash, a full disk or a half-finished upload is never taken for a whole one, on a
local disk (where the folder is also renamed into place whole) or on an object store (where
objects appear one by one and only the manifest makes the set visible).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biggan.errors import UserError
from biggan.storage import Location

PREFIX = "checkpoint_"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.json"
REQUIRED_KEYS = ("G", "D", "G_ema", "opt_G", "opt_D", "iteration", "rng", "data", "config")


class CheckpointDamaged(UserError, RuntimeError):
    """A checkpoint whose files do not match its manifest or do not load (message: one line)."""


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint found in a run."""

    location: Location  # the checkpoint folder
    iteration: int  # G steps done when it was saved
    metrics: dict[str, Any]  # monitored values at save time (meta.json)
    files: dict[str, dict[str, Any]]  # file name -> {"size", "sha256"} (manifest.json)
    problem: str | None = None  # why it is damaged (a file missing or of the wrong size), else None

    @property
    def name(self) -> str:
        return self.location.name

    @property
    def uri(self) -> str:
        return self.location.uri


def checkpoint_name(iteration: int) -> str:
    return f"{PREFIX}{iteration:08d}"


def iteration_of(name: str) -> int | None:
    """The iteration in a checkpoint folder's name (`checkpoint_00001000` -> 1000); None if it has none."""
    digits = name.removeprefix(PREFIX)
    return int(digits) if name.startswith(PREFIX) and digits.isdigit() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(run: Location, state: dict[str, Any], metrics: dict[str, Any]) -> CheckpointInfo:
    """Save `state` as `checkpoint_<iteration>` of the run; an existing one is replaced."""
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}; needs {list(REQUIRED_KEYS)}")
    iteration = int(state["iteration"])
    target = run / checkpoint_name(iteration)
    meta = {"iteration": iteration, "metrics": jsonable(metrics)}
    if run.is_local:
        # Staged in a hidden folder of the run (same filesystem), then renamed into place whole.
        run.makedirs()
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=run.path))
        try:
            files = _write_files(scratch, state, meta)
            scratch.chmod(0o755)
            _replace_folder(scratch, target.local_path())
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
    else:
        with tempfile.TemporaryDirectory(prefix="biggan-save-") as tmp:
            files = _write_files(Path(tmp), state, meta)
            target.delete()  # a leftover of a crashed save must not keep an old manifest
            for name in (STATE_FILE, META_FILE, MANIFEST_FILE):  # the manifest last
                (target / name).upload(Path(tmp) / name)
    return CheckpointInfo(location=target, iteration=iteration, metrics=meta["metrics"], files=files)


def _write_files(folder: Path, state: dict[str, Any], meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    torch.save(state, folder / STATE_FILE)
    (folder / META_FILE).write_text(json.dumps(meta, indent=1))
    files = {name: {"size": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
             for name in (STATE_FILE, META_FILE)}
    (folder / MANIFEST_FILE).write_text(json.dumps({"iteration": meta["iteration"], "files": files}, indent=1))
    return files


def _replace_folder(staged: Path, target: Path) -> None:
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staged.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.rename(target)


def read_checkpoint_info(folder: Location) -> CheckpointInfo | None:
    """The checkpoint in `folder` (with `problem` set when a file is missing or of the wrong
    size), or None when it has no readable manifest (not a checkpoint, or one still being saved)."""
    try:
        manifest = (folder / MANIFEST_FILE).read_json()
        files = manifest["files"]
        iteration = int(manifest["iteration"])
    except (FileNotFoundError, OSError, KeyError, TypeError, ValueError):
        return None
    sizes = {loc.name: size for loc, size in folder.files(recursive=False)}
    problem = next((f"{(folder / name).uri} is {'missing' if name not in sizes else 'cut short'} "
                    f"({sizes.get(name, 0)} of {entry['size']} bytes)"
                    for name, entry in files.items() if sizes.get(name) != entry["size"]), None)
    metrics: dict[str, Any] = {}
    if problem is None:
        try:
            metrics = (folder / META_FILE).read_json().get("metrics", {})
        except (OSError, ValueError, AttributeError):
            problem = f"{(folder / META_FILE).uri} does not parse"
    return CheckpointInfo(location=folder, iteration=iteration, metrics=metrics, files=files, problem=problem)


def scan_checkpoints(run: Location) -> list[CheckpointInfo]:
    """Every checkpoint of a run with a manifest, damaged ones included, oldest first."""
    found = [read_checkpoint_info(child) for child in run.children() if child.name.startswith(PREFIX)]
    return sorted((info for info in found if info is not None), key=lambda info: info.iteration)


def list_checkpoints(run: Location) -> list[CheckpointInfo]:
    """Checkpoints of a run whose files have the sizes their manifest lists, oldest first."""
    return [info for info in scan_checkpoints(run) if info.problem is None]


def load_state(info: CheckpointInfo, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """state.pt of a checkpoint, its sha256 checked against the manifest (weights_only load)."""
    if info.problem is not None:
        raise CheckpointDamaged(f"{info.problem}: the checkpoint is damaged")
    expected = info.files.get(STATE_FILE, {}).get("sha256")
    source = info.location / STATE_FILE
    with tempfile.TemporaryDirectory(prefix="biggan-load-") as tmp:
        path = source.local_path() if source.is_local else source.download(Path(tmp) / STATE_FILE)
        try:
            actual = _sha256(path)
        except OSError as err:
            raise CheckpointDamaged(f"{source.uri} cannot be read: {err}") from None
        if actual != expected:
            raise CheckpointDamaged(f"{source.uri} is damaged: its sha256 does not match {MANIFEST_FILE}")
        try:
            return torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:  # noqa: BLE001 - unpickling raises many types; all mean the same to a user
            raise CheckpointDamaged(f"{source.uri} does not load: {str(err).splitlines()[0]}") from None


def jsonable(value: Any) -> Any:
    """Metrics as JSON: tensors to lists, NaN/Inf to strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return str(value)  # JSON has no NaN/Inf
    return value
