"""Every sampler opens a checkpoint the same way: `biggan sample` and `biggan interpolate` draw
exactly what evaluation draws (eval.standing_passes x eval.standing_batch standing statistics,
seeded with eval.seed, on eval.device), not training's cheaper progress-sheet statistics."""

from __future__ import annotations

import io
import json

import torch
from click.testing import CliRunner
from PIL import Image

from biggan.cli import main
from biggan.config import apply_overrides
from biggan.presets import digits32
from biggan.runs import RunStore
from biggan.runs.networks import generator_from_state
from biggan.sampling.sheets import draw_class_samples, grid_png, save_interpolations
from biggan.sampling.standing import standing_stats_


def _run(tmp_path) -> RunStore:
    from biggan.models import build_models

    torch.manual_seed(0)
    cfg = apply_overrides(digits32(), {
        "model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16, "model.num_classes": 10,
        # Evaluation's standing statistics differ from training's in every setting.
        "train.standing_stats_batches": 1, "eval.standing_passes": 3, "eval.standing_batch": 7, "eval.seed": 5,
        "eval.device": "cpu", "run_root": str(tmp_path), "name": "r"})
    G, D = build_models(cfg.model)
    with torch.no_grad():  # distinct G and G_ema, so `--raw` is visible
        G_ema = {k: v + 0.01 * torch.randn_like(v) if v.is_floating_point() else v for k, v in G.state_dict().items()}
    opt = torch.optim.Adam(G.parameters())
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    store.save_checkpoint({"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema, "opt_G": opt.state_dict(),
                           "opt_D": opt.state_dict(), "iteration": 5, "rng": {}, "data": {},
                           "config": cfg.model_dump(mode="json")}, {})
    return store


def _as_evaluation_draws(store: RunStore, truncation: float, ema: bool = True) -> torch.nn.Module:
    """G prepared by hand from the run's eval settings (not through the code under test)."""
    state = store.load_state(store.checkpoints()[-1])
    G = generator_from_state(state, ema=ema, channels_last=True)  # the run trains in channels_last
    standing_stats_(G, 10, batches=3, batch_size=7, truncation=truncation, device="cpu", seed=5)
    return G.eval()


def _pixels(png: bytes) -> torch.Tensor:
    return torch.tensor(list(Image.open(io.BytesIO(png)).convert("RGB").getdata()))


def test_sample_draws_as_evaluation_draws(tmp_path):
    store = _run(tmp_path)
    for raw in (False, True):
        out = tmp_path / f"sheets-{raw}"
        args = ["sample", "--run", "r", "--store", str(tmp_path), "--classes", "0,3", "--per-class", "2",
                "--truncation", "0.5", "--seed", "9", "--out", str(out)] + (["--raw"] if raw else [])
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        sheet = json.loads(result.output)["sheet"]
        rows = draw_class_samples(_as_evaluation_draws(store, 0.5, ema=not raw), [0, 3], 2, 0.5, seed=9)
        expected = _pixels(grid_png(torch.cat(rows), nrow=2))
        assert torch.equal(_pixels(open(sheet, "rb").read()), expected), f"raw={raw}"


def test_interpolate_writes_the_three_modes_of_appendix_a(tmp_path):
    store = _run(tmp_path)
    result = CliRunner().invoke(main, ["interpolate", "--run", "r", "--store", str(tmp_path), "--classes", "1,4",
                                       "--steps", "3", "--truncation", "0.5", "--out", str(tmp_path / "interp")])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)["interpolations"]
    assert sorted(written) == ["class", "joint", "z"]
    G = _as_evaluation_draws(store, 0.5)
    for mode, path in written.items():
        expected = tmp_path / f"expected-{mode}.png"
        save_interpolations(G, expected, [1, 4], 3, 0.5, seed=0, mode=mode)
        assert torch.equal(_pixels(open(path, "rb").read()), _pixels(expected.read_bytes())), mode


def test_joint_interpolation_moves_z_with_the_class(tmp_path):
    """Figure 8: both ends are (z, c) pairs. It starts where the class-only path starts (same z_a,
    same class) and ends at the next class with a new z, so its end differs from the class-only end."""
    from biggan.config import ModelConfig
    from biggan.models import Generator

    torch.manual_seed(0)
    G = Generator(ModelConfig(resolution=32, num_classes=5, ch=8, shared_dim=16)).eval()
    grids = {}
    for mode in ("class", "joint"):
        buffer = io.BytesIO()
        path = save_interpolations(G, tmp_path / f"{mode}.png", [0, 2], 2, None, seed=3, mode=mode)
        buffer.write(path.read_bytes())
        grids[mode] = _pixels(buffer.getvalue()).view(2 * 34 + 2, 2 * 34 + 2, 3)
    first, last = slice(2, 34), slice(36, 68)
    assert torch.equal(grids["class"][first, first], grids["joint"][first, first])
    assert not torch.equal(grids["class"][first, last], grids["joint"][first, last])
