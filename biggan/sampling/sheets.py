"""Class-conditional sample sheets and interpolation grids, saved as PNG (atomic writes).

Interpolations as in the paper's Appendix A: z and the class embedding interpolated together
between two (z, c) pairs (Figure 8), the class embedding interpolated with z held fixed
(Figure 9), and z interpolated with the class held fixed (BigGAN-PyTorch `interp_sheet`, fix_y).
Images are drawn in eval mode, so call `biggan.sampling.standing.standing_stats_` (or use the EMA
G with its statistics) first.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn
from torchvision.utils import save_image

from biggan.sampling.latents import Prior, sample_latents
from biggan.sampling.standing import eval_mode, generate
from biggan.storage import Location, location


def grid_png(images: Tensor, nrow: int, padding: int = 2) -> bytes:
    """images in [-1, 1] -> PNG bytes of a grid with `nrow` images per row."""
    buffer = io.BytesIO()
    save_image(images.float().cpu(), buffer, format="png", nrow=nrow, normalize=True, value_range=(-1, 1),
               padding=padding)
    return buffer.getvalue()


def save_grid_atomic(images: Tensor, path: Path | str | Location, nrow: int, padding: int = 2) -> Location:
    """A PNG grid written atomically to a local path or a storage URI."""
    target = location(path)
    target.write_bytes(grid_png(images, nrow, padding))
    return target


def _device(G: nn.Module) -> torch.device:
    return next(G.parameters()).device


def save_sample_sheet(
    G: nn.Module,
    path: Path | str | Location,
    classes: list[int],  # one row per class
    per_class: int,  # samples per row
    truncation: float | None,
    seed: int,
    prior: Prior = "normal",
) -> Path:
    """A grid with one row of `per_class` samples for each class in `classes`."""
    rows = draw_class_samples(G, classes, per_class, truncation, seed, prior)
    return save_grid_atomic(torch.cat(rows), path, nrow=per_class)


def draw_class_samples(
    G: nn.Module,
    classes: list[int],
    per_class: int,
    truncation: float | None,
    seed: int,
    prior: Prior = "normal",
) -> list[Tensor]:
    """`per_class` samples in [-1, 1] for each class, one tensor per class, reproducible by seed."""
    if not classes or per_class < 1:
        raise ValueError("a sample sheet needs at least one class and one sample per class")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    device = _device(G)
    rows = []
    for cls in classes:
        z = sample_latents(per_class, G.dim_z, truncation, prior, generator, "cpu")
        y = torch.full((per_class,), int(cls), dtype=torch.int64)
        rows.append(generate(G, z.to(device), y.to(device)).cpu())
    return rows


def save_class_folders(rows: list[Tensor], classes: list[int], out: Path | str | Location) -> list[Location]:
    """One PNG per sample in `out/<class index>/<n:05d>.png` (the `biggan sample` layout)."""
    out = location(out)
    paths = []
    for cls, images in zip(classes, rows):
        for n, image in enumerate(images):
            paths.append(save_grid_atomic(image[None], out / str(cls) / f"{n:05d}.png", nrow=1, padding=0))
    return paths


INTERPOLATION_MODES = ("joint", "class", "z")


def save_interpolations(
    G: nn.Module,
    path: Path | str | Location,
    classes: list[int],  # one row per class (mode "class": row r goes classes[r] -> classes[r+1])
    steps: int,  # images per row, endpoints included
    truncation: float | None,
    seed: int,
    mode: Literal["joint", "class", "z"] = "z",  # joint: z and class vary (Fig. 8); class: z fixed (Fig. 9); z
    prior: Prior = "normal",
) -> Path:
    """Interpolation grid: linear paths between two latents, two class conditionings, or two (z, c) pairs.
    Row r goes from classes[r] to classes[r+1] (the last row back to the first) in modes "joint" and
    "class", and stays on classes[r] in mode "z"."""
    if steps < 2 or not classes:
        raise ValueError("interpolations need at least one class and two steps")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    device = _device(G)
    n = len(classes)
    y = torch.tensor(classes, dtype=torch.int64, device=device)
    alphas = torch.linspace(0.0, 1.0, steps, device=device).view(1, steps, 1)
    with torch.no_grad():
        if mode == "z":
            z_a = sample_latents(n, G.dim_z, truncation, prior, generator, "cpu").to(device)
            z_b = sample_latents(n, G.dim_z, truncation, prior, generator, "cpu").to(device)
            z = torch.lerp(z_a[:, None], z_b[:, None], alphas).reshape(n * steps, -1)
            cond = G.class_condition(y).repeat_interleave(steps, dim=0)
        elif mode in ("class", "joint"):
            z_a = sample_latents(n, G.dim_z, truncation, prior, generator, "cpu").to(device)
            if mode == "joint":  # both ends are new (z, c) pairs: z moves with the class
                z_b = sample_latents(n, G.dim_z, truncation, prior, generator, "cpu").to(device)
                z = torch.lerp(z_a[:, None], z_b[:, None], alphas).reshape(n * steps, -1)
            else:
                z = z_a.repeat_interleave(steps, dim=0)
            c_a = G.class_condition(y)
            c_b = G.class_condition(torch.roll(y, -1))
            cond = torch.lerp(c_a[:, None], c_b[:, None], alphas).reshape(n * steps, -1)
        else:
            raise ValueError(f"unknown interpolation mode {mode!r}; use one of {', '.join(INTERPOLATION_MODES)}")
    with eval_mode(G):
        images = G.forward_conditioned(z, cond).cpu()
    return save_grid_atomic(images, path, nrow=steps)
