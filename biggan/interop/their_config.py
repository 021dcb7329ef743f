"""BigGAN-PyTorch's run config (their `utils.prepare_parser` names) <-> what we can represent.

Their `train.py` stores `vars(parser.parse_args())`, completed with `resolution` and
`n_classes`, as `state_dict['config']`. Reading it: settings our models cannot represent are
refused with the reason, settings that change only training or numerics are noted. Writing it:
the architecture keys their `BigGAN.Generator(**config)` / `Discriminator(**config)` and their
`sample.py --config_from_name` read.
"""

from __future__ import annotations

from typing import Any

from biggan.config import ModelConfig
from biggan.interop.errors import UnsupportedCheckpointError

# Their argparse defaults (utils.prepare_parser) for the keys we read: what train.py passed
# when a flag was not given, so the right value when a file has no config to say otherwise.
DEFAULTS: dict[str, Any] = {
    "model": "BigGAN", "G_param": "SN", "D_param": "SN", "norm_style": "bn", "D_wide": True,
    "G_nl": "relu", "D_nl": "relu", "G_shared": False, "hier": False, "shared_dim": 0,
    "dim_z": 128, "G_attn": "64", "D_attn": "64", "num_G_SVs": 1, "num_D_SVs": 1,
    "num_G_SV_itrs": 1, "num_D_SV_itrs": 1, "BN_eps": 1e-5, "SN_eps": 1e-8, "mybn": False,
    "cross_replica": False, "G_fp16": False, "D_fp16": False, "z_var": 1.0,
    "G_init": "ortho", "D_init": "ortho", "G_depth": 1, "D_depth": 1,
}
MODELS = ("BigGAN", "BigGANdeep")  # their --model: BigGAN.py or BigGANdeep.py
DEEP_DEPTH = 2  # blocks per resolution of our BigGAN-deep (Appendix B; their deep launch script's --G_depth)
RELU_NAMES = ("relu", "inplace_relu", "ir")  # utils.activation_dict: all three are ReLU
OUTPUT_BN_EPS = 1e-5  # BigGAN.Generator builds output_layer's layers.bn without BN_eps


def value(config: dict[str, Any] | None, key: str) -> Any:
    """Their setting `key`: from the stored config, else their argparse default."""
    if config is not None and config.get(key) is not None:
        return config[key]
    return DEFAULTS[key]


def check_their_config(config: dict[str, Any] | None) -> list[str]:
    """Refuse what our models cannot be; return notes on what differs but still maps."""
    if config is None:
        return ["no stored config: eps and power iterations are BigGAN-PyTorch's argparse defaults "
                f"(BN_eps {DEFAULTS['BN_eps']}, SN_eps {DEFAULTS['SN_eps']}); pass a preset to override"]
    refusals = {
        "model": (lambda v: v in MODELS, f"only {' and '.join(MODELS)} are supported"),
        "G_param": (lambda v: v == "SN", "our G is spectrally normalised throughout"),
        "D_param": (lambda v: v == "SN", "our D is spectrally normalised throughout"),
        "norm_style": (lambda v: v == "bn", "our G uses batch norm only"),
        # BigGANdeep's D ignores D_wide (its hidden width is always a quarter of the output's).
        "D_wide": (lambda v: bool(v) or is_deep(config), "our D is the wide D (hidden width = output width)"),
        "G_nl": (lambda v: v in RELU_NAMES, "our G uses ReLU"),
        "D_nl": (lambda v: v in RELU_NAMES, "our D uses ReLU"),
    }
    for key, (ok, why) in refusals.items():
        if not ok(value(config, key)):
            raise UnsupportedCheckpointError(f"BigGAN-PyTorch setting {key}={value(config, key)!r}: {why}")
    if is_deep(config):
        _check_deep(config)
    elif value(config, "hier") and not value(config, "G_shared"):
        raise UnsupportedCheckpointError(
            "BigGAN-PyTorch setting hier without G_shared: their G cannot run it (z chunks are "
            "concatenated to class indices), so no weights of theirs have it")
    notes = []
    for net in ("G", "D"):
        if value(config, f"{net}_fp16"):
            notes.append(f"{net}_fp16: weights stored in float16 are loaded as float32; their outputs "
                         "were computed in float16, ours in float32")
    if value(config, "BN_eps") != OUTPUT_BN_EPS:
        notes.append(f"BN_eps {value(config, 'BN_eps')}: their output BN always uses eps {OUTPUT_BN_EPS}, "
                     "ours uses bn_eps in every BN; outputs differ slightly")
    if value(config, "num_G_SV_itrs") != value(config, "num_D_SV_itrs"):
        notes.append("num_G_SV_itrs != num_D_SV_itrs: we use G's for both (affects training only)")
    if value(config, "z_var") != 1.0:
        notes.append(f"z_var {value(config, 'z_var')}: their samples scaled z; ours draw N(0, I)")
    return notes


def is_deep(config: dict[str, Any] | None) -> bool:
    return value(config, "model") == "BigGANdeep"


def _check_deep(config: dict[str, Any]) -> None:
    for key in ("G_depth", "D_depth"):
        if value(config, key) != DEEP_DEPTH:
            raise UnsupportedCheckpointError(
                f"BigGAN-PyTorch setting {key}={value(config, key)!r}: our BigGAN-deep has {DEEP_DEPTH} blocks "
                "per resolution (Appendix B)")
    if not (value(config, "G_shared") and value(config, "hier")):
        raise UnsupportedCheckpointError(
            "BigGAN-PyTorch's BigGANdeep without --G_shared --hier: their G cannot run it (its linear "
            "takes [embedding, z]), so no weights of theirs have it")


def attention_resolution(spec: str | int | None) -> int | None:
    """Their `G_attn`/`D_attn` ('64', '32_64', '0') -> one resolution or None."""
    sizes = [int(s) for s in str(spec if spec is not None else "0").split("_") if int(s) > 0]
    if len(sizes) > 1:
        raise UnsupportedCheckpointError(
            f"attention at {spec!r}: our G and D have at most one non-local block")
    return sizes[0] if sizes else None


def train_hints(config: dict[str, Any] | None) -> dict[str, Any]:
    """Their optimisation settings under our TrainConfig's names (for a fine-tune's defaults)."""
    if config is None:
        return {}
    pairs = {"g_lr": "G_lr", "d_lr": "D_lr", "adam_eps": "adam_eps", "ema_decay": "ema_decay",
             "ema_start": "ema_start", "d_steps": "num_D_steps", "seed": "seed"}
    hints = {ours: config[theirs] for ours, theirs in pairs.items() if config.get(theirs) is not None}
    if config.get("G_B1") is not None and config.get("G_B2") is not None:
        hints["betas"] = (config["G_B1"], config["G_B2"])
    if config.get("G_ortho") is not None:
        hints["ortho"] = float(config["G_ortho"]) > 0
        if hints["ortho"]:
            hints["ortho_beta"] = float(config["G_ortho"])
    if config.get("batch_size") is not None:
        hints["batch_size"] = int(config["batch_size"]) * int(config.get("num_G_accumulations") or 1)
    return hints


def their_config_from(cfg: ModelConfig, dim_z: int, g_attention: int | None, d_attention: int | None) -> dict[str, Any]:
    """The architecture part of their config for one of our models (their argparse names).

    `dim_z` is the G's actual latent size (after hierarchical rounding); attention values are
    resolved resolutions (None = none). Their `--dataset` decides resolution and class count
    in their scripts; `dataset` is stored only when one of theirs matches.
    """
    datasets = {(32, 10): "C10", (32, 100): "C100", (32, 1000): "I32_hdf5", (64, 1000): "I64_hdf5",
                (128, 1000): "I128_hdf5", (256, 1000): "I256_hdf5"}
    config = {
        **DEFAULTS,
        "resolution": cfg.resolution,
        "n_classes": cfg.num_classes,
        "G_ch": cfg.ch,
        "D_ch": cfg.discriminator_ch,
        "dim_z": dim_z,
        "shared_dim": cfg.shared_dim if cfg.shared else 0,
        "G_shared": cfg.shared,
        "hier": cfg.hier,
        "G_attn": str(g_attention or 0),
        "D_attn": str(d_attention or 0),
        "num_G_SVs": cfg.sn_tracked_svs,
        "num_D_SVs": cfg.sn_tracked_svs,
        "num_G_SV_itrs": cfg.sn_power_iterations,
        "num_D_SV_itrs": cfg.sn_power_iterations,
        "BN_eps": cfg.bn_eps,
        "SN_eps": cfg.sn_eps,
        "skip_init": True,  # weights come from the files
    }
    if cfg.arch == "deep":
        config.update({"model": "BigGANdeep", "G_depth": DEEP_DEPTH, "D_depth": DEEP_DEPTH})
    # sample.py --config_from_name copies every stored key over its own flags, so an unknown
    # dataset must be left out rather than stored as None (their imsize_dict[None] fails).
    dataset = datasets.get((cfg.resolution, cfg.num_classes))
    if dataset is not None:
        config["dataset"] = dataset
    return config
