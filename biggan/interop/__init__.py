"""biggan.interop: bring BigGAN weights in (BigGAN-PyTorch's files, BigGAN and BigGAN-deep; TF-Hub's
BigGAN-deep generators as pytorch-pretrained-biggan stores them), start runs from others' weights.

Pure functions and small dataclasses; the CLI and the run store call them:

- `read_bigganpytorch(dir)` -> ImportedWeights (their names), `import_bigganpytorch(dir)` ->
  ImportedRun (our names, ModelConfig, Adam states), `load_into(G, D, G_ema, run)`;
- `biggan.interop.pretrained.read_pretrained(dir)` -> PretrainedG (TF-Hub's G in our layout);
- `infer_model_config(G_sd, D_sd, their_config)` -> ModelConfig from their tensors;
- `to_bigganpytorch(G_sd, D_sd, G_ema_sd, model)` -> their files, `write_bigganpytorch`;
- `init_from(G, D, G_ema, source_state, source_cfg, target_cfg)` -> InitReport (fine-tuning).

Errors: LayerMismatchError (first differing layer, both shapes), UnsupportedCheckpointError,
UnsafePickleError; all are InteropError (a ValueError) with a one-line message.
"""

from __future__ import annotations

from biggan.interop.errors import (
    InteropError,
    LayerMismatchError,
    UnsafePickleError,
    UnsupportedCheckpointError,
)
from biggan.interop.finetune import InitReport, init_from
from biggan.interop.import_run import ImportedRun, import_bigganpytorch, load_into
from biggan.interop.infer import infer_model_config
from biggan.interop.reader import ImportedWeights, read_bigganpytorch
from biggan.interop.writer import to_bigganpytorch, write_bigganpytorch

__all__ = [
    "ImportedRun", "ImportedWeights", "InitReport", "InteropError", "LayerMismatchError",
    "UnsafePickleError", "UnsupportedCheckpointError", "import_bigganpytorch", "infer_model_config",
    "init_from", "load_into", "read_bigganpytorch", "to_bigganpytorch", "write_bigganpytorch",
]
