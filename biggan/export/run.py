"""`biggan export --run R`: one checkpoint of a run as a generator others can run, and as
BigGAN-PyTorch's own files.

    OUT/generator.safetensors + generator.json + generator.pt2 (or .ts)   export_generator
    OUT/bigganpytorch/G.pth, D.pth, G_ema.pth, state_dict.pth, *_optim.pth  export_bigganpytorch

The generator files hold a COPY of the checkpoint's G_ema with standing statistics (Appendix
C.1) computed as evaluation computes them (biggan.runs.opened, on eval.device): the run's
eval.standing_passes passes of eval.standing_batch latents at the truncation the run evaluates at
(eval.truncation), or at `truncation` when given, seeded with eval.seed. `bigganpytorch/` holds the checkpoint's tensors
exactly as saved (BN running statistics as trained, which is what their `--G_eval_mode` samples
with), so importing it back gives the checkpoint again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from biggan.export.bigganpytorch import export_bigganpytorch
from biggan.export.generator import DESCRIPTION, WEIGHTS, export_generator
from biggan.interop.errors import UnsupportedCheckpointError
from biggan.runs import CheckpointInfo, RunStore
from biggan.runs.networks import generator_from_state
from biggan.runs.opened import open_checkpoint, prepare_for_sampling

BIGGANPYTORCH_DIR = "bigganpytorch"


def export_run(
    run: RunStore,
    out_dir: Path | str,  # local folder
    checkpoint: str | None = None,  # name or iteration; None = the one the run marked for evaluation
    truncation: float | None = None,  # standing statistics' threshold; None = the run's eval.truncation
    program: str | None = "pt2",  # "pt2", "ts" or None (weights and JSON only)
) -> dict[str, Any]:
    """Write both exports of one checkpoint; returns where everything went (JSON-ready). Without
    `checkpoint`, the run's checkpoint to evaluate (a warning says when the marked one is damaged
    and another is used; a collapsed run's never comes from after the collapse)."""
    opened = open_checkpoint(run, checkpoint)  # as every sampler opens it (biggan.runs.opened)
    info: CheckpointInfo = opened.info
    state, cfg = opened.state, opened.cfg
    threshold = truncation if truncation is not None else cfg.eval.truncation
    ecfg = cfg.eval
    # In NCHW (not the run's training layout): the exported program and weights are plain tensors.
    G_ema = prepare_for_sampling(generator_from_state(state, ema=True), cfg, threshold, opened.device)
    out = Path(out_dir)
    source = {"run": run.uri, "checkpoint": info.uri, "iteration": info.iteration}
    description = export_generator(G_ema.cpu(), cfg.model, out, standing_truncation=threshold,
                                   standing_batches=ecfg.standing_passes, program=program, source=source)
    theirs = out / BIGGANPYTORCH_DIR
    try:
        notes = export_bigganpytorch(state["G"], state["D"], state["G_ema"], cfg.model, theirs,
                                     iteration=info.iteration, opt_G=state["opt_G"], opt_D=state["opt_D"])
    except UnsupportedCheckpointError as error:  # e.g. TF-Hub's BigGAN-deep G: the generator files still stand
        notes = [f"{BIGGANPYTORCH_DIR}/ not written: {error}"]
    program_info = description.get("program")
    return {
        "weights": str(out / WEIGHTS),
        "description": str(out / DESCRIPTION),
        "program": None if program_info is None else str(out / program_info["file"]),
        "program_format": None if program_info is None else program_info["format"],
        "bn_statistics": description["bn_statistics"],
        "bigganpytorch": str(theirs) if theirs.is_dir() else None,
        "bigganpytorch_files": sorted(p.name for p in theirs.iterdir()) if theirs.is_dir() else [],
        **source,
        "notes": notes,
    }
