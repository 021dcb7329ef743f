"""TF-Hub's BigGAN-deep generators, as `pytorch-pretrained-biggan` stores them, in our layout.

DeepMind released BigGAN-deep's G (no D) at 128, 256 and 512 px on TF-Hub; `pytorch-pretrained-
biggan` converted them to a folder of `config.json` (its BigGANConfig) and `pytorch_model.bin`
(the state dict of its `BigGAN` module), which `BigGAN.from_pretrained('biggan-deep-256')`
downloads. `read_pretrained(dir)` reads both (the .bin with `torch.load(weights_only=True)`: data,
never code), checks the config against our BigGAN-deep and every tensor against the config, and
returns our G's state dict. What differs from our layout, all undone here:

- its class embedding is a bias-free nn.Linear on a one-hot [z_dim, classes]: our shared
  embedding transposed; its conditioning vector is [z, embedding], ours [embedding, z]: the
  columns of the input linear and of every BN projection are swapped back;
- its input linear's output is reshaped as (4, 4, C) (TF's NHWC), ours as (C, 4, 4): rows permuted;
- its blocks are `layers.{i}` with bn_0..3 / conv_0..3 (ours blocks.{j}.0 with bn1..4 / conv1..4),
  the non-local block is a layer of its own BEFORE layer `attention_layer_position` (ours
  follows the previous block, `blocks.{j}.1`); the output conv makes `channel_width` channels of
  which the first 3 are the image (`model.rgb_channels`);
- spectral norm is torch's (`weight_orig`, `weight_u`, `weight_v`): in eval mode it divides by
  u . W v with the stored pair; ours takes one power-iteration step from u0 and divides by |W v|
  with v = normalize(u0 W). So u0 is solved for v = normalize(u0 W) (least squares, float64), and
  the two agree whenever u = normalize(W v), which is how its converter leaves every pair and
  what any forward in training mode leaves (else a note says by how much they differ);
- BN statistics per truncation value [points, C]: kept whole (biggan.models.truncation_stats).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from biggan.config import ModelConfig
from biggan.interop.check import first_mismatch, shapes
from biggan.interop.errors import InteropError, UnsupportedCheckpointError
from biggan.interop.safe_load import load_tensors
from biggan.models import DeepGenerator
from biggan.models.batchnorm import ReducedBatchNorm
from biggan.models.deep_arch import generator_blocks_deep

CONFIG_NAME, WEIGHTS_NAME = "config.json", "pytorch_model.bin"  # pytorch-pretrained-biggan's file names
_KEYS = ("output_dim", "z_dim", "channel_width", "num_classes", "layers", "attention_layer_position", "eps",
         "n_stats")


@dataclass
class PretrainedG:
    """A TF-Hub BigGAN-deep G in our layout."""

    source: Path  # the folder read
    model: ModelConfig
    G: dict[str, Tensor]  # our names
    config: dict[str, Any]  # config.json as read
    notes: list[str] = field(default_factory=list)


def read_pretrained(folder: Path | str) -> PretrainedG:
    """Read, check and convert (see module docstring); InteropError names the file and the mismatch."""
    root = Path(folder)
    if not root.is_dir():
        raise InteropError(f"{root} is not a folder")
    config_path, weights_path = root / CONFIG_NAME, root / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise InteropError(f"{root} has no {path.name} (pytorch-pretrained-biggan's files: {CONFIG_NAME} "
                               f"and {WEIGHTS_NAME})")
    config = _read_config(config_path)
    model = _model_config(config, config_path)
    theirs = load_tensors(weights_path)
    if not isinstance(theirs, dict) or not all(isinstance(v, Tensor) for v in theirs.values()):
        raise InteropError(f"{weights_path} is not a state dict of tensors")
    notes: list[str] = []
    try:
        ours = _convert(theirs, config, model, notes)
    except KeyError as missing:
        raise InteropError(f"{weights_path}: no tensor {missing.args[0]!r}, which {config_path.name} implies") from None
    except RuntimeError as error:  # a shape the reshapes and solves below cannot take
        raise InteropError(f"{weights_path}: tensors do not match {config_path.name} ({error})") from None
    with torch.device("meta"):
        reference = DeepGenerator(model)
    error = first_mismatch("G", shapes(reference), ours)
    if error is not None:
        raise InteropError(f"{weights_path}: {error} ({config_path.name} implies the model's)")
    return PretrainedG(source=root, model=model, G=ours, config=config, notes=notes)


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InteropError(f"{path} is not JSON ({error})") from None
    missing = [key for key in _KEYS if not isinstance(config, dict) or key not in config]
    if missing:
        raise InteropError(f"{path} has no {', '.join(missing)}: not a pytorch-pretrained-biggan BigGANConfig")
    return config


def _model_config(config: dict[str, Any], path: Path) -> ModelConfig:
    """Our ModelConfig for its BigGANConfig; refuses what our BigGAN-deep cannot be."""
    resolution, ch, layers = config["output_dim"], config["channel_width"], config["layers"]
    try:
        specs = generator_blocks_deep(resolution, 1, None)
    except KeyError:
        raise UnsupportedCheckpointError(f"{path}: output_dim {resolution}: BigGAN-deep is 32 to 512 px") from None
    expected = [[spec.resample, spec.in_channels, spec.out_channels] for spec in specs]
    if [list(layer) for layer in layers] != expected:
        raise UnsupportedCheckpointError(f"{path}: layers {layers} are not BigGAN-deep's at {resolution} px "
                                         f"({expected}, in multiples of channel_width)")
    position = config["attention_layer_position"]
    if not (isinstance(position, int) and 0 < position < len(layers) and layers[position - 1][0]):
        raise UnsupportedCheckpointError(f"{path}: attention_layer_position {position}: ours follows the "
                                         "upsampling block of a resolution")
    try:
        return ModelConfig(
            arch="deep", resolution=resolution, num_classes=config["num_classes"], ch=ch, dim_z=config["z_dim"],
            shared_dim=config["z_dim"],  # its embedding maps classes to z_dim (class_embed_dim is unused)
            g_attention=specs[position - 1].resolution, sn_eps=config["eps"], bn_eps=config["eps"],
            sn_tracked_svs=1, rgb_channels=ch, bn_truncation_points=config["n_stats"],
        )
    except ValueError as error:  # pydantic's, e.g. a non-positive size
        raise UnsupportedCheckpointError(f"{path}: {str(error).splitlines()[-1].strip()}") from None


def _convert(theirs: dict[str, Tensor], config: dict[str, Any], model: ModelConfig,
             notes: list[str]) -> dict[str, Tensor]:
    z, ch = config["z_dim"], config["channel_width"]
    swap = torch.cat([torch.arange(z, 2 * z), torch.arange(z)])  # our [embedding, z] columns in theirs
    ours: dict[str, Tensor] = {"shared.weight": theirs["embeddings.weight"].float().t().contiguous()}
    bottom = 16 * ch
    # Their row (h * 4 + w) * C + c is our row c * 16 + h * 4 + w.
    rows = torch.arange(16 * bottom).view(4, 4, bottom).permute(2, 0, 1).reshape(-1)
    ours.update(_sn("linear", "generator.gen_z", theirs, notes, rows=rows, columns=swap))
    ours["linear.bias"] = theirs["generator.gen_z.bias"].float()[rows].clone()

    position, block, tables = config["attention_layer_position"], 0, []
    for index in range(len(config["layers"]) + 1):
        prefix = f"generator.layers.{index}"
        if index == position:  # their non-local layer: ours follows the block before it
            for mine, its in (("theta", "theta"), ("phi", "phi"), ("g", "g"), ("o", "o_conv")):
                ours.update(_sn(f"blocks.{block - 1}.1.{mine}", f"{prefix}.snconv1x1_{its}", theirs, notes))
            ours[f"blocks.{block - 1}.1.gamma"] = theirs[f"{prefix}.gamma"].float().reshape(())
            continue
        for k in range(4):
            bn, mine = f"{prefix}.bn_{k}", f"blocks.{block}.0"
            ours.update(_sn(f"{mine}.bn{k + 1}.gain", f"{bn}.scale", theirs, notes, columns=swap))
            ours.update(_sn(f"{mine}.bn{k + 1}.bias", f"{bn}.offset", theirs, notes, columns=swap))
            ours.update(_sn(f"{mine}.conv{k + 1}", f"{prefix}.conv_{k}", theirs, notes))
            ours[f"{mine}.conv{k + 1}.bias"] = theirs[f"{prefix}.conv_{k}.bias"].float().clone()
            tables.append((f"{mine}.bn{k + 1}.bn", theirs[f"{bn}.running_means"], theirs[f"{bn}.running_vars"]))
        block += 1
    ours["output_bn.gain"] = theirs["generator.bn.weight"].float().clone()
    ours["output_bn.bias"] = theirs["generator.bn.bias"].float().clone()
    tables.append(("output_bn.bn", theirs["generator.bn.running_means"], theirs["generator.bn.running_vars"]))
    ours.update(_sn("output_conv", "generator.conv_to_rgb", theirs, notes))
    ours["output_conv.bias"] = theirs["generator.conv_to_rgb.bias"].float().clone()
    ours.update(_statistics(tables, model))
    return ours


def _statistics(tables: list[tuple[str, Tensor, Tensor]], model: ModelConfig) -> dict[str, Tensor]:
    """The per-truncation table in batchnorms(G) order; every BN's running statistics at psi = 1."""
    with torch.device("meta"):
        order = [name for name, module in DeepGenerator(model).named_modules() if isinstance(module, ReducedBatchNorm)]
    found = {name: (means.float(), variances.float()) for name, means, variances in tables}
    means = torch.cat([found[name][0] for name in order], dim=1)
    variances = torch.cat([found[name][1] for name in order], dim=1)
    out = {"truncation_statistics.means": means.contiguous(), "truncation_statistics.vars": variances.contiguous()}
    for name in order:
        out[f"{name}.running_mean"] = found[name][0][-1].clone()  # psi = 1: the untruncated statistics
        out[f"{name}.running_var"] = found[name][1][-1].clone()
        out[f"{name}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    return out


@torch.no_grad()
def _sn(mine: str, its: str, theirs: dict[str, Tensor], notes: list[str], rows: Tensor | None = None,
        columns: Tensor | None = None) -> dict[str, Tensor]:
    """Our weight, u0 and sv0 for one of torch's spectral-norm layers (see module docstring)."""
    weight = theirs[f"{its}.weight_orig"].double()
    u = theirs[f"{its}.weight_u"].double()
    matrix = weight.reshape(weight.shape[0], -1)
    v = theirs[f"{its}.weight_v"].double() if f"{its}.weight_v" in theirs else _legacy_v(its, theirs, matrix, u)
    sigma = torch.dot(u, matrix @ v)  # what their eval-mode forward divides by
    if rows is not None:
        weight, u = weight[rows], u[rows]
    if columns is not None:
        weight, v = weight[:, columns], v[columns]
    matrix = weight.reshape(weight.shape[0], -1)
    # u0 with normalize(u0 W) = v: least squares on W^T u0 = v (exact when v is in W's row space).
    u0 = torch.linalg.lstsq(matrix.t(), v.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    u0 = u0 / u0.norm().clamp_min(1e-30)
    ours_sigma = torch.linalg.vector_norm(matrix @ torch.nn.functional.normalize(u0 @ matrix, dim=0))
    gap = float((ours_sigma - sigma).abs() / sigma.abs().clamp_min(1e-30))
    if gap > 1e-6:
        notes.append(f"{its}: its stored spectral-norm pair is not one power-iteration step apart; its "
                     f"sigma and ours differ by {gap:.2e} (relative)")
    return {f"{mine}.weight": weight.float().contiguous(), f"{mine}.u0": u0.float().unsqueeze(0),
            f"{mine}.sv0": sigma.float().reshape(1)}


def _legacy_v(its: str, theirs: dict[str, Tensor], matrix: Tensor, u: Tensor) -> Tensor:
    """v of a file saved by torch < 1.1 (`weight`, `weight_orig`, `weight_u`; no `weight_v`): the v
    torch's load hook solves, with u = normalize(W v) and u . W v = sigma = mean(weight_orig / weight)."""
    normalized = theirs[f"{its}.weight"].double().reshape(matrix.shape)
    sigma = (matrix / normalized).mean()
    v = torch.linalg.pinv(matrix.t() @ matrix) @ matrix.t() @ u
    return v * (sigma / torch.dot(u, matrix @ v))
