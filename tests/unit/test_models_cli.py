"""`biggan interpolate` on a real (tiny, untrained) checkpoint."""

from __future__ import annotations

import json

from click.testing import CliRunner
from PIL import Image

from biggan.cli import main
from biggan.config import apply_overrides
from biggan.models import Generator
from biggan.presets import digits32
from biggan.runs import RunStore


def test_interpolate_writes_both_grids(tmp_path):
    cfg = apply_overrides(digits32(shards=str(tmp_path / "shards")), {
        "run_root": str(tmp_path), "name": "r", "model.ch": 4, "model.dim_z": 16, "model.shared_dim": 8,
        "model.num_classes": 10, "train.standing_stats_batches": 2,
    })
    G = Generator(cfg.model)
    store = RunStore(cfg.run_uri)
    store.write_options(cfg.model_dump(mode="json"))
    store.save_checkpoint({
        "G": G.state_dict(), "G_ema": G.state_dict(), "D": {}, "opt_G": {}, "opt_D": {}, "rng": {},
        "data": {}, "iteration": 10, "config": cfg.model_dump(mode="json"),
    }, {})
    out = tmp_path / "interp"
    run_dir = store.uri
    result = CliRunner().invoke(main, ["interpolate", "--run", run_dir, "--classes", "0,5,9",
                                       "--steps", "4", "--truncation", "1.0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)["interpolations"]
    for mode in ("z", "class"):
        with Image.open(written[mode]) as img:
            assert img.size == (4 * 34 + 2, 3 * 34 + 2)
    bad = CliRunner().invoke(main, ["interpolate", "--run", run_dir, "--classes", "10",
                                    "--out", str(out)])
    assert bad.exit_code != 0 and "classes must be in 0..9" in bad.output
