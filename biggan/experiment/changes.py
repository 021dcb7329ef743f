"""What may change between two configs of one run: on a resume (SAFE_ON_RESUME: every training
option says here whether it may) and as a rollback's remedy mid-run (REMEDY_FIXED, checked by
`check_remedies` before anything starts), and the changes themselves as dotted keys.
"""

from __future__ import annotations

from typing import Any

from biggan.config import ConfigError, ExperimentConfig, apply_overrides

# Keys that may change when a run resumes, and take effect there (the loop re-applies learning
# rates, betas and eps to the restored optimizers). A dotted prefix ending in "." covers a section.
# Everything else (architecture, data, batch, seed, losses) would make the resumed run a
# different experiment from the one its checkpoints belong to. train.init_from is deliberately
# absent: it names the weights the run started from.
#
# Section 4's conditioning knobs are here too (a rollback remedy changes them mid-run): R1,
# dropout, L2 and ortho on D, D's betas, sigma_0's regularisation or clamp on G. SN on or off
# (model.g_sn / model.d_sn) is not: the same weights compute another function without it.
#
# The small-data tools (train.augment, train.lecam) are too, like R1: they change what D is shown
# and penalised, not what G and D are, and a rollback may turn one on as a remedy. ADA's p and
# LeCam's anchors travel in the checkpoint; a resumed adaptive run keeps its p, not ada_p.
SAFE_ON_RESUME = (
    "train.wall_budget_s", "train.augment.", "train.lecam.",
    "train.iterations", "train.g_lr", "train.d_lr", "train.betas", "train.adam_eps", "train.ema_decay",
    "train.d_betas", "train.d_r1_gamma", "train.d_r1_every", "train.d_dropout_keep", "train.d_weight_decay",
    "train.d_ortho_beta", "train.g_sigma.",
    "train.accumulation", "train.precision", "train.channels_last",
    "train.checkpoint_every", "train.keep_checkpoints", "train.best_metric", "train.best_mode",
    "train.log_every", "train.sample_every", "train.standing_stats_batches", "train.collapse.",
    "data.loader_workers", "data.shuffle_buffer", "cluster.", "eval.",
)


# What a resume may change but a rollback remedy may not: a running worker group keeps its
# workers, data streams, arithmetic and memory format; and a remedy does not rewrite the rule
# that applies the remedies.
REMEDY_FIXED = ("cluster.", "data.", "eval.", "train.collapse.", "train.precision", "train.channels_last",
                "train.accumulation")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def flat_config(cfg: ExperimentConfig) -> dict[str, Any]:
    """Dotted key -> JSON value of every field of `cfg`."""
    return _flatten(cfg.model_dump(mode="json"))


def safe_on_resume(key: str) -> bool:
    """Whether a resume may change `key` (SAFE_ON_RESUME names it or its section)."""
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE_ON_RESUME)


# Where a run is, not what it is: a run copied to another store resumes there.
_LOCATION_KEYS = {"run_root", "name"}


def remedy_refusal(key: str) -> str | None:
    """Why a remedy may not change `key` mid-run (None: it may)."""
    if not safe_on_resume(key):
        return (f"{key} cannot change mid-run: it defines the experiment the run's checkpoints belong to "
                f"(architecture, data, batch, seed or losses)")
    if any(key == s or (s.endswith(".") and key.startswith(s)) for s in REMEDY_FIXED):
        return f"{key} cannot change mid-run: a running worker group keeps it (change it on a resume instead)"
    return None


def apply_remedy(cfg: ExperimentConfig, remedy: dict[str, Any]) -> tuple[ExperimentConfig, dict[str, list[Any]]]:
    """`cfg` with one remedy's overrides, and what changed: {key: [before, after]} (JSON values)."""
    after = apply_overrides(cfg, remedy)
    a, b = flat_config(cfg), flat_config(after)  # type: ignore[arg-type]
    return after, {key: [a.get(key), b.get(key)] for key in sorted(set(a) | set(b)) if a.get(key) != b.get(key)}  # type: ignore[return-value]


def check_remedies(cfg: ExperimentConfig) -> None:
    """Every remedy of train.collapse.remedies names known keys a rollback may change, with valid
    values (applied in turn, as rollbacks apply them); ConfigError in one line naming the first bad one."""
    check_conditioning(cfg)
    current = cfg
    for index, remedy in enumerate(cfg.train.collapse.remedies):
        where = f"train.collapse.remedies[{index}]"
        if not remedy:
            raise ConfigError(f"{where} is empty: name the keys it changes (a rollback without a remedy is a later "
                              f"one than the list)")
        try:
            current, _changed = apply_remedy(current, remedy)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        refused = next((why for key in remedy if (why := remedy_refusal(key)) is not None), None)
        if refused is not None:
            raise ConfigError(f"{where}: {refused}")
        try:
            check_conditioning(current)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None


def check_conditioning(cfg: ExperimentConfig) -> None:
    """Settings of Section 4's knobs that only conflict across sections of the config."""
    sigma = cfg.train.g_sigma
    if sigma.mode == "reg" and sigma.target == "ratio" and cfg.model.sn_tracked_svs < 2:
        raise ConfigError("train.g_sigma.target=ratio regularises toward r x sigma_1, which needs "
                          f"model.sn_tracked_svs >= 2 (it is {cfg.model.sn_tracked_svs})")


def changed_keys(before: ExperimentConfig, after: ExperimentConfig) -> list[str]:
    a, b = _flatten(before.model_dump(mode="json")), _flatten(after.model_dump(mode="json"))
    return sorted(key for key in set(a) | set(b) if a.get(key) != b.get(key) and key not in _LOCATION_KEYS)
