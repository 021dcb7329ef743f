"""The training step between and at logging ticks, its precision choice and its warnings."""

from __future__ import annotations

import torch

from biggan.config import apply_overrides
from biggan.models import Generator, build_models
from biggan.models.batchnorm import CrossReplicaReducer, set_bn_reducer
from biggan.presets import digits32
from biggan.train import precision
from biggan.train.ema import EMA
from biggan.train.loop import LatentSampler
from biggan.train.step import TrainStep

torch.set_num_threads(1)


def _step(cross_replica: bool = False, **overrides) -> TrainStep:
    cfg = apply_overrides(digits32(), {"model.num_classes": 10, "model.ch": 4, "model.dim_z": 16, "model.shared_dim": 8,
                                       "train.batch_size": 4, **overrides})
    torch.manual_seed(0)
    G, D = build_models(cfg.model)
    if cross_replica:
        set_bn_reducer(G, CrossReplicaReducer())  # no collective runs: the step is only built
    G_ema = Generator(cfg.model)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-4, betas=(0.0, 0.999), foreach=True)
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-4, betas=(0.0, 0.999), foreach=True)
    g = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield torch.rand(cfg.train.batch_size, 3, 32, 32, generator=g) * 2 - 1, torch.randint(10, (4,), generator=g)

    sampler = LatentSampler(G.dim_z, 10, "normal", torch.device("cpu"))
    micro = cfg.train.batch_size // cfg.train.accumulation
    return TrainStep(G, D, EMA(G, G_ema, 0.99, 0), opt_G, opt_D, batches(), sampler,
                     torch.Generator().manual_seed(1), cfg.train, micro, torch.device("cpu"))


def test_between_ticks_metrics_stay_tensors_and_extra_singular_values_stay_put():
    step = _step()
    layer = step.G.blocks[0][0].conv1
    before = (layer.u1.clone(), layer.sv2.clone(), layer.u0.clone())
    metrics = step.step(1, tick=False)
    assert all(isinstance(v, torch.Tensor) for v in metrics.values())
    assert "grad_norm/G" not in metrics and {"loss/D", "loss/G", "D_out/real"} <= set(metrics)
    assert torch.equal(layer.u1, before[0]) and torch.equal(layer.sv2, before[1])
    assert not torch.equal(layer.u0, before[2])  # the normalising vector moves every forward
    assert all(layer.sn_track_extra for layer in step._sn_layers)  # switched back on after the step


def test_a_tick_returns_floats_with_gradient_norms_and_refreshes_every_vector():
    step = _step()
    layer = step.D.blocks[0][0].conv2
    before = layer.u2.clone()
    metrics = step.step(1, tick=True)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["grad_norm/G"] > 0 and metrics["grad_norm/D"] > 0
    assert not torch.equal(layer.u2, before)


def test_accumulation_with_cross_replica_bn_warns_about_micro_batch_statistics(caplog):
    _step(cross_replica=True, **{"train.accumulation": 2})
    assert [r.levelname for r in caplog.records if r.name == "biggan.train" and "micro-batch" in r.getMessage()] \
        == ["WARNING"]


def test_no_warning_without_cross_replica_bn(caplog):
    _step(**{"train.accumulation": 2})
    assert not [r for r in caplog.records if "micro-batch" in r.getMessage()]


def test_auto_precision_picks_bf16_only_where_it_pays(monkeypatch):
    cpu = torch.device("cpu")
    assert precision.resolve_precision("fp32", cpu) == "fp32"
    assert precision.resolve_precision("bf16", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_bf16_dot", lambda: False)
    assert precision.resolve_precision("auto", cpu) == "fp32"  # no bf16 hardware: not even measured
    assert isinstance(precision.autocast_for(cpu, "auto"), type(precision.autocast_for(cpu, "fp32")))
    # AVX512-BF16 without AMX: the measurement decides, with a margin.
    monkeypatch.setattr(precision, "cpu_has_bf16_dot", lambda: True)
    for speedup, expected in ((0.6, "fp32"), (1.1, "fp32"), (1.9, "bf16")):
        monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda threads, s=speedup: s)
        assert precision.resolve_precision("auto", cpu) == expected
    monkeypatch.setattr(precision, "cpu_bf16_speedup", lambda threads: 0.5)
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: True)
    assert precision.resolve_precision("auto", cpu) == "bf16"
    with precision.autocast_for(cpu, "auto"):
        assert torch.is_autocast_enabled("cpu")


def test_bf16_speedup_is_fp32_time_over_bf16_time_best_of_five_after_warm_up(one_thread, monkeypatch):
    """The real convolutions run on this CPU, timed by a clock the test controls (a live timing
    belongs in benchmarks/conv_precision.py): fp32 and bf16 alternate, fp32 first; after two
    fast warm-up rounds (discarded: they would win) fp32 takes 3 units and bf16 2, but for one
    slow round of each (best of five ignores them)."""
    durations = iter([0.125, 0.125, 0.125, 0.125] + [3.0, 2.0, 9.0, 2.0, 3.0, 8.0, 3.0, 2.0, 3.0, 2.0])
    clock = {"now": 0.0, "calls": 0}

    def perf_counter() -> float:
        clock["calls"] += 1
        if clock["calls"] % 2 == 0:  # the end of one timed convolution
            clock["now"] += next(durations)
        return clock["now"]

    ran: list[bool] = []
    conv_seconds = precision._conv_seconds
    monkeypatch.setattr(precision, "_conv_seconds", lambda bf16, x, w: ran.append(bf16) or conv_seconds(bf16, x, w))
    monkeypatch.setattr(precision.time, "perf_counter", perf_counter)
    assert precision.cpu_bf16_speedup.__wrapped__(1) == 3.0 / 2.0  # uncached
    assert ran == [False, True] * 7 and clock["calls"] == 2 * 14


def test_resumed_run_keeps_the_precision_it_started_with(monkeypatch):
    from biggan.config import apply_overrides
    from biggan.presets import digits32
    from biggan.train.state import build_training_state

    cfg = apply_overrides(digits32(), {"model.num_classes": 10, "model.ch": 4, "train.precision": "auto"})
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: True)
    first = build_training_state(cfg, torch.device("cpu"), 1)
    assert first.precision == "bf16"
    saved = first.state_dict(cfg, 5, 1, 16)
    monkeypatch.setattr(precision, "cpu_has_amx_bf16", lambda: False)
    monkeypatch.setattr(precision, "cpu_has_bf16_dot", lambda: False)
    resumed = build_training_state(cfg, torch.device("cpu"), 1)
    assert resumed.precision == "fp32"  # what this machine would pick afresh
    resumed.load_state_dict(saved, cfg)
    assert resumed.precision == "bf16"  # what the run started with
    forced = apply_overrides(cfg, {"train.precision": "fp32"})  # an explicit setting wins on resume
    explicit = build_training_state(forced, torch.device("cpu"), 1)
    explicit.load_state_dict(saved, forced)
    assert explicit.precision == "fp32"


def test_bf16_step_keeps_d_head_and_losses_fp32():
    step = _step(**{"train.precision": "bf16"})
    metrics = step.step(1, tick=True)
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values())
    z, y = torch.randn(2, step.G.dim_z), torch.tensor([1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = step.D(step.G(z, y), y)
    assert logits.dtype == torch.float32
