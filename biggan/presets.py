"""Named experiments. A preset is a function returning an `ExperimentConfig` (torchtitan's
"a configuration is a function"); the ablation rows of Table 1 are arguments, not flags.

A preset fixes the architecture, including its resolution; the number of classes always comes
from the shard set (dataset.json), so a preset trains on any data set at its resolution.
"""

from __future__ import annotations

from collections.abc import Callable

from biggan.config import (
    ClusterConfig,
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
)

DEFAULT_SHARD_ROOT = "shards"


def _split(shards: str, split: str) -> str:
    return f"{str(shards).rstrip('/')}/{split}"


def imagenet128(
    shards: str = f"{DEFAULT_SHARD_ROOT}/imagenet128",
    ch: int = 96,
    shared: bool = True,
    hier: bool = True,
    ortho: bool = True,
) -> ExperimentConfig:
    """Table 1 row 8 (ch96, batch 2048, shared + hier + ortho): the paper's BigGAN at 128x128.

    The other rows of Table 1 are its arguments. Without hierarchical latents z has 128 dims, the
    SA-GAN baseline's, and with them 120 (Appendix B: 6 chunks of 20): the sizes at which all five
    of Table 1's parameter counts are reproduced (`biggan params`, biggan.models.params).
    """
    return ExperimentConfig(
        preset="imagenet128",
        data=DataConfig(train_shards=_split(shards, "train"), val_shards=_split(shards, "val")),
        model=ModelConfig(resolution=128, ch=ch, dim_z=120 if hier else 128, shared=shared, hier=hier),
        train=TrainConfig(batch_size=2048, ortho=ortho, precision="auto", channels_last=True),
        cluster=ClusterConfig(num_workers=8, use_gpu=True, cpus_per_worker=8),
        eval=EvalConfig(standing_passes=100),  # Appendix C.1: "typically 100" forward passes
    )


def imagenet256(shards: str = f"{DEFAULT_SHARD_ROOT}/imagenet256") -> ExperimentConfig:
    """Table 4/5 at 256x256 (Appendix B): dim_z 140, G attention at 128."""
    cfg = imagenet128(shards=shards)
    return cfg.model_copy(
        update={
            "preset": "imagenet256",
            "model": ModelConfig(resolution=256, ch=96, dim_z=140),
        }
    )


def imagenet512(shards: str = f"{DEFAULT_SHARD_ROOT}/imagenet512") -> ExperimentConfig:
    """Table 6 at 512x512 (Appendix B): dim_z 128, attention at 64.

    Recipe: the paper's 512 px models saw only the ImageNet images whose short edge is at least
    400 px (Appendix C), so shard with that filter (counted skips in dataset.json):
    `biggan shard imagenet --root R --split train --resolution 512 --min-size 400 --out ...`.
    """
    cfg = imagenet128(shards=shards)
    return cfg.model_copy(
        update={
            "preset": "imagenet512",
            "model": ModelConfig(resolution=512, ch=96, dim_z=128),
        }
    )


def jft256(shards: str = f"{DEFAULT_SHARD_ROOT}/jft256", ch: int = 128) -> ExperimentConfig:
    """Section 5.2: the JFT-300M subset with the 8.5K most frequent labels at 256x256.

    The paper's best JFT model used ch=128 (Table 3); the FID/IS feature extractor is a
    classifier trained on the dataset itself, as the paper did with an Inception v2 on JFT. Its
    IS/FID are NOT comparable with Table 3's: the paper's classifier is an Inception v2 trained on
    all of JFT-300M, ours a small convnet trained on your shards (biggan.eval.classifier); compare
    runs scored with the same classifier file only.
    """
    cfg = imagenet128(shards=shards)
    return cfg.model_copy(
        update={
            "preset": "jft256",
            "model": ModelConfig(resolution=256, ch=ch, dim_z=140),
            "eval": EvalConfig(feature_extractor="dataset-classifier", standing_passes=100),
        }
    )


def digits32(shards: str = f"{DEFAULT_SHARD_ROOT}/digits") -> ExperimentConfig:
    """The embedded demo: sklearn's handwritten digits at 32x32, learnable on 2 CPU cores.

    Every technique of the paper stays on (shared embedding, hierarchical latents, ortho reg,
    SN, self-attention, cross-replica BN over 2 Ray workers, EMA, hinge loss, 2 D steps per G
    step); only the scale shrinks. Tuned on a 2-core CPU machine (docs/benchmarks.md): ch 8
    (G and D 32 channels wide; ch 4 never learned the class conditioning),
    global batch 16 (8 per worker) and G = D = 6e-4. The paper's 5e-5 / 2e-4 is tuned for
    batch 2048 and 150k iterations, and its G:D ratio of 1:4 starved G here (1e-4 / 4e-4 never
    conditioned on class in 1,500 iterations); equal rates follow the authors' own 32 px
    (CIFAR) recipe in BigGAN-PyTorch, scaled from its 2e-4, at which class conditioning only
    appeared after ~1,500 iterations, to 6e-4, at which EMA G is class-correct by ~1,000.
    """
    return ExperimentConfig(
        preset="digits32",
        data=DataConfig(train_shards=_split(shards, "train"), val_shards=_split(shards, "val"),
                        shuffle_buffer=500, loader_workers=0),
        model=ModelConfig(resolution=32, ch=8, dim_z=64, shared_dim=32),
        train=TrainConfig(
            iterations=1000,  # class-correct by ~1,000 (docs/benchmarks.md); the demo's 5-minute budget
            batch_size=16,
            # bf16 where a measured bf16 convolution beats fp32 (fp32 elsewhere); the demo bar was
            # met in both (docs/benchmarks.md).
            precision="auto",
            g_lr=6e-4,
            d_lr=6e-4,
            ema_start=500,
            ema_decay=0.995,
            checkpoint_every=250,
            log_every=50,
            standing_stats_batches=8,
        ),
        cluster=ClusterConfig(num_workers=2, use_gpu=False, cpus_per_worker=1),
        eval=EvalConfig(num_samples=2000, batch_size=100, feature_extractor="dataset-classifier",
                        classifier_epochs=8, nn_backbone="efficientnet-lite0", standing_passes=8,
                        standing_batch=100, d_accuracy_samples=2000),
    )


def _deep(cfg: ExperimentConfig, name: str, **model) -> ExperimentConfig:
    return cfg.model_copy(update={"preset": name, "model": ModelConfig(arch="deep", **model)})


def imagenet128_deep(shards: str = f"{DEFAULT_SHARD_ROOT}/imagenet128") -> ExperimentConfig:
    """BigGAN-deep at 128x128 (Appendix B): ch 128, z 128 (not split: concatenated with the 128-d
    shared embedding and fed to every block), two bottleneck blocks per resolution, non-local
    blocks at 64 x 64. Optimisation, batch, cluster and evaluation as imagenet128 (Appendix C).
    `biggan params --arch deep` counts it against BigGAN-PyTorch's BigGANdeep.py."""
    return _deep(imagenet128(shards=shards), "imagenet128-deep", resolution=128, ch=128, dim_z=128, shared_dim=128)


def imagenet256_deep(shards: str = f"{DEFAULT_SHARD_ROOT}/imagenet256") -> ExperimentConfig:
    """BigGAN-deep at 256x256 (Appendix B): as imagenet128-deep with one more resolution."""
    return _deep(imagenet256(shards=shards), "imagenet256-deep", resolution=256, ch=128, dim_z=128, shared_dim=128)


def imagenet512_deep(shards: str = f"{DEFAULT_SHARD_ROOT}/imagenet512") -> ExperimentConfig:
    """BigGAN-deep at 512x512 (Appendix B), the architecture of TF-Hub's biggan-deep-512 G;
    shard as imagenet512 says (short edges of at least 400 px)."""
    return _deep(imagenet512(shards=shards), "imagenet512-deep", resolution=512, ch=128, dim_z=128, shared_dim=128)


def digits32_deep(shards: str = f"{DEFAULT_SHARD_ROOT}/digits") -> ExperimentConfig:
    """The embedded demo with BigGAN-deep's G and D (`biggan demo --preset digits32-deep`): every
    setting of digits32 but the architecture, which is digits32's at the same width (ch 8: G and D
    32 channels wide, the bottleneck 3x3 convs 8), z 64 concatenated with the 32-d embedding."""
    return _deep(digits32(shards=shards), "digits32-deep", resolution=32, ch=8, dim_z=64, shared_dim=32)


PRESETS: dict[str, Callable[..., ExperimentConfig]] = {
    "digits32": digits32,
    "digits32-deep": digits32_deep,
    "imagenet128": imagenet128,
    "imagenet128-deep": imagenet128_deep,
    "imagenet256": imagenet256,
    "imagenet256-deep": imagenet256_deep,
    "imagenet512": imagenet512,
    "imagenet512-deep": imagenet512_deep,
    "jft256": jft256,
}


def get_preset(name: str, **kwargs) -> ExperimentConfig:
    """The preset called `name`; a clear error lists the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
    return PRESETS[name](**kwargs)
