"""README's own-data recipe, run exactly as written: the `biggan` lines of its fenced block
(between the own-data markers) on a generated ImageNet-style folder of 3 classes. If README
changes, this test follows it."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def recipe_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- own-data:begin -->", 1)[1].split("<!-- own-data:end -->", 1)[0]
    fenced = re.findall(r"```\n(.*?)```", block, flags=re.S)
    return [line.strip() for code in fenced for line in code.splitlines() if line.strip().startswith("biggan ")]


def write_images(root: Path) -> None:
    """my-images/{train,val}/<class>/*.png: three classes of coloured shapes, odd sizes."""
    rng = np.random.default_rng(0)
    colours = {"red-disc": (220, 30, 30), "green-bar": (30, 200, 60), "blue-ring": (40, 60, 230)}
    for split, count in (("train", 40), ("val", 12)):
        for name, colour in colours.items():
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                h, w = int(rng.integers(40, 64)), int(rng.integers(40, 64))
                yy, xx = np.mgrid[0:h, 0:w]
                cy, cx, r = h / 2 + rng.normal(0, 3), w / 2 + rng.normal(0, 3), min(h, w) / 3
                if name == "red-disc":
                    mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
                elif name == "green-bar":
                    mask = abs(xx - cx) < r / 3
                else:
                    mask = abs(np.hypot(yy - cy, xx - cx) - r) < 3
                image = np.full((h, w, 3), 245, np.uint8)
                image[mask] = colour
                Image.fromarray(image).save(folder / f"{i:03d}.png")


@pytest.mark.slow
def test_readme_own_data_recipe_runs_as_written(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    commands = recipe_commands()
    assert [shlex.split(c)[1] for c in commands] == ["shard", "shard", "train", "evaluate", "sample"], commands
    write_images(tmp_path / "my-images")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "BIGGAN_CACHE": str(tmp_path / "cache"), "BIGGAN_LOG_DIR": str(tmp_path / "logs")}
    env.pop("BIGGAN_STORE", None)
    for command in commands:
        args = shlex.split(command)[1:]
        done = subprocess.run([sys.executable, "-c", "from biggan.cli.entry import run; run()", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    run = tmp_path / "runs" / "my-first-run"
    options = (run / "options.json").read_text()
    assert '"num_classes": 3' in options  # the class count came from the data
    assert (run / "checkpoint_00000050" / "manifest.json").is_file()
    assert "checkpoint_00000050" in (run / "metric-fid.jsonl").read_text()
    for cls in ("0", "1", "2"):
        assert len(list((tmp_path / "samples" / cls).glob("*.png"))) == 8
