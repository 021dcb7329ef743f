"""Import of BigGAN-PyTorch's files and export back to them (biggan.interop, biggan.export)."""

from __future__ import annotations

import pytest
import torch

from biggan.export import export_bigganpytorch
from biggan.interop import (
    LayerMismatchError,
    UnsupportedCheckpointError,
    import_bigganpytorch,
    load_into,
    read_bigganpytorch,
)
from biggan.interop.keymap import their_order
from biggan.models import Discriminator, Generator
from tests.unit._interop_helpers import (
    IMAGENET_128,
    SMALL_32,
    UNSHARED_32,
    random_nets,
    their_layout,
    write_their_folder,
)

torch.set_num_threads(1)


def _outputs(G, D, G_ema, cfg, seed=3):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(3, G.dim_z, generator=gen)
    y = torch.randint(0, cfg.num_classes, (3,), generator=gen)
    x = torch.rand(3, 3, cfg.resolution, cfg.resolution, generator=gen) * 2 - 1
    with torch.no_grad():
        return G(z, y), D(x, y), G_ema(z, y)


@pytest.mark.parametrize("cfg", [SMALL_32, UNSHARED_32, IMAGENET_128], ids=["32px", "32px-unshared", "128px-1000"])
def test_import_then_export_gives_identical_tensors_and_outputs(tmp_path, cfg):
    G, D, G_ema = random_nets(cfg)
    write_their_folder(tmp_path / "theirs", cfg, G, D, G_ema, legacy=True)

    run = import_bigganpytorch(tmp_path / "theirs")
    assert run.model.sn_tracked_svs == cfg.sn_tracked_svs and run.model.ch == cfg.ch
    assert (run.model.num_classes, run.model.shared, run.model.hier) == (cfg.num_classes, cfg.shared, cfg.hier)
    assert run.iteration == 1234 and run.train_hints["g_lr"] == 1e-4 and run.train_hints["batch_size"] == 2048
    G2, D2, G_ema2 = Generator(run.model), Discriminator(run.model), Generator(run.model)
    load_into(G2, D2, G_ema2, run)
    for net in (G2, D2, G_ema2):
        net.eval()
    for ours, source in zip(_outputs(G2, D2, G_ema2, cfg), _outputs(G, D, G_ema, cfg)):
        assert torch.equal(ours, source)  # same tensors through the same code: bit for bit

    export_bigganpytorch(G2, D2, G_ema2, run.model, tmp_path / "back", iteration=run.iteration)
    for name, source in (("G", G), ("D", D), ("G_ema", G_ema)):
        back = torch.load(tmp_path / "back" / f"{name}.pth", weights_only=True)
        expected = their_layout(source.state_dict(), "D" if name == "D" else "G")
        assert set(back) == set(expected)
        assert all(torch.equal(back[k], expected[k]) for k in expected), name
    state = torch.load(tmp_path / "back" / "state_dict.pth", weights_only=True)  # plain data only
    assert state["itr"] == 1234 and state["config"]["G_ch"] == cfg.ch
    assert state["config"]["num_G_SVs"] == cfg.sn_tracked_svs


def test_their_key_names_and_order():
    """Names and order as their BigGAN.Generator's state_dict() lists them (1 SV, 32 px)."""
    G, _, _ = random_nets(SMALL_32)
    keys = list(their_layout(G.state_dict(), "G"))
    ordered = their_order(keys, "G")
    assert ordered[:5] == ["shared.weight", "linear.weight", "linear.bias", "linear.u0", "linear.sv0"]
    block = [k[len("blocks.0.0."):] for k in ordered if k.startswith("blocks.0.0.")]
    assert block[:4] == ["conv1.weight", "conv1.bias", "conv1.u0", "conv1.sv0"]
    assert block.index("conv_sc.sv0") < block.index("bn1.stored_mean") < block.index("bn1.stored_var") \
        < block.index("bn1.gain.weight") < block.index("bn1.bias.weight") < block.index("bn2.stored_mean")
    assert [k for k in ordered if k.startswith("blocks.1.1.")][:2] == ["blocks.1.1.gamma", "blocks.1.1.theta.weight"]
    assert ordered[-8:] == ["output_layer.0.gain", "output_layer.0.bias", "output_layer.0.stored_mean",
                            "output_layer.0.stored_var", "output_layer.2.weight", "output_layer.2.bias",
                            "output_layer.2.u0", "output_layer.2.sv0"]


def test_a_preset_that_does_not_fit_names_the_first_layer_and_both_shapes(tmp_path):
    G, D, G_ema = random_nets(SMALL_32)
    write_their_folder(tmp_path / "theirs", SMALL_32, G, D, G_ema)
    preset = SMALL_32.model_copy(update={"ch": 8})
    with pytest.raises(LayerMismatchError) as info:
        import_bigganpytorch(tmp_path / "theirs", model=preset)
    assert str(info.value) == ("G layer 'linear.weight': the model has shape (512, 32), "
                               "the weights have shape (256, 32)")


def test_load_into_checks_every_net_before_changing_any(tmp_path):
    G, D, G_ema = random_nets(SMALL_32)
    write_their_folder(tmp_path / "theirs", SMALL_32, G, D, G_ema)
    run = import_bigganpytorch(tmp_path / "theirs")
    wrong = SMALL_32.model_copy(update={"sn_tracked_svs": 2})
    G2, D2, G_ema2 = Generator(run.model), Discriminator(wrong), Generator(run.model)
    before = {k: v.clone() for k, v in G2.state_dict().items()}
    with pytest.raises(LayerMismatchError, match=r"^D layer 'blocks\.0\.0\.conv1\.u1': the model has shape "
                                                 r"\(1, 16\), the weights have no such tensor$"):
        load_into(G2, D2, G_ema2, run)
    assert all(torch.equal(before[k], v) for k, v in G2.state_dict().items())  # G untouched


def test_mismatch_message_uses_their_name_when_it_differs(tmp_path):
    G, D, G_ema = random_nets(SMALL_32)
    folder = write_their_folder(tmp_path / "theirs", SMALL_32, G, D, G_ema)
    sd = torch.load(folder / "G.pth", weights_only=True)
    sd["output_layer.0.stored_var"] = torch.ones(5)
    torch.save(sd, folder / "G.pth")
    with pytest.raises(LayerMismatchError) as info:
        import_bigganpytorch(folder)
    assert str(info.value) == ("G layer 'output_bn.bn.running_var' ('output_layer.0.stored_var' in the source "
                               "files): the model has shape (16,), the weights have shape (5,)")


def test_bigganpytorch_files_that_say_deep_but_are_not_and_two_attention_blocks_are_refused(tmp_path):
    G, D, G_ema = random_nets(SMALL_32)
    folder = write_their_folder(tmp_path / "deep", SMALL_32, G, D, G_ema, model="BigGANdeep", G_depth=2,
                                D_depth=2)  # BigGAN's tensors under a deep config
    with pytest.raises(UnsupportedCheckpointError, match=r"^G has no 'blocks\.0\.0\.conv3\.weight': not "
                                                         r"BigGAN-PyTorch's BigGANdeep layout$"):
        import_bigganpytorch(folder)
    folder = write_their_folder(tmp_path / "attn", SMALL_32, G, D, G_ema)
    G_sd = torch.load(folder / "G.pth", weights_only=True)  # a second non-local block, after block 2
    G_sd.update({k.replace("blocks.1.1.", "blocks.2.1."): v for k, v in G_sd.items() if k.startswith("blocks.1.1.")})
    torch.save(G_sd, folder / "G.pth")
    with pytest.raises(UnsupportedCheckpointError, match=r"non-local blocks after blocks \[1, 2\]"):
        import_bigganpytorch(folder)


def test_state_dict_pickle_is_never_executed(tmp_path):
    import os

    G, D, G_ema = random_nets(SMALL_32)
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    folder = write_their_folder(tmp_path / "theirs", SMALL_32, G, D, G_ema, legacy=True, G_init=Payload())
    imported = read_bigganpytorch(folder)
    assert not marker.exists()
    assert repr(imported.config["G_init"]) == "<not loaded: posix.system>"
    assert any("never imported or run" in note for note in imported.notes)
    assert imported.config["G_ch"] == SMALL_32.ch  # plain values still read


def test_optimizer_state_round_trips_through_their_parameter_order(tmp_path):
    G, D, G_ema = random_nets(UNSHARED_32)  # unshared: moments of transposed embeddings too
    opts = {}
    for name, net in (("G", G), ("D", D)):
        net.train()
        opts[name] = torch.optim.Adam(net.parameters(), lr=1e-3)
    z, y = torch.randn(2, G.dim_z), torch.tensor([1, 2])
    D(G(z, y), y).sum().backward()
    for opt in opts.values():
        opt.step()
    export_bigganpytorch(G, D, G_ema, UNSHARED_32, tmp_path / "theirs",
                         opt_G=opts["G"].state_dict(), opt_D=opts["D"].state_dict())
    run = import_bigganpytorch(tmp_path / "theirs")
    for name, remapped in (("G", run.opt_G), ("D", run.opt_D)):
        original = opts[name].state_dict()
        assert remapped is not None and remapped["param_groups"][0]["params"] == original["param_groups"][0]["params"]
        for index, entry in original["state"].items():
            for key, value in entry.items():
                assert torch.equal(remapped["state"][index][key], value), (name, index, key)
    torch.optim.Adam(Generator(run.model).parameters()).load_state_dict(run.opt_G)


@pytest.mark.parametrize("layout", ["mybn", "cross_replica"])
def test_their_other_bn_layouts_import_to_the_same_statistics(tmp_path, layout):
    G, D, G_ema = random_nets(SMALL_32)
    folder = write_their_folder(tmp_path / "theirs", SMALL_32, G, D, G_ema)
    for name in ("G", "G_ema"):
        sd = torch.load(folder / f"{name}.pth", weights_only=True)
        moved = {}
        for key, value in sd.items():
            owner, _, leaf = key.rpartition(".")
            if leaf not in ("stored_mean", "stored_var"):
                moved[key] = value
            elif layout == "mybn":  # layers.myBN after accumulate_standing_stats: sums and a counter
                moved[f"{owner}.bn.{leaf}"] = value * 4
                moved[f"{owner}.bn.accumulation_counter"] = torch.full((1,), 4.0)
            else:  # their SynchronizedBatchNorm2d child
                moved[f"{owner}.bn.{leaf.replace('stored', 'running')}"] = value
                moved[f"{owner}.bn.num_batches_tracked"] = torch.tensor(9)
        torch.save(moved, folder / f"{name}.pth")
    run = import_bigganpytorch(folder)
    assert any(f"saved with {layout} BN" in note for note in run.notes)
    G2, D2, G_ema2 = Generator(run.model), Discriminator(run.model), Generator(run.model)
    load_into(G2, D2, G_ema2, run)
    for ours, source in zip(_outputs(G2.eval(), D2.eval(), G_ema2.eval(), SMALL_32), _outputs(G, D, G_ema, SMALL_32)):
        assert torch.allclose(ours, source, atol=1e-6, rtol=0)
