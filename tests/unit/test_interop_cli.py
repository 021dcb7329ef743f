"""`biggan import bigganpytorch` and `biggan export` through the CLI: an imported run is a run
like any other (sample, interpolate, export, evaluate), and export -> import gives it back."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.config import ExperimentConfig
from biggan.config.data import NO_SHARDS
from biggan.export import export_bigganpytorch, read_generator_export
from biggan.runs import RunStore
from biggan.runs.networks import generator_from_state
from biggan.sampling.standing import standing_stats_
from tests.unit._interop_helpers import SMALL_32, random_nets, write_their_folder

torch.set_num_threads(1)


def _their_folder(path, cfg=SMALL_32):
    """Their files for random nets, with optimizer files holding real Adam moments."""
    G, D, G_ema = random_nets(cfg)
    write_their_folder(path, cfg, G, D, G_ema)
    opts = {name: torch.optim.Adam(net.parameters(), lr=0.0) for name, net in (("G", G), ("D", D))}
    G.train(), D.train()
    D(G(torch.randn(2, G.dim_z), torch.tensor([1, 2])), torch.tensor([1, 2])).sum().backward()
    for opt in opts.values():
        opt.step()  # lr 0: moments filled, weights unchanged
    export_bigganpytorch(G, D, G_ema, cfg, path / "with_optim", opt_G=opts["G"].state_dict(),
                         opt_D=opts["D"].state_dict())
    for name in ("G_optim.pth", "D_optim.pth"):
        shutil.move(path / "with_optim" / name, path / name)
    shutil.rmtree(path / "with_optim")
    return path


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _state(store, name):
    run = RunStore(store / name)
    return run.load_state(run.checkpoint_to_evaluate())


def _assert_same_checkpoint(a, b):
    for net in ("G", "D", "G_ema"):
        assert a[net].keys() == b[net].keys(), net
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    for opt in ("opt_G", "opt_D"):
        assert a[opt]["state"].keys() == b[opt]["state"].keys() and a[opt]["state"], opt
        for index, entry in a[opt]["state"].items():
            assert all(torch.equal(torch.as_tensor(v), torch.as_tensor(b[opt]["state"][index][k]))
                       for k, v in entry.items()), (opt, index)
    assert a["iteration"] == b["iteration"]


def test_import_sample_interpolate_export_and_import_back(tmp_path):
    theirs, store = _their_folder(tmp_path / "theirs"), tmp_path / "runs"
    result = _invoke("import", "bigganpytorch", "--weights", theirs, "--store", store)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert printed["name"] == "00000-bigganpytorch" and printed["iteration"] == 1234
    assert printed["model"]["sn_tracked_svs"] == 1 and printed["train_shards"] == NO_SHARDS

    run = RunStore(store / "00000-bigganpytorch")
    cfg = ExperimentConfig.model_validate(run.read_options())  # a full config, as a trained run has
    assert (cfg.model.ch, cfg.model.num_classes, cfg.train.iterations, cfg.train.g_lr) == (4, 10, 1234, 1e-4)
    assert run.read_status()["state"] == "finished" and run.marked_checkpoint_name() == "checkpoint_00001234"
    state = _state(store, run.name)
    G, D, G_ema = random_nets(SMALL_32)
    for net, model in (("G", G), ("D", D), ("G_ema", G_ema)):
        assert all(torch.equal(state[net][k], v) for k, v in model.state_dict().items()), net
    assert state["opt_G"]["state"], "their Adam moments were imported"

    sample = _invoke("sample", "--run", run.name, "--store", store, "--classes", "0,9", "--per-class", "2",
                     "--out", tmp_path / "samples")
    assert sample.exit_code == 0, sample.output
    assert json.loads(sample.output)["images"] == 4
    interp = _invoke("interpolate", "--run", run.name, "--store", store, "--classes", "1,2", "--steps", "3",
                     "--out", tmp_path / "interp")
    assert interp.exit_code == 0, interp.output
    assert {p.name for p in (tmp_path / "interp").iterdir()} == {
        f"interp_{mode}_checkpoint_00001234.png" for mode in ("z", "class", "joint")}

    out = tmp_path / "export"
    exported = _invoke("export", "--run", run.name, "--store", store, "--out", out, "--truncation", "0.5",
                       "--program", "ts")
    assert exported.exit_code == 0, exported.output
    where = json.loads(exported.output)
    assert where["program"] == str(out / "generator.ts") and where["iteration"] == 1234
    assert where["bigganpytorch_files"] == ["D.pth", "D_optim.pth", "G.pth", "G_ema.pth", "G_optim.pth",
                                            "state_dict.pth"]
    # The weights are G_ema with the run's evaluation standing statistics at 0.5 baked in.
    model_cfg, weights, description = read_generator_export(out)
    assert model_cfg == cfg.model and description["bn_statistics"]["truncation"] == 0.5
    expected = generator_from_state(state)
    standing_stats_(expected, 10, cfg.eval.standing_passes, cfg.eval.standing_batch, 0.5, "cpu", seed=cfg.eval.seed)
    assert all(torch.equal(weights[k], v) for k, v in expected.state_dict().items())
    assert not torch.equal(weights["blocks.0.0.bn1.bn.running_mean"], state["G_ema"]["blocks.0.0.bn1.bn.running_mean"])

    again = _invoke("import", "bigganpytorch", "--weights", out / "bigganpytorch", "--store", store, "--name", "back")
    assert again.exit_code == 0, again.output
    _assert_same_checkpoint(_state(store, "back"), state)


def test_evaluation_of_an_import_without_shards_says_what_it_needs(tmp_path):
    store = tmp_path / "runs"
    assert _invoke("import", "bigganpytorch", "--weights", _their_folder(tmp_path / "t"), "--store", store,
                   "--name", "x").exit_code == 0
    for command in ("evaluate", "truncation-curve", "memorization"):
        result = _invoke(command, "--run", "x", "--store", store)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert re.fullmatch(rf"Error: run x was imported without --shards and `biggan {command}` needs images: "
                            r"import the weights again with --shards .*\n", result.output)
    resume = _invoke("train", "--resume", "x", "--store", store, "--dry-run")
    assert resume.exit_code == 2 and "imported without --shards" in resume.output


def test_import_with_shards_is_evaluated_like_a_trained_run(tmp_path, digits_shards):
    from biggan.eval.history import score_checkpoint
    from tests.unit._eval_fixtures import tiny_config

    store = tmp_path / "runs"
    result = _invoke("import", "bigganpytorch", "--weights", _their_folder(tmp_path / "t"), "--store", store,
                     "--shards", digits_shards["train"])
    assert result.exit_code == 0, result.output
    run = RunStore(store / "00000-bigganpytorch")
    cfg = ExperimentConfig.model_validate(run.read_options())
    assert cfg.data.train_shards == str(digits_shards["train"]) and cfg.data.val_shards == str(digits_shards["val"])
    # The evaluate node's scoring, with the small settings of the eval tests (their cached classifier).
    record = score_checkpoint(run, "checkpoint_00001234", tiny_config(tmp_path, digits_shards).eval)
    assert record["iteration"] == 1234 and record["metrics"]["FID"] > 0 and record["metrics"]["IS"] >= 1.0

    seven = SMALL_32.model_copy(update={"num_classes": 7})
    other = _invoke("import", "bigganpytorch", "--weights", _their_folder(tmp_path / "t7", seven), "--store", store,
                    "--shards", digits_shards["train"])
    assert other.exit_code == 1 and "7 classes but the shard set" in other.output and "10 classes" in other.output


@pytest.mark.parametrize("case", ["no-folder", "no-G", "taken-name", "preset-mismatch", "deep", "unsafe"])
def test_import_errors_are_one_line(tmp_path, case):
    theirs, store = _their_folder(tmp_path / "theirs"), tmp_path / "runs"
    args = ["import", "bigganpytorch", "--weights", theirs, "--store", store]
    expected = {
        "no-folder": r"Error: .*/nope is not a folder",
        "no-G": r"Error: .* has no G\.pth \(BigGAN-PyTorch's utils\.save_weights names\); it holds .*",
        "taken-name": r"Error: run x already exists in .*; pick another --name",
        "preset-mismatch": r"Error: G layer 'shared\.weight': the model has shape \(10, 32\), the weights have "
                           r"shape \(10, 16\)",
        "deep": r"Error: D has no 'input_conv\.weight': not BigGAN-PyTorch's BigGANdeep layout",
        "unsafe": r"Error: .*G\.pth is not a plain state dict; refusing to unpickle it .*",
    }[case]
    if case == "no-folder":
        args[3] = tmp_path / "nope"
    elif case == "no-G":
        (theirs / "G.pth").unlink()
    elif case == "taken-name":
        assert _invoke(*args, "--name", "x").exit_code == 0
        args += ["--name", "x"]
    elif case == "preset-mismatch":
        args += ["--preset", "digits32"]  # shared_dim 32, ch 8 against files of 16, 4
    elif case == "deep":
        G = torch.load(theirs / "G.pth", weights_only=True)
        G["blocks.0.0.conv3.weight"] = torch.zeros(1)
        torch.save(G, theirs / "G.pth")
    elif case == "unsafe":
        torch.save(torch.nn.ReLU(), theirs / "G.pth")  # a pickled module: code, not data
    result = _invoke(*args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert re.fullmatch(expected + r"\n", result.output), result.output
    assert not (store / "00000-bigganpytorch").exists() or case == "taken-name"
