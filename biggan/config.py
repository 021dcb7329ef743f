"""The one typed configuration tree of biggan.

Every entry point (CLI, Prefect flow parameters, Ray worker) validates a dict into these
models once, where it enters; nothing deeper in the code looks values up by string.
Defaults are the paper's values (Brock et al. 2019, Appendix C) unless a comment says
otherwise. Named experiments live in `biggan.presets`, not here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SUPPORTED_RESOLUTIONS = (32, 64, 128, 256, 512)

Resolution = Literal[32, 64, 128, 256, 512]


class _Strict(BaseModel):
    """Base: unknown keys are errors, so a typo in an override never passes silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _check_resolution(value: int) -> int:
    if value not in SUPPORTED_RESOLUTIONS:
        raise ValueError(
            f"resolution {value} is not supported; choose one of {', '.join(map(str, SUPPORTED_RESOLUTIONS))}"
        )
    return value


# --------------------------------------------------------------------------- sharding


class ShardConfig(_Strict):
    """What `biggan shard ...` and the `shard-dataset` flow take."""

    source: Literal["imagenet", "jft"]  # ImageNet folder layout or JFT-style JSON-lines manifest
    out: Path  # output folder for the tars and dataset.json
    resolution: int  # target square size (Appendix C: crop long edge to centre square, area resize)
    root: Path | None = None  # imagenet: dataset root holding train/ and val/
    split: Literal["train", "val"] = "train"  # imagenet: which split to shard
    val_ground_truth: Path | None = None  # imagenet flat val/: devkit txt or LOC_val_solution.csv
    devkit_classes: Path | None = None  # imagenet: devkit class order (wnid per line) for the txt form
    manifest: Path | None = None  # jft: JSON lines {"path": ..., "labels": [...]}
    top_labels: int | None = Field(default=None, ge=1)  # jft: keep the K most frequent labels
    min_size: int | None = Field(default=None, ge=1)  # drop images whose short edge is below this
    samples_per_shard: int = Field(default=1000, ge=1)  # samples per tar
    format: Literal["png", "jpg"] = "png"  # stored encoding of the pre-resized sample
    jpeg_quality: int = Field(default=95, ge=1, le=100)  # only for format=jpg
    seed: int = 0  # seed of the source-list shuffle (every shard mixes classes)
    ray_address: str | None = None  # write shards with a Ray task runner on this cluster

    _resolution = field_validator("resolution")(_check_resolution)

    @model_validator(mode="after")
    def _check_source(self) -> "ShardConfig":
        if self.source == "imagenet":
            if self.root is None:
                raise ValueError("source 'imagenet' needs root (the folder holding train/ and val/)")
            if not Path(self.root).is_dir():
                raise ValueError(f"imagenet root {self.root} is not a folder")
        if self.source == "jft":
            if self.manifest is None:
                raise ValueError("source 'jft' needs manifest (a JSON-lines file)")
            if not Path(self.manifest).is_file():
                raise ValueError(f"manifest {self.manifest} does not exist")
        return self


# --------------------------------------------------------------------------- data for training


class DataConfig(_Strict):
    """Where training and evaluation read shards from."""

    train_shards: Path  # folder with tars + dataset.json (training split)
    val_shards: Path | None = None  # held-out split (memorization check, FID vs val)
    shuffle_buffer: int = Field(default=2000, ge=0)  # WebDataset sample shuffle buffer per worker
    loader_workers: int = Field(default=1, ge=0)  # DataLoader worker processes per training rank


# --------------------------------------------------------------------------- model


class ModelConfig(_Strict):
    """Generator and discriminator architecture (Section 3, Appendix B)."""

    resolution: int = 128
    num_classes: int = Field(default=1000, ge=1)
    ch: int = Field(default=96, ge=1)  # channel multiplier of G (Table 1: 64 or 96)
    d_ch: int | None = Field(default=None, ge=1)  # channel multiplier of D; None = same as ch
    dim_z: int | None = Field(default=None, ge=1)  # None = the paper's size for the resolution
    shared_dim: int = Field(default=128, ge=1)  # shared class embedding size (Section 3)
    shared: bool = True  # shared embedding -> per-layer BN gain/bias projections (Table 1 "Shared")
    hier: bool = True  # hierarchical latents: z split across blocks (Table 1 "Hier.")
    g_attention: int | None = -1  # resolution of G's non-local block; -1 = paper's, None = none
    d_attention: int | None = -1  # resolution of D's non-local block; -1 = paper's, None = none
    sn_eps: float = Field(default=1e-4, gt=0)  # Appendix C: SN epsilon raised to 1e-4
    bn_eps: float = Field(default=1e-4, gt=0)  # Appendix C: BN epsilon raised to 1e-4
    sn_power_iterations: int = Field(default=1, ge=1)  # power iterations per forward
    sn_tracked_svs: int = Field(default=3, ge=1)  # singular values tracked per layer (Section 4.1)
    latent: Literal["normal", "bernoulli", "censored_normal"] = "normal"  # Appendix E priors

    _resolution = field_validator("resolution")(_check_resolution)

    @property
    def discriminator_ch(self) -> int:
        return self.d_ch if self.d_ch is not None else self.ch


# --------------------------------------------------------------------------- training


class CollapseConfig(_Strict):
    """Stop rule for training collapse (Section 4): stop just after, evaluate just before."""

    enabled: bool = True
    d_loss_jump: float = Field(default=10.0, gt=1)  # D loss above this x its running median
    # Hinge D loss is 2 when D outputs 0 (chance); a noisy minibatch loss below that is not the
    # collapse spike of Section 4, however small the running median has become.
    d_loss_floor: float = Field(default=2.0, ge=0)  # the jump must also exceed this
    sv_explosion: float = Field(default=20.0, gt=1)  # a layer's top SV above this x its running median
    patience: int = Field(default=2, ge=1)  # consecutive logged intervals that must trip the rule
    window: int = Field(default=20, ge=2)  # logged intervals in the running median
    warmup: int = Field(default=5, ge=0)  # logged intervals before the rule is armed


class TrainConfig(_Strict):
    """Optimisation (Section 3, Appendix C)."""

    iterations: int = Field(default=150_000, ge=1)  # G steps
    batch_size: int = Field(default=2048, ge=1)  # global batch per G step (all workers x accumulation)
    accumulation: int = Field(default=1, ge=1)  # micro-batches per step per worker
    d_steps: int = Field(default=2, ge=1)  # D steps per G step
    g_lr: float = Field(default=5e-5, gt=0)
    d_lr: float = Field(default=2e-4, gt=0)
    betas: tuple[float, float] = (0.0, 0.999)
    # Paper silent; the authors' BigGAN-PyTorch launch scripts use 1e-6.
    adam_eps: float = Field(default=1e-6, gt=0)
    ortho: bool = True  # modified orthogonal regularization on G (Section 3.1, eq. 3)
    ortho_beta: float = Field(default=1e-4, ge=0)
    ema_decay: float = Field(default=0.9999, ge=0, lt=1)
    # Paper silent on when EMA starts; BigGAN-PyTorch starts it at iteration 20000.
    ema_start: int = Field(default=20_000, ge=0)
    seed: int = 0
    # fp32 (bit-reproducible), bf16 (autocast on any device) or auto: bf16 where it pays (CUDA
    # with bf16, CPU with AMX), else fp32; SN, BN statistics and affine, D's head and losses stay
    # fp32 under autocast (biggan/train/precision.py says why AVX512-BF16 alone is not enough).
    precision: Literal["fp32", "bf16", "auto"] = "fp32"
    # NHWC activations and weights: 1.1-1.35x faster CPU training steps here (oneDNN reorders
    # NCHW on every conv; docs/performance.md), and the layout tensor cores want on GPU.
    channels_last: bool = True
    checkpoint_every: int = Field(default=2000, ge=1)  # iterations between checkpoints
    keep_checkpoints: int = Field(default=3, ge=1)  # newest kept (plus the best)
    best_metric: str | None = "loss/G"  # train: monitored value for the kept "best" checkpoint (a proxy; no FID in the loop)
    best_mode: Literal["min", "max"] = "min"  # train: best = lowest (min) or highest (max) best_metric
    log_every: int = Field(default=100, ge=1)  # iterations between JSON-lines records
    sample_every: int = Field(default=1, ge=1)  # checkpoints between sample sheets
    standing_stats_batches: int = Field(default=16, ge=1)  # Appendix C.1 forward passes
    collapse: CollapseConfig = CollapseConfig()


# --------------------------------------------------------------------------- distribution


class ClusterConfig(_Strict):
    """How the Ray job runs."""

    num_workers: int = Field(default=2, ge=0)  # Ray Train workers; 0 = run in-process
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1, gt=0)
    ray_address: str | None = None  # existing cluster; None = RAY_ADDRESS or a new local one
    max_failures: int = Field(default=2, ge=0)  # Ray FailureConfig: restarts from last checkpoint
    dashboard_host: str = "127.0.0.1"


# --------------------------------------------------------------------------- evaluation


class EvalConfig(_Strict):
    """Evaluation (Sections 3.1, 4.2, 5) through torch-fidelity."""

    num_samples: int = Field(default=50_000, ge=2)
    batch_size: int = Field(default=64, ge=1)
    truncation: float | None = None  # None = plain N(0, I); else resample beyond this threshold
    reference: Literal["train", "val"] = "train"  # which shards the reference statistics use
    feature_extractor: Literal["inception-v3-compat", "dataset-classifier"] = "inception-v3-compat"
    inception_weights: Path | None = None  # local pt_inception-2015-12-05 weights (offline clusters)
    kid: bool = False
    precision_recall: bool = False
    thresholds: list[float] = [2.0, 1.5, 1.0, 0.75, 0.5, 0.25, 0.04]  # truncation curve sweep
    classifier_epochs: int = Field(default=10, ge=1)  # dataset-classifier training
    nn_backbone: Literal["efficientnet-lite0", "pixel"] = "efficientnet-lite0"
    nn_queries_per_class: int = Field(default=4, ge=1)  # generated samples per class for NN grids
    nn_neighbours: int = Field(default=5, ge=1)
    seed: int = 0
    cache_dir: Path | None = None  # eval: classifier + reference-stat cache; None = <run_root>/.eval-cache

    @field_validator("thresholds")
    @classmethod
    def _positive(cls, value: list[float]) -> list[float]:
        if not value or any(t <= 0 for t in value):
            raise ValueError("truncation thresholds must be a non-empty list of positive numbers")
        return value


# --------------------------------------------------------------------------- the whole run


class ExperimentConfig(_Strict):
    """One training run: what `train-biggan` takes and what is written as options.json."""

    name: str = "biggan"
    run_root: Path = Path("runs")  # run directories live under here (absolute once resolved)
    data: DataConfig
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    cluster: ClusterConfig = ClusterConfig()
    eval: EvalConfig = EvalConfig()

    @property
    def run_dir(self) -> Path:
        return Path(self.run_root).resolve() / self.name


def apply_overrides(config: BaseModel, overrides: dict[str, Any] | None) -> BaseModel:
    """Return a re-validated copy of `config` with dotted-key overrides applied.

    `{"train.iterations": 10, "model.ch": 32}`; an unknown key raises with its name.
    """
    data = config.model_dump()
    for dotted, value in (overrides or {}).items():
        node = data
        parts = dotted.split(".")
        for part in parts[:-1]:
            if not isinstance(node, dict) or part not in node:
                raise KeyError(f"unknown config key {dotted!r}")
            node = node[part]
        if not isinstance(node, dict) or parts[-1] not in node:
            raise KeyError(f"unknown config key {dotted!r}")
        node[parts[-1]] = value
    return type(config).model_validate(data)


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `key=value` CLI override; the value is read as YAML (numbers, bools, lists)."""
    import yaml

    if "=" not in text:
        raise ValueError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    return key.strip(), yaml.safe_load(raw)
