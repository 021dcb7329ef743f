"""From what a user typed (preset, overrides, shards, name, resume) to one validated
ExperimentConfig, before any Ray worker or Prefect task starts: `resolve_experiment`, which the
CLI (`--dry-run` included) and the `train-biggan` flow both call (what the package does is in
biggan/experiment/__init__.py; what may change on a resume is biggan.experiment.changes). No Ray here.
"""

from __future__ import annotations

from typing import Any

from biggan.config import ConfigError, ExperimentConfig, apply_overrides
from biggan.config.cluster import default_streams
from biggan.config.data import NO_SHARDS
from biggan.data.info import DatasetInfo, load_dataset_info
from biggan.data.verify import usable_shards
from biggan.experiment.changes import changed_keys, check_remedies, safe_on_resume
from biggan.presets import get_preset
from biggan.runs import CheckpointDamaged, RunNotFound
from biggan.runs.naming import find_checkpoint, find_run, next_run_name
from biggan.runs.store import RunStore
from biggan.storage import location, normalize


def shard_pairs(shards: str) -> dict[str, Any]:
    """`shards` is a shard set (dataset.json; a sibling `val/` is the held-out split) or a root
    holding `train/` and `val/` as `biggan shard` writes them; local folder or URI."""
    root = location(shards)
    if (root / "dataset.json").is_file():
        val = root.parent / "val"
        has_val = val.path != root.path and (val / "dataset.json").is_file()
        return {"data.train_shards": root.uri, "data.val_shards": val.uri if has_val else None}
    if (root / "train" / "dataset.json").is_file():
        val = root / "val"
        return {"data.train_shards": (root / "train").uri,
                "data.val_shards": val.uri if (val / "dataset.json").is_file() else None}
    raise ConfigError(f"shards {root.uri} holds neither dataset.json nor train/dataset.json; "
                      f"shard the data first (`biggan shard ...`)")


def _data_info(uri: str, what: str) -> DatasetInfo:
    if uri == NO_SHARDS:
        raise ConfigError(f"{what} is {NO_SHARDS}: the run was imported without --shards and has no data to "
                          f"train on; start a new run from its weights with --init-from RUN --shards S")
    try:
        return load_dataset_info(uri)
    except FileNotFoundError:
        raise ConfigError(f"{what} {uri} has no dataset.json; shard the data first (`biggan shard ...`) "
                          f"or point --shards at a shard set") from None


def apply_data_defaults(cfg: ExperimentConfig, explicit: set[str]) -> ExperimentConfig:
    """Fill model.resolution / model.num_classes from the training shards; refuse conflicts.
    The tars' sizes are checked against dataset.json here too, before anything starts.

    `explicit`: dotted keys the user set (a preset's resolution counts as explicit: it is the
    architecture the preset names)."""
    info = _data_info(cfg.data.train_shards, "data.train_shards")
    usable_shards(cfg.data.train_shards, cfg.data.on_damaged_shard, warn=lambda line: None)
    updates: dict[str, Any] = {}
    for key, data_value in (("resolution", info.resolution), ("num_classes", info.num_classes)):
        value = getattr(cfg.model, key)
        if value is None:
            updates[f"model.{key}"] = data_value
        elif value != data_value:
            origin = "set" if f"model.{key}" in explicit else f"preset {cfg.preset}'s"
            raise ConfigError(
                f"model.{key} is {value} ({origin}) but the shard set {cfg.data.train_shards} has "
                f"{data_value} {'px images' if key == 'resolution' else 'classes'}; "
                + ("reshard at that resolution or pick a preset of the shards' resolution"
                   if key == "resolution" else f"drop the override or --set model.num_classes={data_value}"))
    if cfg.data.val_shards is not None:
        val = _data_info(cfg.data.val_shards, "data.val_shards")
        if (val.resolution, val.num_classes) != (info.resolution, info.num_classes):
            raise ConfigError(f"the val shards {cfg.data.val_shards} ({val.resolution} px, {val.num_classes} "
                              f"classes) do not match the train shards ({info.resolution} px, "
                              f"{info.num_classes} classes)")
    return apply_overrides(cfg, updates) if updates else cfg  # type: ignore[return-value]


def _normalized(cfg: ExperimentConfig) -> ExperimentConfig:
    data = cfg.data.model_copy(update={
        "train_shards": normalize(cfg.data.train_shards),
        "val_shards": None if cfg.data.val_shards is None else normalize(cfg.data.val_shards)})
    return cfg.model_copy(update={"run_root": normalize(cfg.run_root), "data": data})


def resolve_experiment(
    preset: str | None = None,  # named experiment for a new run (ignored when resuming)
    overrides: dict[str, Any] | None = None,  # dotted keys, e.g. {"train.iterations": 100}
    shards: str | None = None,  # shard set or root (train/ + val/): local folder or URI
    num_workers: int | str | None = None,  # Ray Train workers: a count or a range "MIN-MAX" (0 = in-process)
    use_gpu: bool | None = None,
    name: str | None = None,  # new run's name; None = numbered
    resume: str | None = None,  # NAME | latest | run path/URI: resume that run instead
    store: str | None = None,  # run store (local folder or URI); None = config's run_root
    init_from: str | None = None,  # run name | run path/URI | checkpoint folder: a new run from its weights
) -> ExperimentConfig:
    """One validated, fully resolved ExperimentConfig (raises ConfigError with one line)."""
    pairs: dict[str, Any] = dict(overrides or {})
    if shards is not None:
        pairs.update(shard_pairs(shards))
    if num_workers is not None:
        pairs["cluster.num_workers"] = num_workers
    if use_gpu is not None:
        pairs["cluster.use_gpu"] = use_gpu
    if store is not None:
        pairs["run_root"] = store
    if init_from is not None:
        pairs["train.init_from"] = init_from
    if resume is not None:
        if "train.init_from" in pairs:
            raise ConfigError("init_from starts a new run from another run's weights; a resumed run continues "
                              "from its own checkpoints: drop one of init_from and resume")
        cfg = _resume(resume, pairs, store)
    else:
        if name is not None:
            pairs["name"] = name
        cfg = _normalized(apply_overrides(get_preset(preset or "digits32"), pairs))  # type: ignore[arg-type]
        if cfg.train.init_from is not None:
            cfg = adopt_source_model(cfg, set(pairs))
        cfg = apply_data_defaults(cfg, set(pairs))
        root = location(cfg.run_root)
        if cfg.name is None:
            cfg = cfg.model_copy(update={"name": next_run_name(root, cfg.preset or "run")})
        elif RunStore(root / cfg.name).exists():
            raise ConfigError(f"run {cfg.name} already exists in {root.uri}; resume it with --resume "
                              f"{cfg.name}, or pick another --name")
    _check_devices(cfg)
    check_remedies(cfg)
    return with_streams(cfg)


def with_streams(cfg: ExperimentConfig) -> ExperimentConfig:
    """`cfg` with data.streams fixed (None: the lcm of the sizes cluster.num_workers allows), so the run keeps
    its data order whatever sizes it later trains at (data.streams may not change on resume)."""
    if cfg.data.streams is not None:
        return cfg
    return apply_overrides(cfg, {"data.streams": default_streams(cfg.cluster.num_workers)})  # type: ignore[return-value]


def adopt_source_model(cfg: ExperimentConfig, explicit: set[str]) -> ExperimentConfig:
    """train.init_from resolved to one checkpoint's URI, and the model taken from its run.

    The whole architecture comes from the source (SN buffer count, epsilons and prior included,
    which a preset may not share: BigGAN-PyTorch's runs track 1 singular value, our presets 3);
    `model.num_classes` is left to the new shard set (or an explicit --set), and the loop redraws
    the class embeddings when it differs. `explicit`: dotted keys the user set."""
    try:
        run, info = find_checkpoint(cfg.run_root, cfg.train.init_from or "")
        source = ExperimentConfig.model_validate(run.read_options()).model
    except (RunNotFound, CheckpointDamaged) as err:
        raise ConfigError(f"train.init_from: {err}") from None
    theirs, mine = source.model_dump(), cfg.model.model_dump()
    for key in theirs:
        if key != "num_classes" and f"model.{key}" in explicit and mine[key] != theirs[key]:
            raise ConfigError(f"model.{key} is {mine[key]!r} (set) but the source run {run.uri} has {theirs[key]!r}: "
                              f"a run started from its weights keeps its architecture (only model.num_classes "
                              f"may differ)")
    data = _data_info(cfg.data.train_shards, "data.train_shards")
    if data.resolution != source.resolution:
        raise ConfigError(f"the source run {run.uri} makes {source.resolution} px images but the shard set "
                          f"{cfg.data.train_shards} has {data.resolution} px ones; shard the data at "
                          f"{source.resolution} px to start from its weights")
    classes = cfg.model.num_classes if "model.num_classes" in explicit else None
    # BN statistics stored per truncation (an imported TF-Hub G) fit the source's weights only: the
    # new run's G samples with standing statistics (biggan.interop.finetune drops the table).
    model = source.model_copy(update={"num_classes": classes, "bn_truncation_points": 0})
    return cfg.model_copy(update={"model": model,
                                  "train": cfg.train.model_copy(update={"init_from": info.uri})})


def _resume(ref: str, pairs: dict[str, Any], store: str | None) -> ExperimentConfig:
    run = find_run(store or pairs.get("run_root") or "runs", ref)
    # A run from before data.streams existed read one stream per worker: it keeps that data order.
    base = with_streams(ExperimentConfig.model_validate(run.read_options()))
    # The run stays where it is, under its own name: both follow from its location.
    pairs = {**pairs, "run_root": run.location.parent.uri, "name": run.name}
    resumed = _normalized(apply_overrides(base, pairs))  # type: ignore[arg-type]
    refused = [key for key in changed_keys(base, resumed) if not safe_on_resume(key)]
    if refused:
        raise ConfigError(f"cannot resume {run.uri} with {', '.join(refused)} changed: they define the "
                          f"experiment its checkpoints belong to (start a new run instead)")
    return apply_data_defaults(resumed, set())


def _check_devices(cfg: ExperimentConfig) -> None:
    if cfg.cluster.use_gpu and cfg.cluster.num_workers == 0:
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("cluster.use_gpu is set but no GPU is visible in this process")
