"""`biggan export --run R`: one checkpoint of a run as a generator others can run, and as
BigGAN-PyTorch's own files.

    OUT/generator.safetensors + generator.json + generator.pt2 (or .ts)   export_generator
    OUT/bigganpytorch/G.pth, D.pth, G_ema.pth, state_dict.pth, *_optim.pth  export_bigganpytorch

The generator files hold a COPY of the checkpoint's G_ema with standing statistics (Appendix
C.1) computed as evaluation computes them: the run's eval.standing_passes passes of
eval.standing_batch latents at the truncation the run evaluates at (eval.truncation), or at
`truncation` when given, seeded with eval.seed. `bigganpytorch/` holds the checkpoint's tensors
exactly as saved (BN running statistics as trained, which is what their `--G_eval_mode` samples
with), so importing it back gives the checkpoint again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from biggan.export.bigganpytorch import export_bigganpytorch
from biggan.export.generator import DESCRIPTION, WEIGHTS, export_generator
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.networks import config_of, generator_from_state
from biggan.sampling.standing import standing_stats_

BIGGANPYTORCH_DIR = "bigganpytorch"


def export_run(
    run: RunStore,
    out_dir: Path | str,  # local folder
    checkpoint: str | None = None,  # name or iteration; None = the one the run marked for evaluation
    truncation: float | None = None,  # standing statistics' threshold; None = the run's eval.truncation
    program: str | None = "pt2",  # "pt2", "ts" or None (weights and JSON only)
    warn=print,  # says when the marked checkpoint is damaged and another is used
) -> dict[str, Any]:
    """Write both exports of one checkpoint; returns where everything went (JSON-ready)."""
    info: CheckpointInfo = run.checkpoint(checkpoint) if checkpoint else run.checkpoint_to_evaluate(warn)
    state = run.load_state(info)
    cfg = config_of(state)
    threshold = truncation if truncation is not None else cfg.eval.truncation
    ecfg = cfg.eval
    device = "cuda" if torch.cuda.is_available() else "cpu"  # standing statistics are G forwards only
    G_ema = generator_from_state(state, ema=True).to(device)
    standing_stats_(G_ema, cfg.model.num_classes, ecfg.standing_passes, ecfg.standing_batch, threshold, device,
                    prior=cfg.model.latent, seed=ecfg.seed)
    out = Path(out_dir)
    source = {"run": run.uri, "checkpoint": info.uri, "iteration": info.iteration}
    description = export_generator(G_ema.cpu(), cfg.model, out, standing_truncation=threshold,
                                   standing_batches=ecfg.standing_passes, program=program, source=source)
    theirs = out / BIGGANPYTORCH_DIR
    notes = export_bigganpytorch(state["G"], state["D"], state["G_ema"], cfg.model, theirs,
                                 iteration=info.iteration, opt_G=state["opt_G"], opt_D=state["opt_D"])
    program_info = description.get("program")
    return {
        "weights": str(out / WEIGHTS),
        "description": str(out / DESCRIPTION),
        "program": None if program_info is None else str(out / program_info["file"]),
        "program_format": None if program_info is None else program_info["format"],
        "bn_statistics": description["bn_statistics"],
        "bigganpytorch": str(theirs),
        "bigganpytorch_files": sorted(p.name for p in theirs.iterdir()),
        **source,
        "notes": notes,
    }
