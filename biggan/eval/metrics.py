"""Metrics by registry (stylegan2-ada's `metric_main`: `@register_metric`, one history file per
metric), computed by torch-fidelity's own functions over the features of one streamed pass.

Section 3 / Appendix C.1: scores are of samples from the EMA generator after standing
statistics. Every metric asked for in one call shares one pass over the generated samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from biggan.config import ConfigError
from biggan.eval.feature_pass import FeatureBank
from biggan.eval.reference import Reference

# torch-fidelity's defaults: 10 IS splits, shuffled with seed 2020; KID 100 subsets of 1000.
IS_SPLITS = 10
RNG_SEED = 2020


@dataclass(frozen=True)
class Metric:
    name: str  # registry key and history file name (metric-<name>.jsonl)
    moments: tuple[str, ...]  # torch-fidelity metric kinds whose layer needs running moments
    keep: tuple[str, ...]  # kinds whose layer rows are kept whole
    reference_rows: tuple[str, ...]  # kinds whose reference rows are needed
    compute: Callable[[MetricInputs], dict[str, float]]


@dataclass
class MetricInputs:
    bank: FeatureBank  # generated samples' features
    reference: Reference | None
    layers: dict[str, str]  # metric kind ("isc", "fid", "kid", "prc") -> extractor layer


METRICS: dict[str, Metric] = {}


def register_metric(name: str, moments: tuple[str, ...] = (), keep: tuple[str, ...] = (),
                    reference_rows: tuple[str, ...] = ()):
    def wrap(fn: Callable[[MetricInputs], dict[str, float]]):
        METRICS[name] = Metric(name, moments, keep, reference_rows, fn)
        return fn
    return wrap


@register_metric("is", keep=("isc",))
def inception_score(x: MetricInputs) -> dict[str, float]:
    logits = x.bank.rows[x.layers["isc"]]
    # IS splits cannot exceed the sample count (torch-fidelity would divide by zero).
    out = isc_features_to_metric(logits, splits=max(1, min(IS_SPLITS, logits.shape[0])), shuffle=True,
                                 rng_seed=RNG_SEED)
    return {"IS": out["inception_score_mean"], "IS_std": out["inception_score_std"]}


@register_metric("fid", moments=("fid",))
def frechet_distance(x: MetricInputs) -> dict[str, float]:
    generated = x.bank.statistics(x.layers["fid"])
    reference = x.reference.statistics
    if generated["mu"].shape != reference["mu"].shape:
        raise ConfigError(f"the reference statistics are {reference['mu'].shape[0]}-d, the generated "
                         f"{generated['mu'].shape[0]}-d: they come from different feature extractors")
    return {"FID": fid_statistics_to_metric(generated, reference, verbose=False)["frechet_inception_distance"]}


@register_metric("kid", keep=("kid",), reference_rows=("kid",))
def kernel_distance(x: MetricInputs) -> dict[str, float]:
    mine, theirs = x.bank.rows[x.layers["kid"]], x.reference.rows[x.layers["kid"]]
    out = kid_features_to_metric(mine, theirs, kid_subset_size=min(1000, len(mine), len(theirs)),
                                 rng_seed=RNG_SEED, verbose=False)
    return {"KID": out["kernel_inception_distance_mean"], "KID_std": out["kernel_inception_distance_std"]}


@register_metric("pr", keep=("prc",), reference_rows=("prc",))
def precision_recall(x: MetricInputs) -> dict[str, float]:
    out = prc_features_to_metric(x.bank.rows[x.layers["prc"]], x.reference.rows[x.layers["prc"]],
                                 save_cpu_ram=True, verbose=False)
    return {"precision": out["precision"], "recall": out["recall"], "f_score": out["f_score"]}


def unknown(names: list[str]) -> list[str]:
    return [name for name in names if name not in METRICS]


def compute_metrics(session, names: list[str], truncation: float | None,
                    num_samples: int | None = None) -> dict[str, dict[str, float]]:
    """{metric name: {figure: value}} for G_ema of `session` at `truncation`; one feature pass."""
    missing = unknown(names)
    if missing:
        raise ConfigError(f"unknown metrics {missing}; known: {', '.join(sorted(METRICS))}")
    metrics = [METRICS[name] for name in names]
    layers = {kind: session.layer(kind) for m in metrics for kind in (*m.moments, *m.keep)}
    moments = tuple(sorted({layers[k] for m in metrics for k in m.moments}))
    keep = tuple(sorted({layers[k] for m in metrics for k in m.keep}))
    bank = session.features(truncation, moments, keep, num_samples)
    ref_rows = tuple(sorted({layers[k] for m in metrics for k in m.reference_rows}))
    needs_reference = any(m.moments or m.reference_rows for m in metrics)
    reference = session.reference(ref_rows) if needs_reference else None
    inputs = MetricInputs(bank=bank, reference=reference, layers=layers)
    return {m.name: m.compute(inputs) for m in metrics}
