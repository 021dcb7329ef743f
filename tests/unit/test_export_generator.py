"""`biggan export`'s generator files and program (biggan.export)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import sysconfig
import textwrap

import pytest
import torch

from biggan.export import export_generator, read_generator_export, truncate_by_cdf
from biggan.models import Generator
from tests.unit._interop_helpers import SMALL_32, random_nets

torch.set_num_threads(1)
N = 20_000
KS_CRIT_1 = 1.95 / math.sqrt(N)  # one-sample KS, alpha = 0.001
KS_CRIT_2 = 1.95 * math.sqrt(2 / N)  # two-sample KS, equal sizes, alpha = 0.001


def _resampled(t: float, n: int, gen: torch.Generator) -> torch.Tensor:
    """Section 3.1's truncation: redraw every value beyond t (the distribution to match)."""
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    while bool((z.abs() > t).any()):
        outside = z.abs() > t
        z[outside] = torch.randn(int(outside.sum()), generator=gen, dtype=torch.float64)
    return z


def _ks_two_sample(a: torch.Tensor, b: torch.Tensor) -> float:
    grid = torch.cat([a, b]).sort().values
    cdf_a = torch.searchsorted(a.sort().values, grid, right=True) / len(a)
    cdf_b = torch.searchsorted(b.sort().values, grid, right=True) / len(b)
    return float((cdf_a - cdf_b).abs().max())


def _ks_truncated_normal(x: torch.Tensor, t: float) -> float:
    x = x.double().sort().values
    phi = torch.special.ndtr
    lo, hi = phi(torch.tensor(-t, dtype=torch.float64)), phi(torch.tensor(t, dtype=torch.float64))
    model = (phi(x) - lo) / (hi - lo)
    steps = torch.arange(1, len(x) + 1, dtype=torch.float64) / len(x)
    return float(torch.maximum(steps - model, model - (steps - 1 / len(x))).abs().max())


@pytest.mark.parametrize("t", [0.25, 1.0, 2.0])
def test_truncation_map_has_the_resampled_distribution(t):
    gen = torch.Generator().manual_seed(int(t * 100))
    z = torch.randn(N, generator=gen)
    mapped = truncate_by_cdf(z, t)
    assert mapped.dtype == torch.float32 and bool((mapped.abs() <= t).all())
    assert _ks_two_sample(mapped.double(), _resampled(t, N, gen)) < KS_CRIT_2
    assert _ks_truncated_normal(mapped, t) < KS_CRIT_1
    # The statistic can fail: clipping (the wrong way to truncate) is far outside it.
    assert _ks_truncated_normal(z.clamp(-t, t), t) > KS_CRIT_1


def test_truncation_map_is_monotone_deterministic_and_off_for_no_threshold():
    z = torch.linspace(-40, 40, 2001)
    mapped = truncate_by_cdf(z, torch.tensor(0.5))
    assert bool((mapped[1:] >= mapped[:-1]).all()) and torch.equal(mapped, truncate_by_cdf(z, 0.5))
    assert mapped[0].item() == -0.5 and mapped[-1].item() == 0.5
    assert truncate_by_cdf(torch.zeros(3), 0.5).abs().max().item() == 0.0
    for off in (0.0, -1.0, math.inf):
        assert torch.equal(truncate_by_cdf(z, off), z)


def test_export_files_describe_and_hash_the_weights(tmp_path):
    _, _, G_ema = random_nets(SMALL_32)
    description = export_generator(G_ema, SMALL_32, tmp_path, standing_truncation=0.5, standing_batches=16,
                                   program=None, source={"run": "r1", "iteration": 10})
    on_disk = json.loads((tmp_path / "generator.json").read_text())
    assert on_disk == description
    assert on_disk["dim_z"] == G_ema.dim_z and on_disk["resolution"] == 32 and on_disk["num_classes"] == 10
    assert on_disk["bn_statistics"]["kind"] == "standing" and on_disk["bn_statistics"]["truncation"] == 0.5
    cfg, state, _ = read_generator_export(tmp_path)
    G = Generator(cfg).eval()
    G.load_state_dict(state)
    z, y = torch.randn(2, G.dim_z), torch.tensor([1, 9])
    with torch.no_grad():
        assert torch.equal(G(z, y), G_ema(z, y))
    with open(tmp_path / "generator.safetensors", "r+b") as handle:  # one flipped byte at the end
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    with pytest.raises(ValueError, match="sha256"):
        read_generator_export(tmp_path)


_CHILD = textwrap.dedent("""
    import sys
    sys.path.append(sys.argv[1])  # site-packages only: its .pth files (our editable install) are not run
    try:
        import biggan
    except ImportError:
        pass
    else:
        raise SystemExit("biggan is importable: " + str(biggan.__file__))
    import torch
    inputs = torch.load(sys.argv[3], weights_only=True)
    G = torch.export.load(sys.argv[2]).module()
    with torch.no_grad():
        out = [G(inputs["z"], inputs["y"], torch.tensor(t)) for t in inputs["thresholds"]]
    torch.save(out, sys.argv[4])
""")


def test_program_runs_with_torch_alone_and_matches_G_ema(tmp_path):
    _, _, G_ema = random_nets(SMALL_32)
    description = export_generator(G_ema, SMALL_32, tmp_path / "export", standing_truncation=None)
    assert description["program"]["format"] == "torch.export"
    gen = torch.Generator().manual_seed(0)
    z, y = torch.randn(5, G_ema.dim_z, generator=gen), torch.tensor([0, 3, 9, 3, 1])
    thresholds = [0.5, 2.0, math.inf]
    torch.save({"z": z, "y": y, "thresholds": thresholds}, tmp_path / "inputs.pt")
    # -I: no PYTHONPATH, no user site, no cwd; -S: no site-packages .pth files (editable installs).
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", _CHILD, sysconfig.get_paths()["purelib"],
         str(tmp_path / "export" / "generator.pt2"), str(tmp_path / "inputs.pt"), str(tmp_path / "out.pt")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    images = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        for t, got in zip(thresholds, images):
            expected = G_ema(truncate_by_cdf(z, t), y)
            assert got.shape == (5, 3, 32, 32) and float(got.abs().max()) <= 1.0
            assert float((got - expected).abs().max()) <= 1e-5


def test_torchscript_program_when_asked(tmp_path):
    _, _, G_ema = random_nets(SMALL_32)
    description = export_generator(G_ema, SMALL_32, tmp_path, program="ts")
    assert description["program"]["file"] == "generator.ts"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks torch.jit deprecated
        program = torch.jit.load(str(tmp_path / "generator.ts"))
    z, y = torch.randn(3, G_ema.dim_z), torch.tensor([2, 2, 7])
    with torch.no_grad():
        assert float((program(z, y, torch.tensor(0.7)) - G_ema(truncate_by_cdf(z, 0.7), y)).abs().max()) <= 1e-5
