"""BigGAN-deep against BigGAN-PyTorch's own BigGANdeep.py, through our importer and exporter.

The reference numbers were computed by THEIR code (tests/data/make_bigganpytorch_deep.py runs
it from a checkout; neither their code nor anything that builds it is in this repository): their
G and D state dicts under their key names, fixed inputs, their outputs in eval mode (stored BN
statistics) and in training mode (batch statistics, SN vectors updated), their buffers after that
forward and their gradients. Here the state dicts go through `biggan import bigganpytorch`'s
code, our deep G and D run on the same inputs, and our weights go back out through the exporter.

Tolerances (float32, NCHW, one thread): outputs in eval mode, D's outputs and every buffer within
1e-5. G's outputs in TRAINING mode within 5e-5: every one of its 21 BNs normalises with statistics
of a batch of 2-4, and the float32 rounding of their F.batch_norm against our fused statistics
grows through them (1.1e-5 and 1.4e-5 at 64 and 128 px; running ours in float64 leaves the same
gap, so it is their result's rounding). Gradients (32 px) within 1e-5 of the largest gradient
of their net, relative: the same sums in another order (biases in front of a BN have a gradient of
exactly zero in exact arithmetic, 1e-10 of noise here, so a per-tensor scale would be noise). At 64
px the float32 gradient is itself 3e-3 (relative) away from the float64 one, ours and theirs alike,
through 21 training-mode BNs on batches of 4: no 1e-5 check means anything there, so the data holds
gradients at 32 px only.
"""

from __future__ import annotations

import json
import re

import pytest
import torch

from biggan.interop import import_bigganpytorch, load_into, to_bigganpytorch
from biggan.interop.keymap import their_key
from biggan.models import discriminator_class, empty, generator_class
from tests.unit._deep_reference import CASES, SMALL_FILE, WIDE, WIDE_FILE, inputs, our_config, recipe_state

torch.set_num_threads(1)
TOL = 1e-5
TOL_G_TRAIN = 5e-5  # see the module docstring


@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(SMALL_FILE, weights_only=True)


def _write_their_folder(folder, settings: dict, G_sd: dict, D_sd: dict):
    """As their utils.save_weights writes it: G.pth, D.pth and state_dict.pth with the run's config."""
    folder.mkdir(parents=True)
    torch.save(G_sd, folder / "G.pth")
    torch.save(D_sd, folder / "D.pth")
    torch.save({"itr": 10, "epoch": 0, "best_IS": 0.0, "best_FID": 999999.0, "config": dict(settings)},
               folder / "state_dict.pth")
    return folder


def _ours(run):
    G, D = empty(generator_class(run.model), run.model), empty(discriminator_class(run.model), run.model)
    G_ema = empty(generator_class(run.model), run.model)
    load_into(G, D, G_ema, run)
    return G, D


def _forward(G, D, data, train: bool, grads: bool = False):
    G.train(train)
    D.train(train)
    with torch.set_grad_enabled(grads):
        g, d = G(data["z"], data["y"]), D(data["x"], data["y"])
        if grads:
            (g.square().mean() + d.mean()).backward()
    return g.detach(), d.detach()


def _inputs(settings: dict, stored: dict, batch: int) -> dict:
    data = inputs(settings, batch)
    assert torch.equal(data["z"], stored["z"]) and torch.equal(data["y"], stored["y"])
    assert float(data["x"].double().sum()) == pytest.approx(stored["x_sum"], abs=1e-9)  # same draw as theirs
    return data


def _same(ours: torch.Tensor, theirs: torch.Tensor) -> bool:
    """Bit for bit, NaN included: their Gram-Schmidt divides by |u|^2, so the 2nd and 3rd singular
    vectors of a layer with one output (D's linear, attention's 1x1 convs at ch 4) are NaN in their
    files; they only feed the logged sv1 / sv2, never the weight."""
    return ours.dtype == theirs.dtype and torch.equal(ours.isnan(), theirs.isnan()) and torch.equal(
        ours.nan_to_num(), theirs.nan_to_num())


def _defined(key: str, their_sd: dict) -> bool:
    """False for the i-th SN vector (and value) of a weight of rank below i + 1: a 2-output layer
    tracking 3 has no third singular pair, and both codes normalise rounding noise there."""
    match = re.search(r"^(.*)\.(u|sv)(\d+)$", key)
    if match is None:
        return True
    weight = their_sd[f"{match.group(1)}.weight"]
    return int(match.group(3)) < min(weight.shape[0], weight[0].numel())


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return float((a.double() - b.double()).abs().max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_deep_g_and_d_equal_bigganpytorch_both_ways(tmp_path, reference, case):
    ref = reference["cases"][case]
    settings = ref["settings"]
    run = import_bigganpytorch(_write_their_folder(tmp_path / "theirs", settings, ref["G"], ref["D"]))
    assert run.model == our_config(settings)  # architecture and epsilons read from their tensors and config
    G, D = _ours(run)
    data = _inputs(settings, ref["inputs"], ref["eval"]["G"].shape[0])

    # Their files back out of our weights: the same tensors, names and order, bit for bit.
    back = to_bigganpytorch(G.state_dict(), D.state_dict(), None, run.model)
    for net in ("G", "D"):
        assert list(back[f"{net}.pth"]) == list(ref[net]), net
        assert all(_same(back[f"{net}.pth"][k], v) for k, v in ref[net].items()), net
    assert back["state_dict.pth"]["config"]["model"] == "BigGANdeep"

    g, d = _forward(G, D, data, train=False)
    assert _max_diff(g, ref["eval"]["G"]) < TOL and _max_diff(d, ref["eval"]["D"]) < TOL

    g, d = _forward(G, D, data, train=True, grads=ref["grads"] is not None)
    assert _max_diff(g, ref["train"]["G"]) < TOL_G_TRAIN and _max_diff(d, ref["train"]["D"]) < TOL
    for net, model in (("G", G), ("D", D)):
        kind = "D" if net == "D" else "G"
        ours = {their_key(k, kind): v for k, v in model.named_buffers() if their_key(k, kind) is not None}
        theirs = ref["after_train"][net]
        assert set(ours) == set(theirs), net
        for key, value in theirs.items():  # BN running statistics and SN vectors after one training forward
            if _defined(key, ref[net]):
                assert _max_diff(ours[key], value) < TOL, (net, key)
        if ref["grads"] is not None:
            grads = {their_key(k, kind): p.grad for k, p in model.named_parameters()}
            assert set(grads) == set(ref["grads"][net]), net
            scale = max(float(v.abs().max()) for v in ref["grads"][net].values())
            for key, value in ref["grads"][net].items():
                assert _max_diff(grads[key], value) / scale < TOL, (net, key)


def test_deep_at_the_papers_width_equals_bigganpytorch(tmp_path):
    """ch 128 at 128 px, 1,000 classes: their outputs from the recipe weights (see _deep_reference)."""
    ref = torch.load(WIDE_FILE, weights_only=True)
    assert ref["settings"] == WIDE
    G_sd, D_sd = recipe_state(ref["shapes"]["G"]), recipe_state(ref["shapes"]["D"])
    run = import_bigganpytorch(_write_their_folder(tmp_path / "theirs", WIDE, G_sd, D_sd))
    assert run.model == our_config(WIDE)
    del G_sd, D_sd
    G, D = _ours(run)
    data = _inputs(WIDE, ref["inputs"], ref["eval"]["G"].shape[0])
    for train, outputs in ((False, ref["eval"]), (True, ref["train"])):
        g, d = _forward(G, D, data, train=train)
        assert _max_diff(g, outputs["G"]) < (TOL_G_TRAIN if train else TOL), train
        assert _max_diff(d, outputs["D"]) < TOL * max(1.0, float(d.abs().max())), train
    for net, model in (("G", G), ("D", D)):
        kind = "D" if net == "D" else "G"
        sums = {their_key(k, kind): float(v.double().sum()) for k, v in model.named_buffers()
                if their_key(k, kind) is not None}
        assert set(sums) == set(ref["after_train_sums"][net])
        for key, value in ref["after_train_sums"][net].items():
            assert sums[key] == pytest.approx(value, rel=1e-4, abs=1e-4), (net, key)


def test_parameter_counts_equal_bigganpytorch_at_the_papers_width(reference):
    """G and D of BigGAN-deep (ch 128, 1,000 classes, z 128, shared 128) as their classes count them."""
    from biggan.models.params import count_parameters

    for resolution, theirs in reference["counts"].items():
        count = count_parameters(our_config({**WIDE, "resolution": resolution}))
        assert (count.generator, count.discriminator) == (theirs["G"], theirs["D"]), resolution


def test_deep_checkpoint_through_the_cli_export_round_trip_and_fine_tuning(tmp_path, reference, digits_shards, caplog):
    """Their 32 px deep G and D (10 classes, like the digits) as a run: sampled, exported (our generator
    files and their own layout again), and a new run fine-tuned from it keeps G and D."""
    from click.testing import CliRunner

    from biggan.cli import main
    from biggan.experiment import resolve_experiment
    from biggan.runs import RunStore
    from biggan.train.launcher import launch_training

    ref = reference["cases"]["32px"]
    folder = _write_their_folder(tmp_path / "theirs", ref["settings"], ref["G"], ref["D"])
    store = tmp_path / "runs"
    runner = CliRunner()
    imported = runner.invoke(main, ["import", "bigganpytorch", "--weights", str(folder), "--store", str(store)])
    assert imported.exit_code == 0, imported.output
    out = json.loads(imported.output)
    assert out["model"]["arch"] == "deep" and out["name"] == "00000-bigganpytorch"
    assert RunStore(out["run"]).read_options()["preset"] == "digits32-deep"  # train/eval settings of 32 px deep
    sample = runner.invoke(main, ["sample", "--run", out["name"], "--store", str(store), "--classes", "0,9",
                                  "--per-class", "2", "--truncation", "0.5", "--out", str(tmp_path / "s")])
    assert sample.exit_code == 0, sample.output

    exported = runner.invoke(main, ["export", "--run", out["name"], "--store", str(store), "--out",
                                    str(tmp_path / "e"), "--program", "none"])
    assert exported.exit_code == 0, exported.output
    files = json.loads(exported.output)
    assert {"D.pth", "G.pth", "G_ema.pth", "state_dict.pth"} <= set(files["bigganpytorch_files"])
    for net in ("G", "D"):  # their layout again, bit for bit
        back = torch.load(tmp_path / "e" / "bigganpytorch" / f"{net}.pth", weights_only=True)
        assert list(back) == list(ref[net]) and all(_same(back[k], v) for k, v in ref[net].items()), net

    tiny = {"train.iterations": 1, "train.batch_size": 8, "train.checkpoint_every": 1, "train.log_every": 1,
            "train.sample_every": 100, "train.standing_stats_batches": 1, "train.g_lr": 1e-12, "train.d_lr": 1e-12}
    cfg = resolve_experiment("digits32-deep", tiny, str(digits_shards["train"]), 0, store=str(store),
                             init_from=out["name"], name="tuned")
    assert cfg.model == our_config(ref["settings"]).model_copy(update={"num_classes": 10})
    launch_training(cfg)
    lines = [r.getMessage() for r in caplog.records if "started from" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith("initialised G, D and G_ema from the source run (10 classes)")
    state = RunStore(cfg.run_uri).load_state(RunStore(cfg.run_uri).checkpoint("1"))
    theirs_D = {their_key(k, "D"): v for k, v in state["D"].items()}
    assert torch.allclose(theirs_D["input_conv.weight"], ref["D"]["input_conv.weight"], atol=1e-9)


@pytest.mark.parametrize("change,message", [
    ({"G_depth": 1}, r"^BigGAN-PyTorch setting G_depth=1: our BigGAN-deep has 2 blocks per resolution \(Appendix B\)$"),
    ({"hier": False}, r"^BigGAN-PyTorch's BigGANdeep without --G_shared --hier: their G cannot run it"),
    ({"G_ch": 8}, r"^state_dict\.pth's config says G_ch=8, the weights' shapes say 4$"),
])
def test_deep_files_our_models_cannot_be_are_refused_in_one_line(tmp_path, reference, change, message):
    from biggan.interop import UnsupportedCheckpointError

    ref = reference["cases"]["32px"]
    folder = _write_their_folder(tmp_path / "theirs", {**ref["settings"], **change}, ref["G"], ref["D"])
    with pytest.raises(UnsupportedCheckpointError, match=message):
        import_bigganpytorch(folder)
