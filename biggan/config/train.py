"""Config of optimisation (Section 3, Appendix C), of the collapse rule and of Section 4's
conditioning of G and D.

Defaults are the paper's values unless a description says otherwise. Every Section 4 knob is off
by default: the paper's BigGAN trains without them (docs/stability.md says what each did there).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from biggan.config.base import Strict
from biggan.config.small_data import AugmentConfig, LeCamConfig


class CollapseConfig(Strict):
    """Stop rule for training collapse (Section 4): stop just after, evaluate just before."""

    enabled: bool = Field(True, description="apply the collapse rule")
    d_loss_jump: float = Field(10.0, gt=1, description="trip when D's loss exceeds this x its running median")
    # Hinge D loss is 2 when D outputs 0 (chance); a noisy minibatch loss below that is not the
    # collapse spike of Section 4, however small the running median has become.
    d_loss_floor: float = Field(2.0, ge=0, description="the D-loss jump must also exceed this (hinge at chance: 2)")
    sv_explosion: float = Field(
        20.0, gt=1, description="trip when a layer's top singular value exceeds this x its running median")
    patience: int = Field(2, ge=1, description="consecutive tripping log intervals that stop the run")
    window: int = Field(20, ge=2, description="log intervals in the running medians")
    warmup: int = Field(5, ge=0, description="log intervals before the rule is armed")
    # A dead run (not in the paper, seen at absurd learning rates): D outputs one value for every
    # image, or its hinge loss sits at 2.0 (chance) with no gradient, so nothing can learn again.
    # Both signals are exact zeros in practice, and far from any training regime (a random D
    # already spreads its outputs by ~0.1), so they need no warm-up.
    flat_d_spread: float = Field(
        1e-5, gt=0, description="dead D: the spread (std) of its outputs and the real-fake gap both below this")
    pinned_d_loss_band: float = Field(
        0.01, gt=0, description="dead D: |D loss - 2.0| below this (the hinge loss at chance) ...")
    vanishing_grad: float = Field(
        1e-6, gt=0, description="... while D's gradient norm is below this")
    # Section 4 stops at collapse and scores the checkpoint before; `rollback` goes back to it
    # instead and continues with the next remedy (biggan.train.rollback).
    action: Literal["stop", "rollback"] = Field(
        "stop", description="on collapse: stop (Section 4: score the checkpoint before), or roll back to the "
                            "newest checkpoint at or before the last healthy record and continue with the next remedy")
    remedies: list[dict[str, Any]] = Field(
        default_factory=list,
        description="rollback: override sets applied in turn, one per rollback, e.g. [{train.g_lr: 2.5e-5}, "
                    "{train.d_r1_gamma: 1.0}]; keys that may change on resume except cluster, data, "
                    "precision, memory format, accumulation and the collapse rule itself; later rollbacks "
                    "without an entry retry with new data and latent streams only")
    max_rollbacks: int = Field(
        3, ge=0, description="rollback: rollbacks a run may make; the collapse after the last one stops it")


class SigmaConditioning(Strict):
    """Section 4.1: condition the top singular value sigma_0 of each of G's layers (raw weights,
    with or without SN), by a penalty toward a target or by eq. 4's clamp after each G step."""

    mode: Literal["off", "reg", "clamp"] = Field(
        "off", description="off; reg: add strength x (sigma_0 - target)^2 per layer to G's loss; clamp: eq. 4, "
                           "W <- W - max(0, sigma_0 - target) u_0 v_0^T after each G step (partial SVD)")
    target: Literal["fixed", "ratio"] = Field(
        "fixed", description="fixed: `value` (sigma_reg / sigma_clamp); ratio: `ratio` x sg(sigma_1), the layer's "
                             "second singular value without a gradient (Section 4.1)")
    value: float = Field(
        1.0, gt=0, description="the fixed target (paper silent on its value; 1 is what orthogonal initialisation "
                               "gives every layer)")
    ratio: float = Field(2.0, gt=0, description="r of the ratio target r x sg(sigma_1) (paper silent on its value)")
    strength: float = Field(
        0.01, ge=0, description="reg: the penalty's weight (paper silent on its value)")


class TrainConfig(Strict):
    """Optimisation."""

    # Not a paper value: the paper's ImageNet runs train until they collapse (Section 4) and report
    # the checkpoint before; BigGAN-PyTorch's 8-GPU ImageNet-128 recipe runs ~150k iterations (its
    # released model is at 138k), which this default follows.
    iterations: int = Field(
        150_000, ge=1, description="G steps to train for (paper silent: its runs go until collapse; "
                                   "BigGAN-PyTorch's ImageNet-128 run is ~150k)")
    batch_size: int = Field(
        2048, ge=1, description="global batch per G step (all workers x accumulation x micro-batch)")
    # For studies at a fixed wall budget (biggan.study): runs of different settings compared at equal time.
    wall_budget_s: float | None = Field(
        None, gt=0, description="stop cleanly at the first checkpoint after this many seconds of training in this "
                                "session (a resumed run starts a new budget); None = no budget")
    accumulation: int = Field(1, ge=1, description="micro-batches per step per worker")
    d_steps: int = Field(2, ge=1, description="D steps per G step (Appendix C: 2)")
    g_lr: float = Field(5e-5, gt=0, description="G learning rate (Appendix C: 5e-5)")
    d_lr: float = Field(2e-4, gt=0, description="D learning rate (Appendix C: 2e-4)")
    betas: tuple[float, float] = Field(
        (0.0, 0.999), description="Adam betas of G, and of D unless d_betas is set; each in [0, 1) (Appendix C)")
    d_betas: tuple[float, float] | None = Field(
        None, description="Adam betas of D apart from G's; None = betas (the paper sweeps D's beta1 from 0.1 to 0.5: "
                          "a light regularisation, Section 4.2 and its hyper-parameter appendix)")
    adam_eps: float = Field(
        1e-6, gt=0, description="Adam epsilon (paper silent; BigGAN-PyTorch's launch scripts use 1e-6)")
    ortho: bool = Field(True, description="modified orthogonal regularization on G (Section 3.1, eq. 3)")
    ortho_beta: float = Field(1e-4, ge=0, description="ortho regularization strength beta (Section 3.1)")
    # Section 4.2's conditioning of D, all off by default (the paper's BigGAN uses none).
    d_r1_gamma: float = Field(
        0.0, ge=0, description="R1 zero-centred gradient penalty gamma/2 E||grad D(x)||^2 on real images (Section "
                               "4.2, eq. 5; the paper: 10 stabilises but costs 45% of IS, 1 is the weakest that still "
                               "prevents collapse); 0 = off")
    d_r1_every: int = Field(
        1, ge=1, description="R1 every k D steps, scaled by k (the lazy form of StyleGAN2 / stylegan2-ada); 1 = "
                             "every D step")
    d_dropout_keep: float = Field(
        1.0, gt=0, le=1, description="keep probability of dropout before D's head (Section 4.2; the paper sweeps "
                                     "0.5 to 0.95); 1 = off")
    d_weight_decay: float = Field(
        0.0, ge=0, description="L2 penalty on D's weights, as Adam's weight_decay (Section 4.2); 0 = off")
    d_ortho_beta: float = Field(
        0.0, ge=0, description="orthogonal regularization (eq. 3) on D's >= 2-d weights, as on G (Section 4.2); "
                               "0 = off")
    g_sigma: SigmaConditioning = Field(
        SigmaConditioning(), description="Section 4.1: regularise or clamp sigma_0 of each of G's layers")
    ema_decay: float = Field(0.9999, ge=0, lt=1, description="EMA decay of G's weights (Appendix C)")
    ema_start: int = Field(
        20_000, ge=0, description="iteration EMA starts at (paper silent; BigGAN-PyTorch: 20000)")
    seed: int = Field(0, description="seed of initialisation, data order and latents")
    init_from: str | None = Field(
        None, description="start a NEW run from another run's G, D and G_ema weights with fresh optimizers: a "
                          "run (name in the store, path or URI; its marked checkpoint) or a checkpoint folder, "
                          "resolved to that checkpoint's URI; the model comes from it, only num_classes may "
                          "differ (class embeddings redrawn); applied only before the run's first checkpoint")
    # fp32 is bit-reproducible; under autocast SN, BN statistics and affine, D's head and the
    # losses stay fp32 (biggan/train/precision.py says why a CPU flag alone cannot decide it).
    precision: Literal["fp32", "bf16", "auto"] = Field(
        "fp32", description="fp32; bf16 autocast on any device; or auto: bf16 where it pays (CUDA with bf16; a CPU "
                            "with AMX, or with AVX512-BF16 where a timed bf16 convolution beats fp32), else fp32; "
                            "resolved once per run and kept on resume")
    # oneDNN reorders NCHW on every conv: NHWC is 1.1-1.35x faster per CPU step here
    # (docs/performance.md), and it is the layout tensor cores want.
    channels_last: bool = Field(True, description="channels_last (NHWC) memory format for G and D")
    checkpoint_every: int = Field(2000, ge=1, description="iterations between checkpoints")
    keep_checkpoints: int = Field(
        3, ge=1, description="newest checkpoints kept, plus the best (lowest FID, once the evaluator has scored "
                             "one; until then none is 'best'), the one marked for evaluation and any not yet scored")
    # Old runs' options.json carry these two (extra keys are refused), so they still load. They
    # picked a 'best' checkpoint by a training value (G's hinge loss) before any FID existed,
    # which says nothing about sample quality: the run store now keeps the newest until an FID exists.
    best_metric: str | None = Field(
        None, description="no effect (kept so older runs' options load): the kept 'best' checkpoint is the lowest "
                          "FID once one is scored, and until then the newest checkpoints are kept")
    best_mode: Literal["min", "max"] = Field("min", description="no effect (kept so older runs' options load)")
    log_every: int = Field(100, ge=1, description="iterations between stats records and progress lines")
    sample_every: int = Field(1, ge=1, description="checkpoints between sample sheets")
    standing_stats_batches: int = Field(16, ge=1, description="forward passes of standing statistics (Appendix C.1)")
    collapse: CollapseConfig = Field(CollapseConfig(), description="the collapse stop rule (Section 4)")
    # Small-data tools (not in the paper; biggan.config.small_data), off by default.
    augment: AugmentConfig = Field(
        AugmentConfig(), description="DiffAugment or ADA on every image D sees (small data sets); off by default")
    lecam: LeCamConfig = Field(LeCamConfig(), description="LeCam regularisation of D (small data sets); off by default")

    @field_validator("init_from")
    @classmethod
    def _init_from_names_something(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("init_from must name a run or a checkpoint folder (or be null)")
        return None if value is None else value.strip()

    @field_validator("betas", "d_betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each Adam beta must be in [0, 1), got {list(value)}")
        return value
