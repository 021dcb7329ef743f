"""init_from: a new run from another run's weights; only class embeddings redrawn (biggan.interop)."""

from __future__ import annotations

import pytest
import torch

from biggan.interop import LayerMismatchError, init_from
from biggan.models import Discriminator, Generator
from tests.unit._interop_helpers import SMALL_32, random_nets

torch.set_num_threads(1)


def _source(cfg):
    G, D, G_ema = random_nets(cfg, seed=1)
    return {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict()}


def _targets(cfg):
    torch.manual_seed(7)
    return Generator(cfg), Discriminator(cfg), Generator(cfg)


def _equal_except(model, source, changed):
    return {k for k, v in model.state_dict().items() if not torch.equal(v, source[k])} == set(changed)


def test_same_classes_copies_everything():
    source = _source(SMALL_32)
    G, D, G_ema = _targets(SMALL_32)
    report = init_from(G, D, G_ema, source, SMALL_32, SMALL_32)
    for net, model in (("G", G), ("D", D), ("G_ema", G_ema)):
        assert _equal_except(model, source[net], [])
    assert report.reinitialised == {"G": [], "D": [], "G_ema": []}
    assert "from the source run" in report.summary()


def test_other_class_count_redraws_only_the_class_embeddings():
    source = _source(SMALL_32)
    target = SMALL_32.model_copy(update={"num_classes": 3})
    G, D, G_ema = _targets(target)
    report = init_from(G, D, G_ema, source, SMALL_32, target)

    for net, model in (("G", G), ("G_ema", G_ema)):
        kept = {k: v for k, v in source[net].items() if k != "shared.weight"}
        assert all(torch.equal(model.state_dict()[k], v) for k, v in kept.items()), net
    assert G.shared.weight.shape == (3, SMALL_32.shared_dim)
    assert torch.equal(G.shared.weight, G_ema.shared.weight)  # both start from the same new embedding
    # Drawn as our models draw it: orthogonal rows (3 x 16 has orthonormal rows).
    assert torch.allclose(G.shared.weight @ G.shared.weight.t(), torch.eye(3), atol=1e-5)
    d_kept = {k: v for k, v in source["D"].items() if not k.startswith("embed.")}
    assert all(torch.equal(D.state_dict()[k], v) for k, v in d_kept.items())
    assert D.embed.weight.shape == (3, D.embed.weight.shape[1])
    assert report.reinitialised == {"G": ["shared.weight"], "D": ["embed.weight"], "G_ema": ["shared.weight"]}
    assert "10 -> 3" in report.summary() and "class embeddings only" in report.summary()


def test_unshared_g_keeps_the_z_columns_of_each_bn_projection():
    cfg = SMALL_32.model_copy(update={"shared": False})  # ours allows unshared with hier
    source = _source(cfg)
    target = cfg.model_copy(update={"num_classes": 4})
    G, D, G_ema = _targets(target)
    report = init_from(G, D, G_ema, source, cfg, target)
    key = "blocks.0.0.bn1.gain.weight"
    old, new = source["G"][key], G.state_dict()[key]
    z_cols = old.shape[1] - cfg.num_classes
    assert new.shape == (old.shape[0], 4 + z_cols)
    assert torch.equal(new[:, 4:], old[:, cfg.num_classes:])  # z-chunk columns kept
    assert torch.equal(G_ema.state_dict()[key][:, 4:], source["G_ema"][key][:, cfg.num_classes:])
    assert torch.equal(G_ema.state_dict()[key][:, :4], new[:, :4])
    assert f"{key}[:, :4]" in report.reinitialised["G"]


def test_any_other_difference_names_the_first_layer():
    source = _source(SMALL_32)
    target = SMALL_32.model_copy(update={"num_classes": 3, "ch": 8})
    G, D, G_ema = _targets(target)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    with pytest.raises(LayerMismatchError, match=r"^G layer 'linear\.weight': the model has shape \(512, 32\), "
                                                 r"the weights have shape \(256, 32\)$"):
        init_from(G, D, G_ema, source, SMALL_32, target)
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())
