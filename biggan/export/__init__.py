"""biggan.export: take generators out.

- `export_generator(G_ema, model_cfg, out_dir, ...)`: generator.safetensors + generator.json +
  a program (`generator.pt2`, torch.export) that runs with torch alone;
  `read_generator_export(out_dir)` reads the first two back;
- `export_bigganpytorch(G, D, G_ema, cfg, out_dir)`: BigGAN-PyTorch's own files;
- `truncate_by_cdf(z, t)`: the program's deterministic truncation map.
"""

from __future__ import annotations

from biggan.export.bigganpytorch import export_bigganpytorch
from biggan.export.generator import export_generator, read_generator_export
from biggan.export.truncation import truncate_by_cdf

__all__ = ["export_bigganpytorch", "export_generator", "read_generator_export", "truncate_by_cdf"]
