"""fp32 training gives today's results: this checkout against the commit before the speed work.

Both trees train the digits32 step (batch 8, fp32, one thread) for 20 iterations in their own
process (`fp32_run.py`); the old one is `git archive`d from this repository. Bit-for-bit equality
is not expected: the fused BN normalise-and-affine, its hand-written backward, the tall ortho
form, the attention product order and channels_last convolutions all sum in another order.

The tolerances, and why. A GAN amplifies any rounding difference: at the preset's learning rate
(6e-4) the old code run with channels_last (its own option; only the convolutions' summation
order changes) drifts from the old code run in NCHW by 2e-2 in the losses after 20 iterations,
exactly as far as this checkout does (docs/performance.md). So the run uses lr 1e-5, where the
trajectories stay at rounding distance, and compares:
- every iteration's losses: |diff| <= 5e-5 + 1e-5 |loss| (measured: <= 7e-6);
- the gradients each optimizer step applies in iterations 1 and 20, per tensor, relative to the
  tensor's largest entry (floored at 1e-3 of the network's largest): 1e-4 in iteration 1
  (measured 2.5e-5), 1e-2 in iteration 20 (measured 1.6e-3);
- every parameter and buffer after 20 iterations: |diff| <= 1.5e-4 (measured 4.5e-5: a conv bias
  right before a BN, whose true gradient is zero, moves by rounding noise x lr each step),
  except the extra singular vectors u1.., sv1.., which are refreshed at logging ticks only.
The old code's own NCHW-vs-channels_last differences are the same size on every one of these.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

OLD_COMMIT = "e7a81d3"
REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().with_name("fp32_run.py")
EXTRA_VECTORS = re.compile(r"\.(u|sv)[1-9]\d*$")


def _old_tree(dest: Path) -> Path:
    archive = dest / "old.tar"
    try:
        with archive.open("wb") as out:
            subprocess.run(["git", "-C", str(REPO), "archive", OLD_COMMIT, "biggan", "benchmarks"],
                           stdout=out, stderr=subprocess.PIPE, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.skip(f"commit {OLD_COMMIT} is not available in this checkout: {err}")
    tree = dest / "old"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


def _train(tree: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(RUNNER), "--out", str(out), "--lr", "1e-5"],
                            cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _check_grads(old: list[dict], new: list[dict], rtol: float, what: str) -> None:
    for index, (a, b) in enumerate(zip(old, new)):
        assert a.keys() == b.keys()
        largest = max(g.abs().max() for g in a.values())
        for name, grad in a.items():
            scale = grad.abs().max() + 1e-3 * largest
            diff = (grad - b[name]).abs().max()
            assert diff <= rtol * scale, f"{what} step {index}: {name} differs by {diff:.3g} (scale {scale:.3g})"


@pytest.mark.timeout(300)
def test_fp32_losses_gradients_and_weights_match_the_commit_before(tmp_path):
    old_tree = _old_tree(tmp_path)
    runs = {"old": _train(old_tree, tmp_path / "old.pt"), "new": _train(REPO, tmp_path / "new.pt")}
    for name, proc in runs.items():
        output, _ = proc.communicate(timeout=280)
        assert proc.returncode == 0, f"{name} run failed:\n{output}"
    old = torch.load(tmp_path / "old.pt", weights_only=True)
    new = torch.load(tmp_path / "new.pt", weights_only=True)

    assert len(old["losses"]) == len(new["losses"]) == 20
    for iteration, (a, b) in enumerate(zip(old["losses"], new["losses"]), start=1):
        for key, value in a.items():
            assert abs(value - b[key]) <= 5e-5 + 1e-5 * abs(value), f"iteration {iteration} {key}: {value} vs {b[key]}"
    for net in ("G", "D"):
        steps = len(old["grads"][net]) // 2
        _check_grads(old["grads"][net][:steps], new["grads"][net][:steps], 1e-4, f"{net} iteration 1")
        _check_grads(old["grads"][net][steps:], new["grads"][net][steps:], 1e-2, f"{net} iteration 20")
    for net in ("G", "D", "G_ema"):
        assert old[net].keys() == new[net].keys()
        for name, value in old[net].items():
            assert value.shape == new[net][name].shape, name
            if EXTRA_VECTORS.search(name):
                continue
            diff = (value.double() - new[net][name].double()).abs().max()
            assert diff <= 1.5e-4, f"{net}.{name} differs by {diff:.3g}"
