"""The small-data tools in the training step: DiffAugment's ops and ADA's pipeline (differentiable,
replayed exactly from a seed), ADA's p on a scripted D, LeCam against a hand computation, R1
through the augmentation, their config errors (one line naming the key) and their defaults."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from biggan.config import ConfigError, apply_overrides
from biggan.config.small_data import ADA_GROUPS, DIFFAUGMENT_OPS, AugmentConfig
from biggan.models import Generator, build_models
from biggan.presets import PRESETS, digits32
from biggan.train import augment
from biggan.train.ada import AdaState, ada_augment
from biggan.train.ema import EMA
from biggan.train.loop import LatentSampler
from biggan.train.losses import LeCamAnchors, lecam_penalty, r1_penalty
from biggan.train.step import TrainStep

pytestmark = pytest.mark.usefixtures("one_thread")

OPS = {"brightness": augment.brightness, "saturation": augment.saturation, "contrast": augment.contrast,
       "translation": augment.translation, "cutout": augment.cutout}


def _images(seed: int = 0, batch: int = 3, size: int = 8, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(batch, 3, size, size, generator=g, dtype=dtype) * 2 - 1).requires_grad_(True)


def _seeded(op, seed: int = 5):
    """`op` as a function of the images alone: the same draws at every call (its replay)."""
    return lambda x: op(x, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", sorted(OPS))
def test_each_diffaugment_op_is_differentiable_and_replays_from_its_seed(name):
    op, x = OPS[name], _images()
    first, replay = _seeded(op)(x), _seeded(op)(x)
    assert torch.equal(first, replay)
    assert not torch.equal(first, x)  # it did something
    other = _seeded(op, seed=6)(x)
    assert not torch.equal(first, other)  # and the draws come from the generator
    assert torch.autograd.gradcheck(_seeded(op), (x,))
    assert torch.autograd.gradgradcheck(_seeded(op), (x,))  # R1 differentiates through it twice


def test_a_policy_applies_its_groups_in_order_and_replays():
    x = _images(size=16)
    policy = "color,translation,cutout"
    a = augment.diff_augment(x, policy, torch.Generator().manual_seed(1))
    b = augment.diff_augment(x, policy, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    g = torch.Generator().manual_seed(1)
    by_hand = x
    for op in (augment.brightness, augment.saturation, augment.contrast, augment.translation, augment.cutout):
        by_hand = op(by_hand, g)
    assert torch.equal(a, by_hand)
    assert tuple(augment.DIFFAUGMENT) == DIFFAUGMENT_OPS


def test_translation_and_cutout_move_and_blank_whole_pixels():
    x = torch.arange(1.0, 65.0).view(1, 1, 8, 8).expand(64, 1, 8, 8).contiguous()
    shifted = augment.translation(x, torch.Generator().manual_seed(0))
    for image in shifted:  # every image is the original shifted by at most 1 pixel each way, zeros shifted in
        assert any(torch.equal(image[0], _shift(x[0, 0], dy, dx)) for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    cut = augment.cutout(torch.ones(64, 1, 8, 8), torch.Generator().manual_seed(0))
    zeros = (cut == 0).sum(dim=(1, 2, 3))
    assert zeros.max() == 16 and zeros.min() >= 4  # a 4x4 square, clipped at the border


def _shift(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    out = torch.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[max(-dy, 0):h - max(dy, 0),
                                                                     max(-dx, 0):w - max(dx, 0)]
    return out


@pytest.mark.parametrize("groups", ["blit", "geom", "color", "blit,geom,color"])
def test_ada_pipeline_is_differentiable_and_replays_from_its_seed(groups):
    x = _images(size=8)
    run = _seeded(lambda t, g: ada_augment(t, 0.8, g, groups))
    assert torch.equal(run(x), run(x)) and not torch.equal(run(x), x)
    assert torch.autograd.gradcheck(run, (x,))
    assert torch.autograd.gradgradcheck(run, (x,))


def test_ada_at_p_0_is_the_identity_and_blitting_only_moves_pixels():
    x = _images(size=8, dtype=torch.float32).detach()
    assert ada_augment(x, 0.0, torch.Generator()) is x
    # All gates closed (p tiny): the one resample is exactly the identity.
    assert torch.equal(ada_augment(x, 1e-12, torch.Generator().manual_seed(0)), x)
    moved = ada_augment(x, 1.0, torch.Generator().manual_seed(0), "blit")
    assert set(moved.flatten().tolist()) <= set(x.flatten().tolist())  # flips, quarter turns, whole-pixel shifts
    grey = torch.full((4, 3, 8, 8), 0.25)
    coloured = ada_augment(grey, 1.0, torch.Generator().manual_seed(0), "color")
    torch.testing.assert_close(coloured, coloured.mean(dim=1, keepdim=True).expand_as(coloured))  # grey stays grey


# ------------------------------------------------------------------------------ ADA's p, scripted D

class ScriptedD(nn.Module):
    """A D whose every output is `value`: an overfitting D (value > 0: it calls every real image
    real, r_t = 1) or one that does not (value < 0: r_t = -1)."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(1, 2, 3)) * 0.0 + self.weight * 0.0 + self.value


def _scripted_step(value: float, **overrides) -> TrainStep:
    cfg = apply_overrides(digits32(), {"model.num_classes": 10, "model.ch": 4, "model.dim_z": 16,
                                       "model.shared_dim": 8, "train.batch_size": 4, "train.precision": "fp32",
                                       "train.augment.ada": "adaptive", "train.augment.ada_interval": 4,
                                       # 4 images x 4 D steps per adjustment / (0.32 x 1000) = 0.05
                                       "train.augment.ada_kimg": 0.32, **overrides})
    torch.manual_seed(0)
    G, _ = build_models(cfg.model)
    D = ScriptedD(value)
    opt_G = torch.optim.Adam(G.parameters(), lr=1e-4)
    opt_D = torch.optim.Adam(D.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.randint(10, (4,), generator=g)

    sampler = LatentSampler(G.dim_z, 10, "normal", torch.device("cpu"))
    return TrainStep(G, D, EMA(G, Generator(cfg.model), 0.99, 0), opt_G, opt_D, batches(), sampler,
                     torch.Generator().manual_seed(1), cfg.train, 4, torch.device("cpu"))


def test_ada_p_rises_while_d_overfits_and_falls_otherwise():
    rising = _scripted_step(+1.0, **{"train.augment.ada_p": 0.1})
    seen = []
    for iteration in range(1, 11):  # 2 D steps each: an adjustment every 2 iterations
        metrics = rising.step(iteration, tick=True)
        seen.append(metrics["augment/p"])
    assert seen[1::2] == pytest.approx([0.15, 0.2, 0.25, 0.3, 0.35]) and seen[0] == pytest.approx(0.1)
    assert metrics["augment/r_t"] == 1.0

    falling = _scripted_step(-1.0, **{"train.augment.ada_p": 0.12})
    ps = [falling.step(iteration, tick=True)["augment/p"] for iteration in range(1, 11)]
    assert ps[1::2] == pytest.approx([0.07, 0.02, 0.0, 0.0, 0.0])  # kept at 0
    assert falling.ada.r_t == -1.0

    fixed = _scripted_step(+1.0, **{"train.augment.ada": "fixed", "train.augment.ada_p": 0.3})
    metrics = [fixed.step(iteration, tick=True) for iteration in range(1, 5)][-1]
    assert metrics["augment/p"] == 0.3 and metrics["augment/r_t"] == 1.0  # measured, not acted on


def test_ada_state_round_trips_and_a_run_turning_ada_on_starts_at_ada_p():
    cfg = AugmentConfig(ada="adaptive", ada_p=0.2)
    state = AdaState(cfg, torch.device("cpu"))
    state.accumulate(torch.tensor([1.0, -2.0, 3.0]))
    state.adjust(cfg, images=1000)
    state.accumulate(torch.tensor([0.5]))
    saved = state.state_dict()
    back = AdaState(cfg, torch.device("cpu"))
    back.load_state_dict(saved, cfg)
    # r_t = (1 - 1 + 1) / 3 is below 0.6: p falls by 1,000 / 500,000
    assert back.p == state.p == pytest.approx(0.2 - 1000 / 500_000) and back.r_t == pytest.approx(1 / 3)
    assert torch.equal(back.signs, state.signs)
    never_adapted = AdaState(AugmentConfig(), torch.device("cpu")).state_dict()
    fresh = AdaState(cfg, torch.device("cpu"))
    fresh.load_state_dict(never_adapted, AugmentConfig(ada="adaptive", ada_p=0.4))
    assert fresh.p == 0.4


# ------------------------------------------------------------------------------------- LeCam

def test_lecam_penalty_against_a_hand_computation():
    real = torch.tensor([0.5, 2.0, -1.0])
    fake = torch.tensor([-0.5, 1.0])
    anchor_real, anchor_fake = torch.tensor(0.8), torch.tensor(-0.2)
    # real part: relu(0.5 + 0.2)^2, relu(2.0 + 0.2)^2, relu(-1.0 + 0.2)^2 = 0.49, 4.84, 0 -> mean 1.776666...
    # fake part: relu(0.8 + 0.5)^2, relu(0.8 - 1.0)^2 = 1.69, 0 -> mean 0.845
    value = lecam_penalty(real, fake, anchor_real, anchor_fake)
    assert float(value) == pytest.approx((0.49 + 4.84) / 3 + 1.69 / 2, rel=1e-6)


def test_lecam_anchors_are_debiased_moving_averages_of_the_mean_outputs():
    anchors = LeCamAnchors(torch.device("cpu"))
    first = anchors.update(torch.tensor([1.0, 3.0]), torch.tensor([-1.0]), decay=0.9)
    assert [float(a) for a in first] == pytest.approx([2.0, -1.0])  # the first batch's means
    second = anchors.update(torch.tensor([0.0]), torch.tensor([1.0]), decay=0.9)
    # (0.9 x 0.1 x 2 + 0.1 x 0) / (1 - 0.81) and (0.9 x 0.1 x -1 + 0.1 x 1) / 0.19
    assert [float(a) for a in second] == pytest.approx([0.18 / 0.19, 0.01 / 0.19], rel=1e-6)
    back = LeCamAnchors(torch.device("cpu"))
    back.load_state_dict(anchors.state_dict())
    assert torch.equal(back.biased, anchors.biased) and back.updates == 2


def test_the_d_step_adds_lecam_at_its_weight():
    step = _scripted_step(0.7, **{"train.augment.ada": "off", "train.lecam.weight": 0.5})
    metrics = step.step(1, tick=True)
    # Every output is 0.7: the anchors are 0.7 and both relu terms are 0.
    assert metrics["loss/D_lecam"] == 0.0 and metrics["lecam/anchor_real"] == pytest.approx(0.7)
    assert metrics["loss/D"] == pytest.approx(max(0, 1 - 0.7) + (1 + 0.7))


# ------------------------------------------------------------------------------- R1 through it

def test_r1_takes_the_gradient_through_the_augmentation_to_the_unaugmented_images():
    torch.manual_seed(0)
    cfg = apply_overrides(digits32(), {"model.num_classes": 4, "model.ch": 4, "model.dim_z": 16,
                                       "model.shared_dim": 8})
    _, D = build_models(cfg.model)
    D.eval()  # SN's vectors stay put: both penalties see the same weights
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.tensor([0, 3])

    def flip(images):  # a deterministic augmentation: the penalty must see its Jacobian
        return images.flip(3) * 0.5

    logits, penalty = r1_penalty(D, x, y, flip)
    plain_logits, plain = r1_penalty(D, flip(x), y)
    torch.testing.assert_close(logits, plain_logits)
    torch.testing.assert_close(penalty, plain * 0.25)  # chain rule: |d/dx D(0.5 flip x)|^2 = 0.25 |grad|^2
    penalty.backward()
    assert D.linear.weight.grad is not None and float(D.linear.weight.grad.abs().sum()) > 0


# ---------------------------------------------------------------------------------- config

@pytest.mark.parametrize(("key", "value", "words"), [
    ("train.augment.policy", "color,colour", "unknown DiffAugment op 'colour'"),
    ("train.augment.ada_groups", "blit,noise", "unknown ADA group 'noise'"),
    ("train.augment.ada_target", 1.0, "less than 1"),
    ("train.augment.ada_target", 0.0, "greater than 0"),
    ("train.lecam.weight", -0.1, "greater than or equal to 0"),
])
def test_a_bad_setting_is_one_line_naming_its_key(key, value, words):
    with pytest.raises(ConfigError) as caught:
        apply_overrides(digits32(), {key: value})
    message = str(caught.value)
    assert message.startswith(f"{key} = {value!r}") and words in message and "\n" not in message


def test_diffaugment_and_ada_together_are_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"^train\.augment: .*pick one$"):
        apply_overrides(digits32(), {"train.augment.policy": "translation", "train.augment.ada": "adaptive"})


def test_policy_names_are_normalised():
    cfg = apply_overrides(digits32(), {"train.augment.policy": " color, cutout "})
    assert cfg.train.augment.policy == "color,cutout" and set(ADA_GROUPS) == {"blit", "geom", "color"}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_trains_without_them(name):
    """Paper fidelity: BigGAN has no augmentation and no LeCam."""
    train = PRESETS[name]().train
    assert train.augment == AugmentConfig() and not train.augment.enabled and train.lecam.weight == 0.0


@pytest.mark.parametrize("setting", ["train.augment.policy=color,colour", "train.augment.ada_target=1.5",
                                     "train.lecam.weight=-1"])
def test_biggan_train_refuses_a_bad_setting_before_anything_starts(digits_shards, tmp_path, setting):
    from click.testing import CliRunner

    from biggan.cli import main

    store = tmp_path / "store"
    result = CliRunner().invoke(main, ["train", "--shards", str(digits_shards["train"].parent), "--workers", "0",
                                       "--store", str(store), "--set", setting])
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and errors[0].startswith(f"Error: {setting.split('=')[0]} = ")
    assert not store.exists()  # no run, no Ray, no Prefect
