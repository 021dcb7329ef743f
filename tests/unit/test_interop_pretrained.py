"""`biggan import pretrained-biggan`: TF-Hub's BigGAN-deep generators, as pytorch-pretrained-biggan
(the PyPI package, pinned in the test extra) stores and runs them.

Nothing is downloaded: the files are built with ITS classes (`BigGAN(BigGANConfig(...))`, random
weights), saved as its converter saves them (config.json from the config, `torch.save` of the
state dict) and read back by its own `BigGAN.from_pretrained(folder)` as the reference model. As
its converter leaves them, every spectral-norm pair is one power-iteration step apart (one forward
in training mode) and every BN holds statistics per truncation value: here the batch statistics of
its own forward at each grid value psi, z = psi * truncnorm(-2, 2), as TF-Hub's were made.

Equality is checked in float64 on both sides: with random weights its own float32 output is up to
2.5e-5 away from its float64 output (rounding grows through 21 BNs), so a float32 comparison would
measure rounding, not the import. In float64 ours is within 1e-5 (what remains is our power
iteration, which runs in float32 by design, biggan.models.spectral).
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.models import DeepDiscriminator, build_models, seeded
from biggan.runs import RunStore
from biggan.runs.opened import open_checkpoint

pretrained = pytest.importorskip("pytorch_pretrained_biggan")  # the test extra pins it
from pytorch_pretrained_biggan.convert_tf_to_pytorch import BigGAN128  # noqa: E402 - after importorskip
from pytorch_pretrained_biggan.model import BigGANBatchNorm  # noqa: E402

TOL = 1e-5
PSIS = (1.0, 0.5, 0.413, 0.4, 0.02)  # 0.413: between grid points; 0.4: its modf lands just past 20
POINTS = (1, 20, 21, 25, 50)  # the grid points these read (the others keep zero means, unit variances)


def _config(ch: int = 4, classes: int = 10, z: int = 128, **extra):
    """Its BigGANConfig: the 128 px model's (BigGAN128 of its converter) at a small width. Its G is 128 px
    or more: its input linear makes 16 x channel_width channels and its output BN takes channel_width,
    and BigGAN-deep's 32 and 64 px tables end at 4ch and 2ch."""
    base = BigGAN128.to_dict()
    return pretrained.BigGANConfig(**{**base, "channel_width": ch, "num_classes": classes,
                                      "z_dim": z, "class_embed_dim": z, **extra})


@torch.no_grad()
def _their_folder(folder, config, points=POINTS, seed=0, sn_steps=1):
    """Random-weight files as its converter writes them (see the module docstring); `sn_steps` > 1
    takes the spectral-norm pairs further towards the top singular vectors, as training does."""
    torch.manual_seed(seed)
    model = pretrained.BigGAN(config)
    model.generator.bn.weight.normal_(1, 0.1)  # its output BN's affine starts uninitialised (torch.Tensor(n))
    model.generator.bn.bias.normal_(0, 0.1)
    for key, value in model.state_dict().items():
        if key.endswith("gamma"):
            value.fill_(0.4)  # a working non-local block
    gen = torch.Generator().manual_seed(seed + 1)
    y = torch.nn.functional.one_hot(torch.randint(0, config.num_classes, (8,), generator=gen), config.num_classes)
    model.train()
    model(torch.randn(8, config.z_dim, generator=gen), y.float(), 1.0)  # SN pairs one power step apart
    for module in model.modules():
        if hasattr(module, "weight_orig"):
            matrix = module.weight_orig.reshape(module.weight_orig.shape[0], -1)
            for _ in range(sn_steps - 1):  # its own step: v from u, then u from v
                module.weight_v.copy_(torch.nn.functional.normalize(matrix.t() @ module.weight_u, dim=0))
                module.weight_u.copy_(torch.nn.functional.normalize(matrix @ module.weight_v, dim=0))
    point = {}

    def record(module, args):  # the statistics of this batch become grid point p's
        x = args[0]
        module.running_means[point["p"]] = x.mean((0, 2, 3))
        module.running_vars[point["p"]] = x.var((0, 2, 3), unbiased=False)

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, BigGANBatchNorm)]
    for p in points:
        point["p"] = p
        psi = p / (config.n_stats - 1)
        z = torch.randn(8, config.z_dim, generator=gen).clamp(-2, 2) * psi
        model(z, y.float(), psi if p > 0 else 1e-9)  # at p = 0 its modf gives the same point
    for hook in hooks:
        hook.remove()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(config.to_json_string())
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    return folder


def _theirs(folder):
    """Its own loader on its own files: the reference model, eval mode, float64."""
    return pretrained.BigGAN.from_pretrained(str(folder)).eval().double()


def _import(folder, store, *extra):
    result = CliRunner().invoke(main, ["import", "pretrained-biggan", "--weights", str(folder), "--store",
                                       str(store), *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _max_diff(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


def _compare(theirs, run_uri: str, classes: int, psis=PSIS, ema: bool = True) -> list[float]:
    opened = open_checkpoint(run_uri, eval_overrides={"device": "cpu"})
    gen = torch.Generator().manual_seed(7)
    z = torch.randn(3, theirs.config.z_dim, generator=gen).clamp(-2, 2)
    y = torch.tensor([1, classes - 1, 3])
    onehot = torch.nn.functional.one_hot(y, classes).double()
    diffs = []
    for psi in psis:
        # The sampling path of every command (biggan.runs.opened): at our threshold 2 psi, G takes
        # the statistics stored at psi (biggan.models.truncation_stats).
        G = opened.generator(truncation=2 * psi, ema=ema).to(torch.float64, memory_format=torch.contiguous_format)
        with torch.no_grad():
            expected = theirs((z * psi).double(), onehot, psi)
            ours = G((z * psi).double(), y)
        assert 0.05 < float(expected.std()) and float((expected.abs() > 0.99).float().mean()) < 0.3  # not saturated
        diffs.append(_max_diff(ours, expected))
    return diffs


def test_imported_g_samples_as_pytorch_pretrained_biggan_does_at_128px(tmp_path):
    folder = _their_folder(tmp_path / "biggan-deep-128", _config())
    out = _import(folder, tmp_path / "runs")
    assert out["name"] == "00000-biggan-deep-128" and out["iteration"] == 0
    model = out["model"]
    assert (model["arch"], model["resolution"], model["ch"], model["dim_z"], model["shared_dim"]) == (
        "deep", 128, 4, 128, 128)
    assert (model["rgb_channels"], model["bn_truncation_points"], model["g_attention"]) == (4, 51, 64)
    assert any("no D was released" in note for note in out["notes"])
    theirs = _theirs(folder)
    diffs = _compare(theirs, out["run"], 10)
    assert max(diffs) < TOL, diffs
    assert max(_compare(theirs, out["run"], 10, psis=(0.5,), ema=False)) < TOL  # G is the released G too


@pytest.mark.slow
def test_imported_g_at_the_released_width_samples_as_pytorch_pretrained_biggan_does(tmp_path):
    """biggan-deep-128's own config (ch 128, 1,000 classes, z 128; 50.4 M parameters), random weights
    whose SN pairs are near their top singular vectors, as in weights trained for many iterations.
    Within 2e-5, not 1e-5: our power iteration runs in float32 by design, so every sigma carries
    a relative 1e-7 even in a float64 forward, and 21 BNs on random weights amplify it (8.1e-6 and
    9.8e-6 measured; with pairs one step from random, where our float32 u0 adds to it to first
    order, 1.7e-5). The 1e-5 check at 128 px is the small-width test above."""
    folder = _their_folder(tmp_path / "biggan-deep-128", BigGAN128, points=(20, 21, 25), sn_steps=30)
    out = _import(folder, tmp_path / "runs")
    assert out["model"]["ch"] == 128 and out["model"]["num_classes"] == 1000
    diffs = _compare(_theirs(folder), out["run"], 1000, psis=(0.5, 0.413))
    assert max(diffs) < 2 * TOL, diffs


def test_files_of_torch_before_1_1_import_the_same(tmp_path):
    """Its files as torch < 1.1 saved them: `weight` (already divided by sigma) and no `weight_v`."""
    folder = _their_folder(tmp_path / "new", _config(classes=6, z=16), points=[25, 50])
    theirs = _theirs(folder)
    sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
    legacy = {}
    for key, value in sd.items():
        if key.endswith(".weight_v"):
            base = key[: -len("_v")]
            matrix = sd[f"{base}_orig"].reshape(sd[f"{base}_orig"].shape[0], -1)
            sigma = torch.dot(sd[f"{base}_u"], matrix @ value)
            legacy[base] = sd[f"{base}_orig"] / sigma
            continue
        legacy[key] = value
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text((folder / "config.json").read_text())
    torch.save(legacy, old / "pytorch_model.bin")
    out = _import(old, tmp_path / "runs")
    assert max(_compare(theirs, out["run"], 6, psis=(1.0, 0.5))) < TOL


def test_sample_interpolate_and_export_work_on_the_imported_run(tmp_path):
    folder = _their_folder(tmp_path / "g", _config(classes=6, z=16), points=[25, 50])
    store = tmp_path / "runs"
    run = _import(folder, store)["name"]
    runner = CliRunner()
    sample = runner.invoke(main, ["sample", "--run", run, "--store", str(store), "--classes", "0,5",
                                  "--per-class", "2", "--truncation", "1.0", "--out", str(tmp_path / "s")])
    assert sample.exit_code == 0, sample.output
    interp = runner.invoke(main, ["interpolate", "--run", run, "--store", str(store), "--classes", "0,1",
                                  "--steps", "3", "--out", str(tmp_path / "i")])
    assert interp.exit_code == 0, interp.output
    exported = runner.invoke(main, ["export", "--run", run, "--store", str(store), "--out", str(tmp_path / "e"),
                                    "--truncation", "1.0", "--program", "pt2"])
    assert exported.exit_code == 0, exported.output
    result = json.loads(exported.output)
    assert result["bigganpytorch"] is None and "bigganpytorch/ not written" in result["notes"][0]
    program = torch.export.load(result["program"]).module()
    z = torch.zeros(2, 16)  # the program's truncation map leaves 0 at 0: the same z as G's
    images = program(z, torch.tensor([0, 5]), torch.tensor(1.0))
    G = open_checkpoint(f"{store}/{run}", eval_overrides={"device": "cpu"}).generator(truncation=1.0)
    with torch.no_grad():
        direct = G(z, torch.tensor([0, 5]))
    assert _max_diff(images, direct) < TOL  # the program holds the statistics stored at psi = 0.5


@pytest.mark.parametrize("case", ["no-bin", "layers", "tensor", "unsafe", "not-json", "resolution"])
def test_wrong_files_are_one_line_naming_the_file_and_nothing_is_written(tmp_path, case):
    config = _config(classes=6, z=16)
    folder = _their_folder(tmp_path / "g", config, points=())  # no statistics needed to refuse it
    expected = {
        "no-bin": r".*/g has no pytorch_model\.bin \(pytorch-pretrained-biggan's files: config\.json and "
                  r"pytorch_model\.bin\)",
        "layers": r".*/g/config\.json: layers .* are not BigGAN-deep's at 128 px .*",
        "tensor": r".*/g/pytorch_model\.bin: G layer 'blocks\.0\.0\.conv2\.weight': the model has shape "
                  r"\(16, 16, 3, 3\), the weights have shape \(16, 16, 1, 1\) \(config\.json implies the model's\)",
        "unsafe": r".*/g/pytorch_model\.bin is not a plain state dict; refusing to unpickle it .*",
        "not-json": r".*/g/config\.json is not JSON .*",
        "resolution": r".*/g/config\.json: output_dim 100: BigGAN-deep is 32 to 512 px",
    }[case]
    if case == "no-bin":
        (folder / "pytorch_model.bin").unlink()
    elif case == "layers":
        bad = json.loads((folder / "config.json").read_text())
        bad["layers"][1] = [True, 16, 8]
        (folder / "config.json").write_text(json.dumps(bad))
    elif case == "tensor":  # the config says 3x3, the file holds a 1x1 conv
        sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
        sd["generator.layers.0.conv_1.weight_orig"] = torch.zeros(16, 16, 1, 1)
        sd["generator.layers.0.conv_1.weight_v"] = torch.zeros(16)
        torch.save(sd, folder / "pytorch_model.bin")
    elif case == "unsafe":
        torch.save(torch.nn.ReLU(), folder / "pytorch_model.bin")
    elif case == "not-json":
        (folder / "config.json").write_text("{not json")
    elif case == "resolution":
        bad = json.loads((folder / "config.json").read_text())
        bad["output_dim"] = 100
        (folder / "config.json").write_text(json.dumps(bad))
    store = tmp_path / "runs"
    result = CliRunner().invoke(main, ["import", "pretrained-biggan", "--weights", str(folder), "--store", str(store)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert re.fullmatch("Error: " + expected + r"\n", result.output), result.output
    assert not store.exists() or not any(store.iterdir())


def test_fine_tuning_starts_d_from_scratch_and_says_so(tmp_path, demo_data, caplog, one_thread):
    from biggan.config import ShardConfig
    from biggan.data.shard import shard_dataset
    from biggan.experiment import resolve_experiment
    from biggan.train.launcher import launch_training

    shards = tmp_path / "digits128"  # the digits at 128 px: its G makes 128 px or more (see _config)
    shard_dataset(ShardConfig(source="imagenet", root=demo_data.imagenet_root, split="train", out=shards,
                              resolution=128, samples_per_shard=500))
    folder = _their_folder(tmp_path / "g", _config(classes=10, z=16), points=[50])
    store = str(tmp_path / "runs")
    source = _import(folder, store, "--shards", str(shards))
    tiny = {"train.iterations": 1, "train.batch_size": 8, "train.checkpoint_every": 1, "train.log_every": 1,
            "train.sample_every": 100, "train.standing_stats_batches": 1, "train.g_lr": 1e-12, "train.d_lr": 1e-12}
    cfg = resolve_experiment("digits32-deep", tiny, str(shards), 0, store=store, init_from=source["name"],
                             name="tuned")
    assert cfg.model.bn_truncation_points == 0 and cfg.model.rgb_channels == 4  # the table is dropped, not the conv
    launch_training(cfg)
    lines = [r.getMessage() for r in caplog.records if "started from" in r.getMessage()]
    assert len(lines) == 1 and lines[0].endswith(
        "initialised G and G_ema from the source run (10 classes); D starts from scratch (the source has no "
        "trained D, e.g. TF-Hub released G only)"), lines
    src = RunStore(source["run"]).load_state(RunStore(source["run"]).checkpoint_to_evaluate())
    state = RunStore(cfg.run_uri).load_state(RunStore(cfg.run_uri).checkpoint("1"))
    assert "truncation_statistics.means" not in state["G"]
    assert torch.allclose(state["G"]["blocks.0.0.conv2.weight"], src["G"]["blocks.0.0.conv2.weight"], atol=1e-9)
    fresh_D = build_models(cfg.model, seeded(cfg.train.seed))[1]
    assert isinstance(fresh_D, DeepDiscriminator)
    assert torch.allclose(state["D"]["input_conv.weight"], fresh_D.input_conv.weight, atol=1e-9)  # the new run's D
    assert not torch.allclose(state["D"]["input_conv.weight"], src["D"]["input_conv.weight"])
