"""`biggan export`: a generator others can run, as weights + description + program.

Files written into `out_dir`:

- `generator.safetensors`: G_ema's state dict (our names, float32, contiguous);
- `generator.json`: the ModelConfig, dim_z / num_classes / resolution, which BN statistics the
  weights carry (and the truncation they were computed at), sha256 of every file, how to call
  the program; `read_generator_export` reads it back and checks the hashes;
- `generator.pt2` (or `generator.ts`): the self-contained program, see `program.py`.

Contract on BN statistics: the caller passes a G_ema whose BN running statistics ARE the
statistics images should be drawn with, normally standing statistics (Appendix C.1) computed
at the truncation the user will sample at; this module bakes whatever it is given and records
what the caller says it is. Standing statistics depend on the truncation they were gathered
at, so to export for another threshold, recompute them at that threshold (the CLI:
`biggan export --run R --truncation T`) and export again; the program still accepts any
threshold, computed with the statistics it was exported with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from biggan.config import ModelConfig
from biggan.export.program import export_program
from biggan.files import sha256_file
from biggan.storage import location

FORMAT = "biggan-generator"
FORMAT_VERSION = 1
WEIGHTS, DESCRIPTION = "generator.safetensors", "generator.json"

USAGE_PT2 = """import torch
G = torch.export.load("generator.pt2").module()
z = torch.randn(8, DIM_Z)                      # N(0, I) draws; the program truncates them
y = torch.randint(0, NUM_CLASSES, (8,))        # class indices, int64
images = G(z, y, torch.tensor(0.5))            # [8, 3, R, R] in [-1, 1]; threshold <= 0 or inf: none"""


def export_generator(
    G_ema: nn.Module,
    model_cfg: ModelConfig,
    out_dir: Path | str,
    standing_truncation: float | None = None,  # threshold the standing statistics were gathered at
    standing_batches: int | None = None,  # forward passes averaged; None = running stats as trained
    program: str | None = "pt2",  # "pt2", "ts" or None (weights and JSON only)
    source: dict[str, Any] | None = None,  # where it came from (run, checkpoint, iteration), recorded as is
) -> dict[str, Any]:
    """Write the three files (see module docstring); returns the generator.json payload.

    G_ema itself is left as it was (mode, device); the program is built from a frozen copy.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in G_ema.state_dict().items()}
    save_file(state, str(out / WEIGHTS), metadata={"format": FORMAT, "format_version": str(FORMAT_VERSION)})
    description: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_cfg.model_dump(mode="json"),
        "dim_z": int(G_ema.dim_z),  # after hierarchical rounding: what z must have
        "num_classes": model_cfg.num_classes,
        "resolution": model_cfg.resolution,
        "bn_statistics": _statistics(standing_truncation, standing_batches),
        "weights": {"file": WEIGHTS, "sha256": sha256_file(out / WEIGHTS), "dtype": "float32"},
        "source": source or {},
        "torch_version": torch.__version__,
    }
    if program is not None:
        info = export_program(G_ema, out, program, prior=model_cfg.latent)
        usage = USAGE_PT2 if info["format"] == "torch.export" else USAGE_PT2.replace(
            'torch.export.load("generator.pt2").module()', 'torch.jit.load("generator.ts")')
        description["program"] = {
            **info,
            "sha256": sha256_file(out / info["file"]),
            "inputs": {"z": "float32 [B, dim_z], N(0, I) draws",
                       "y": "int64 [B], class indices in [0, num_classes)",
                       "truncation": "float32 scalar tensor; <= 0 or inf = no truncation"},
            "output": "float32 [B, 3, resolution, resolution] in [-1, 1]",
            "truncation": "inverse-CDF map of z onto N(0, 1) truncated to [-t, t]: exact in "
                          "distribution, deterministic in z (biggan.export.truncation)",
            "latent": f"the program maps the N(0, I) draws onto the model's prior {model_cfg.latent!r} (Appendix "
                      f"E), truncating only its normal part (biggan.export.priors)",
            "usage": usage.replace("DIM_Z", str(G_ema.dim_z)).replace("NUM_CLASSES", str(model_cfg.num_classes)),
        }
    location(out / DESCRIPTION).write_text(json.dumps(description, indent=2))
    return description


def read_generator_export(out_dir: Path | str) -> tuple[ModelConfig, dict[str, Tensor], dict[str, Any]]:
    """(ModelConfig, G_ema state dict, generator.json) of an export, hashes checked."""
    out = Path(out_dir)
    description = json.loads((out / DESCRIPTION).read_text())
    if description.get("format") != FORMAT or description.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{out / DESCRIPTION} is not a {FORMAT} v{FORMAT_VERSION} description")
    for entry in (description["weights"], description.get("program")):
        if entry is not None and sha256_file(out / entry["file"]) != entry["sha256"]:
            raise ValueError(f"{out / entry['file']} does not match the sha256 in {DESCRIPTION}")
    state = load_file(str(out / WEIGHTS))
    return ModelConfig.model_validate(description["model"]), state, description


def _statistics(truncation: float | None, batches: int | None) -> dict[str, Any]:
    if batches is None:
        return {"kind": "running", "truncation": None, "batches": None,
                "note": "BN running averages as trained (no standing statistics were computed)"}
    return {"kind": "standing", "truncation": truncation, "batches": batches,
            "note": "Appendix C.1 standing statistics; images are best at this truncation"}
