"""Checkpoints: one directory per save holding `state.pt` (state dicts only) and `meta.json`.

A checkpoint directory is named `checkpoint_<iteration:08d>` inside the run directory, so
sorting names sorts iterations. State dicts only, loaded with `weights_only=True` (STYLE.md:
never pickle whole modules). Every write goes to a temp path first and is moved into place
with `os.replace`, so a killed run never leaves a half-written checkpoint that looks whole.

`RUN_DIR/evaluate.json` marks the checkpoint to evaluate: the last one before a collapse
(Section 4: "we stop training just after collapse, and report scores from checkpoints saved
just before"), else the newest.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from biggan.files import atomic_write_text

CHECKPOINT_PREFIX = "checkpoint_"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
EVALUATE_FILE = "evaluate.json"
REQUIRED_KEYS = ("G", "D", "G_ema", "opt_G", "opt_D", "iteration", "rng", "data", "config")


@dataclass(frozen=True)
class CheckpointInfo:
    """A checkpoint found in a run directory."""

    path: Path  # the checkpoint directory
    iteration: int  # G steps done when it was saved
    metrics: dict[str, Any]  # what meta.json recorded (monitored values at save time)


def checkpoint_name(iteration: int) -> str:
    return f"{CHECKPOINT_PREFIX}{iteration:08d}"


def write_checkpoint_files(directory: Path, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Write state.pt and meta.json into an existing (scratch) folder; no atomicity here."""
    missing = [key for key in REQUIRED_KEYS if key not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}; needs {list(REQUIRED_KEYS)}")
    directory = Path(directory)
    torch.save(state, directory / STATE_FILE)
    meta = {"iteration": int(state["iteration"]), "metrics": _jsonable(metrics or {})}
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))


def save_checkpoint(directory: Path, state: dict[str, Any], metrics: dict[str, Any] | None = None) -> Path:
    """Save `state` as the checkpoint directory `directory` atomically; return its path.

    The files are written into a hidden sibling folder that is renamed into place at the end,
    so readers see either no checkpoint or a whole one. An existing one is replaced.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        write_checkpoint_files(scratch, state, metrics)
        install_directory(scratch, directory)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return directory


def install_directory(source: Path, directory: Path) -> None:
    """Move a finished folder to `directory`, replacing an older one at that path."""
    if directory.exists():
        old = directory.with_name(f".{directory.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
        os.replace(source, directory)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, directory)


def load_state(directory: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state dict of a checkpoint directory (weights_only: tensors and plain containers)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint (no {STATE_FILE})")
    return torch.load(path, map_location=map_location, weights_only=True)


def read_meta(directory: Path) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a checkpoint (no {META_FILE})")
    return json.loads(path.read_text())


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Complete checkpoints in `run_dir`, sorted by iteration (half-written ones are hidden)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for child in run_dir.iterdir():
        if not child.is_dir() or not child.name.startswith(CHECKPOINT_PREFIX):
            continue
        if not (child / STATE_FILE).is_file() or not (child / META_FILE).is_file():
            continue
        meta = read_meta(child)
        found.append(CheckpointInfo(path=child, iteration=int(meta["iteration"]), metrics=meta.get("metrics", {})))
    return sorted(found, key=lambda info: info.iteration)


def mark_for_evaluation(run_dir: Path, checkpoint: Path | None, reason: str) -> None:
    """Write RUN_DIR/evaluate.json naming the checkpoint to evaluate and why."""
    payload = {
        "checkpoint": None if checkpoint is None else Path(checkpoint).name,
        "reason": reason,
    }
    atomic_write_text(Path(run_dir) / EVALUATE_FILE, json.dumps(payload, indent=2))


def checkpoint_to_evaluate(run_dir: Path) -> Path:
    """The checkpoint the run marked (last before collapse), else the newest one."""
    run_dir = Path(run_dir)
    marker = run_dir / EVALUATE_FILE
    if marker.is_file():
        name = json.loads(marker.read_text()).get("checkpoint")
        if name is not None and (run_dir / name / STATE_FILE).is_file():
            return run_dir / name
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoint in {run_dir}")
    return checkpoints[-1].path


def prune_checkpoints(run_dir: Path, keep_last: int, best_metric: str | None = None,
                      mode: str = "min", protect: tuple[Path, ...] = ()) -> list[Path]:
    """Delete all but the newest `keep_last` checkpoints and the best by `best_metric`.

    Ray's CheckpointConfig keeps top-K by ONE score, which cannot express "last few + best";
    so Ray keeps checkpoints by iteration (the newest) and this function, run by rank 0 in the
    run directory, keeps our own copies: newest `keep_last` + best by the monitored value +
    anything in `protect` (the checkpoint marked for evaluation). Returns the deleted paths.
    """
    checkpoints = list_checkpoints(run_dir)
    keep = {info.path for info in checkpoints[-keep_last:]}
    keep.update(Path(p) for p in protect)
    if best_metric is not None:
        scored = [info for info in checkpoints if _finite(info.metrics.get(best_metric))]
        if scored:
            pick = min if mode == "min" else max
            keep.add(pick(scored, key=lambda info: info.metrics[best_metric]).path)
    deleted = []
    for info in checkpoints:
        if info.path not in keep:
            shutil.rmtree(info.path, ignore_errors=True)
            deleted.append(info.path)
    return deleted


def load_generator(checkpoint_dir: Path, ema: bool = True):
    """(G in eval mode, the run's ExperimentConfig, iteration) from a checkpoint directory."""
    from biggan.config import ExperimentConfig
    from biggan.models import Generator

    state = load_state(checkpoint_dir)
    cfg = ExperimentConfig.model_validate(state["config"])
    G = Generator(cfg.model)
    G.load_state_dict(state["G_ema" if ema else "G"])
    G.eval()
    return G, cfg, int(state["iteration"])


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value and abs(value) != float("inf")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, float) and (value != value or abs(value) == float("inf")):
        return str(value)  # JSON has no NaN/Inf
    return value
