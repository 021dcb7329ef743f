"""The paper's studies as named grids: a study preset is a base preset + overrides + a grid
(functions, like biggan.presets). `biggan study --study-preset NAME` runs one; `--preset` swaps the
base (e.g. the priors on your own data's preset) and `--set` adds overrides.

- `table1`: Table 1's nine rows (batch, width, shared embedding, hierarchical latents, ortho reg)
  on imagenet128; the paper reports each as mean +- std over 3 seeds, with the iteration at which
  it collapsed.
- `appendix-h-lr`: Appendix H's learning-rate sweep, the Cartesian product of G's and D's rates.
- `appendix-h-d-beta1`: Appendix H's sweep of D's Adam beta1 alone (`train.d_betas`: D's betas
  apart from G's), with the paper's beta1 = 0 as the reference cell.
- `appendix-h-ortho`: Appendix H's sweep of the orthogonal regularisation strength in G.
- `appendix-e-priors`: Appendix E's ten latent priors (biggan.sampling.latents).
- `digits32-batch`: the demo-scale study of docs/studies.md: digits32's batch in {16, 32, 64} x 3
  seeds at a fixed wall budget (3 minutes) per run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from biggan.sampling.latents import PRIORS
from biggan.study.spec import StudyError, StudySpec


@dataclass(frozen=True)
class StudyPreset:
    preset: str  # base preset
    overrides: dict[str, Any] = field(default_factory=dict)  # every cell
    grid: dict[str, list[Any]] = field(default_factory=dict)  # a product ...
    cells: list[dict[str, Any]] = field(default_factory=list)  # ... or explicit cells
    seeds: int = 3  # the paper's tables are means over 3 seeds
    description: str = ""


def _row(name: str, batch: int, ch: int, shared: bool, hier: bool, ortho: bool) -> dict[str, Any]:
    # Without hierarchical latents z has 128 dims (the SA-GAN baseline's), with them 120 (biggan.presets).
    return {"name": name, "train.batch_size": batch, "model.ch": ch, "model.shared": shared,
            "model.hier": hier, "model.dim_z": 120 if hier else 128, "train.ortho": ortho}


def table1() -> StudyPreset:
    """Table 1: the SA-GAN baseline scaled in batch, then width, then the shared embedding,
    hierarchical latents and orthogonal regularisation added one at a time, and the full model
    at width 64 (rows in the paper's order)."""
    return StudyPreset(preset="imagenet128", description="Table 1's rows", cells=[
        _row("b256-ch64", 256, 64, False, False, False),
        _row("b512-ch64", 512, 64, False, False, False),
        _row("b1024-ch64", 1024, 64, False, False, False),
        _row("b2048-ch64", 2048, 64, False, False, False),
        _row("b2048-ch96", 2048, 96, False, False, False),
        _row("b2048-ch96-shared", 2048, 96, True, False, False),
        _row("b2048-ch96-shared-hier", 2048, 96, True, True, False),
        _row("b2048-ch96-shared-hier-ortho", 2048, 96, True, True, True),
        _row("b2048-ch64-shared-hier-ortho", 2048, 64, True, True, True),
    ])


# Appendix H: "we swept the Cartesian product of the learning rates for each network through
# [1e-5, 5e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1e-3]".
APPENDIX_H_RATES = [1e-5, 5e-5, 1e-4, 2e-4, 4e-4, 8e-4, 1e-3]


def appendix_h_lr() -> StudyPreset:
    return StudyPreset(preset="imagenet128", grid={"train.g_lr": APPENDIX_H_RATES, "train.d_lr": APPENDIX_H_RATES},
                       seeds=1, description="Appendix H: G's and D's learning rates, Cartesian product")


def appendix_h_d_beta1() -> StudyPreset:
    """Appendix H swept D's Adam beta1 through [0.1, 0.2, 0.3, 0.4, 0.5] ("a light regularization
    effect similar to DropOut"); G keeps beta1 = 0. Needs `train.d_betas` (D's betas apart from G's)."""
    betas = [[b1, 0.999] for b1 in (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)]
    return StudyPreset(preset="imagenet128", grid={"train.d_betas": betas}, seeds=1,
                       description="Appendix H: D's Adam beta1 alone")


def appendix_h_ortho() -> StudyPreset:
    """Appendix H swept the ortho regularisation strength through [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2]."""
    return StudyPreset(preset="imagenet128", grid={"train.ortho_beta": [1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 1e-2]},
                       seeds=1, description="Appendix H: orthogonal regularisation strength in G")


def appendix_e_priors() -> StudyPreset:
    """Appendix E compared the ten priors as drop-in replacements for N(0, I) (no truncation:
    each run's untruncated point; the truncation sweep applies where a prior has a normal part)."""
    return StudyPreset(preset="imagenet128", grid={"model.latent": list(PRIORS)}, seeds=1,
                       description="Appendix E: latent priors")


def digits32_batch() -> StudyPreset:
    """docs/studies.md: digits32's batch at a fixed wall budget of 3 minutes per run. The iterations
    are a ceiling the budget stops well before; the budget is checked at checkpoint ticks, so they
    come every 50 iterations (a batch-64 iteration takes ~4x a batch-16 one), with a sample sheet
    every 10th."""
    return StudyPreset(preset="digits32", grid={"train.batch_size": [16, 32, 64]},
                       overrides={"train.iterations": 100_000, "train.wall_budget_s": 180,
                                  "train.checkpoint_every": 50, "train.sample_every": 10},
                       description="digits32: batch 16 / 32 / 64 at 3 minutes of training each")


STUDY_PRESETS: dict[str, Callable[[], StudyPreset]] = {
    "table1": table1,
    "appendix-h-lr": appendix_h_lr,
    "appendix-h-d-beta1": appendix_h_d_beta1,
    "appendix-h-ortho": appendix_h_ortho,
    "appendix-e-priors": appendix_e_priors,
    "digits32-batch": digits32_batch,
}


def get_study_preset(name: str) -> StudyPreset:
    if name not in STUDY_PRESETS:
        raise StudyError(f"unknown study preset {name!r}; known: {', '.join(sorted(STUDY_PRESETS))}")
    return STUDY_PRESETS[name]()


def build_spec(
    name: str,  # the study's folder name
    preset: str | None = None,  # base preset; None = the study preset's, else digits32
    study_preset: str | None = None,  # a named study (STUDY_PRESETS)
    overrides: dict[str, Any] | None = None,  # --set, on top of the study preset's
    grid: dict[str, list[Any]] | None = None,  # --grid (and a grid file's `grid`)
    cells: list[dict[str, Any]] | None = None,  # a grid file's explicit cells
    seeds: int | None = None,  # seeds 0..N-1; None = the study preset's, else 1
    **options: Any,  # the rest of StudySpec's fields (shards, num_workers, use_gpu, ...)
) -> StudySpec:
    """One StudySpec from what a user gave: a study preset, then the command line on top of it."""
    named = get_study_preset(study_preset) if study_preset else StudyPreset(preset="digits32", seeds=1)
    merged_grid = {**named.grid, **(grid or {})}
    merged_cells = [*named.cells, *(cells or [])]
    if merged_cells and (grid or named.grid):
        raise StudyError("explicit cells take no --grid: put the values in the cells, or use a grid (a product) "
                         "instead of cells")
    count = seeds if seeds is not None else named.seeds
    if count < 1:
        raise StudyError(f"--seeds {count}: a study needs at least one seed")
    return StudySpec(name=name, preset=preset or named.preset, study_preset=study_preset,
                     overrides={**named.overrides, **(overrides or {})}, grid=merged_grid, cells=merged_cells,
                     seeds=list(range(count)), **options)
