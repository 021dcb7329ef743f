"""`biggan import bigganpytorch`: BigGAN-PyTorch's weights folder as a finished run of ours.

The new run is an ordinary run of the store, so every command that reads runs (sample,
interpolate, export, evaluate, truncation-curve, memorization, train --init-from) works on it:

    options.json      a full ExperimentConfig: the model from the files (or the preset they were
                      checked against), train/eval/cluster from a preset, their optimisation
                      settings (lr, betas, eps, batch, EMA, D steps) as train.*, iterations = their itr
    checkpoint_<itr>/ G, D, G_ema; their Adam states re-keyed to our order, or fresh ones
    status.json       "finished" at their itr (nothing is left to train: it is someone's result)
    evaluate.json     marks that checkpoint
    imported.json     the folder read, their training state and config, what the import noticed

Data: evaluation needs images (reference statistics, D accuracy, neighbours), the weights do not
carry them. With `shards` the run points at that shard set (same classes and resolution as the
weights, checked). Without, `data.train_shards` is the placeholder `NO_SHARDS` and the commands
that need images refuse with one line (see biggan.config.data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from biggan.config import ConfigError, ExperimentConfig, ModelConfig, apply_overrides
from biggan.config.data import NO_SHARDS
from biggan.data.info import load_dataset_info
from biggan.experiment import shard_pairs
from biggan.interop.import_run import ImportedRun, import_bigganpytorch
from biggan.interop.reader import read_bigganpytorch
from biggan.models import discriminator_class, generator_class
from biggan.presets import get_preset
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.naming import next_run_name
from biggan.runs.store import IMPORTED_FILE
from biggan.storage import location, normalize

# train/eval/cluster sections when no preset is named: the preset of the files' resolution
# (64 px has none of its own; imagenet128's settings are the closest).
DEFAULT_PRESET = {32: "digits32", 64: "imagenet128", 128: "imagenet128", 256: "imagenet256", 512: "imagenet512"}
DEFAULT_DEEP_PRESET = {32: "digits32-deep", 64: "imagenet128-deep", 128: "imagenet128-deep",
                       256: "imagenet256-deep", 512: "imagenet512-deep"}


@dataclass
class ImportedRunWritten:
    """What `write_imported_run` made."""

    run: RunStore
    checkpoint: CheckpointInfo
    config: ExperimentConfig
    notes: list[str] = field(default_factory=list)  # say these to the user


def write_imported_run(
    weights: Path | str,  # their folder (utils.save_weights' files)
    store: str,  # run store: local folder or URI
    name: str | None = None,  # None = a new number, 00007-bigganpytorch
    preset: str | None = None,  # check the files against this preset's architecture; None = infer
    shards: str | None = None,  # shard set (or root with train/ and val/) of the same classes
    suffix: str | None = None,  # one of save_weights' copies (copy0, best0, ...)
) -> ImportedRunWritten:
    """Read, check, then write the run (options.json last: a half-written import is no run).

    Raises biggan.interop.InteropError (the files), ConfigError (preset, shards, name): one line each.
    """
    root = location(normalize(store))
    if name is not None and RunStore(root / name).exists():
        raise ConfigError(f"run {name} already exists in {root.uri}; pick another --name")
    data = shard_pairs(shards) if shards is not None else {"data.train_shards": NO_SHARDS, "data.val_shards": None}
    theirs = read_bigganpytorch(weights, suffix)
    imported = import_bigganpytorch(theirs)  # architecture from the files
    if preset is not None:  # the files must fit the preset's architecture; classes from data or files
        imported = import_bigganpytorch(theirs, model=_preset_model(preset, imported.model, data))
    if shards is not None:
        _check_data(imported.model, data["data.train_shards"])

    defaults = DEFAULT_DEEP_PRESET if imported.model.arch == "deep" else DEFAULT_PRESET
    cfg = _config(imported, preset or defaults[imported.model.resolution], data, root.uri,
                  name or next_run_name(root, "bigganpytorch"))
    run = RunStore(root / cfg.name)  # type: ignore[operator]
    info = run.save_checkpoint(_state(imported, cfg), {"source": "bigganpytorch", **_scalars(imported.their_state)})
    reason = f"imported from BigGAN-PyTorch weights {Path(weights).resolve()}"
    run.file(IMPORTED_FILE).write_json({
        "format": "bigganpytorch", "weights": str(Path(weights).resolve()), "suffix": suffix,
        "iteration": imported.iteration, "their_state": imported.their_state,
        "their_config": imported.their_config, "train_hints": imported.train_hints, "notes": imported.notes,
    }, indent=2)
    run.write_status("finished", imported.iteration, cfg.train.iterations, reason)
    run.mark_for_evaluation(info, reason)
    run.write_options(cfg.model_dump(mode="json"))
    return ImportedRunWritten(run=run, checkpoint=info, config=cfg, notes=list(imported.notes))


def _preset_model(preset: str, inferred: ModelConfig, data: dict[str, Any]) -> ModelConfig:
    model = get_preset(preset).model
    if model.num_classes is None:  # presets leave classes to the data: the shards', else the files'
        shards = data["data.train_shards"]
        classes = load_dataset_info(shards).num_classes if shards != NO_SHARDS else inferred.num_classes
        model = model.model_copy(update={"num_classes": classes})
    return model


def _check_data(model: ModelConfig, shards: str) -> None:
    info = load_dataset_info(shards)
    if (info.resolution, info.num_classes) != (model.resolution, model.num_classes):
        raise ConfigError(
            f"the weights make {model.resolution} px images of {model.num_classes} classes but the shard set "
            f"{shards} has {info.resolution} px images of {info.num_classes} classes; evaluation compares like "
            f"with like (to adapt the weights to these shards: biggan train --init-from RUN --shards ...)")


def _config(imported: ImportedRun, preset: str, data: dict[str, Any], store: str, name: str) -> ExperimentConfig:
    """The preset with the imported model, the data, and their optimisation settings as train.*."""
    pairs: dict[str, Any] = {**data, "run_root": store, "name": name,
                             "train.iterations": max(imported.iteration, 1)}
    cfg = apply_overrides(get_preset(preset), pairs)
    cfg = cfg.model_copy(update={"model": imported.model})
    for key, value in imported.train_hints.items():  # one by one: a hint ours cannot take is said, not fatal
        try:
            cfg = apply_overrides(cfg, {f"train.{key}": value})
        except ConfigError as err:
            imported.notes.append(f"their {key} not kept ({err})")
    return ExperimentConfig.model_validate(cfg.model_dump())


def _state(imported: ImportedRun, cfg: ExperimentConfig) -> dict[str, Any]:
    """A checkpoint state as the training loop writes one (biggan.runs.checkpoints.REQUIRED_KEYS)."""
    return {"G": imported.G, "D": imported.D, "G_ema": imported.G_ema,
            "opt_G": imported.opt_G if imported.opt_G is not None else _fresh_adam("G", cfg),
            "opt_D": imported.opt_D if imported.opt_D is not None else _fresh_adam("D", cfg),
            "iteration": imported.iteration, "rng": {}, "data": {}, "config": cfg.model_dump(mode="json")}


def _fresh_adam(net: str, cfg: ExperimentConfig) -> dict[str, Any]:
    """An untouched Adam's state dict over the net's parameters (meta device: nothing allocated)."""
    with torch.device("meta"):
        model = (generator_class if net == "G" else discriminator_class)(cfg.model)(cfg.model)
    lr = cfg.train.g_lr if net == "G" else cfg.train.d_lr
    return torch.optim.Adam(model.parameters(), lr=lr, betas=cfg.train.betas, eps=cfg.train.adam_eps).state_dict()


def _scalars(state: dict[str, Any]) -> dict[str, Any]:
    return {f"their_{k}": v for k, v in state.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


