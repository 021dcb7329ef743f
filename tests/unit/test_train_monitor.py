"""Collapse rule (Section 4) on synthetic signal series."""

from __future__ import annotations

import math

from biggan.config import CollapseConfig
from biggan.train.monitor import CollapseDetector


def _run(series, svs=None, **cfg):
    det = CollapseDetector(CollapseConfig(**cfg))
    out = []
    for i, loss in enumerate(series):
        sv = {"conv": 1.0} if svs is None else {"conv": svs[i]}
        out.append(det.update((i + 1) * 10, loss, sv))
    return out


def test_healthy_noisy_series_never_fires():
    series = [1.0 + 0.3 * math.sin(i) for i in range(100)]
    assert not any(v.collapsed for v in _run(series, warmup=3, window=10))


def test_d_loss_jump_fires_after_patience_and_names_first_iteration():
    series = [1.0] * 10 + [50.0, 60.0, 70.0]
    verdicts = _run(series, warmup=3, window=10, patience=2, d_loss_jump=10.0)
    assert not verdicts[10].collapsed and verdicts[10].tripped
    assert verdicts[11].collapsed
    assert verdicts[11].first_iteration == 110
    assert "D loss" in verdicts[11].reason


def test_saturated_d_loss_noise_below_the_floor_never_fires():
    # Hinge D loss near 0 (D winning) with minibatch noise: 10x a tiny median is still no collapse.
    series = [0.001, 0.002, 0.0005] * 5 + [0.05, 0.3, 0.8, 1.5, 0.02]
    assert not any(v.tripped for v in _run(series, warmup=3, window=10, patience=2, d_loss_jump=10.0))


def test_single_spike_is_forgiven():
    series = [1.0] * 10 + [50.0] + [1.0] * 10
    assert not any(v.collapsed for v in _run(series, warmup=3, patience=2))


def test_singular_value_explosion_fires():
    svs = [2.0] * 10 + [100.0, 200.0]
    verdicts = _run([1.0] * 12, svs=svs, warmup=3, patience=2, sv_explosion=20.0)
    assert verdicts[-1].collapsed and "top SV of conv" in verdicts[-1].reason


def test_nan_fires_immediately_even_in_warmup():
    verdicts = _run([1.0, float("nan")], warmup=5)
    assert verdicts[1].collapsed and verdicts[1].first_iteration == 20


def test_disabled_rule_never_fires():
    assert not any(v.collapsed for v in _run([1.0, float("inf")], enabled=False))


def test_state_roundtrip_continues_streak():
    det = CollapseDetector(CollapseConfig(warmup=2, patience=2))
    for i in range(5):
        det.update(i, 1.0, {"c": 1.0})
    det.update(5, 99.0, {"c": 1.0})
    other = CollapseDetector(CollapseConfig(warmup=2, patience=2))
    other.load_state_dict(det.state_dict())
    assert other.update(6, 99.0, {"c": 1.0}).collapsed
