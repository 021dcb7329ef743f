"""Networks are initialised from an explicit generator, never from the process's global RNG.

The untrained-G baseline of the demo's FID drop was built with `torch.manual_seed` while other
evaluation nodes built networks in threads of the same process: its weights, and the baseline,
depended on thread timing. These tests pin the replacement: the same tensors as the seeded
construction, no global state read or changed, and no library code that reseeds or builds from
the global RNG.
"""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import pytest
import torch

from biggan.config import ModelConfig
from biggan.models import Discriminator, Generator, build_models, seeded
from biggan.models.init import build, empty, initialize_

PACKAGE = Path(__file__).resolve().parents[2] / "biggan"
CONFIGS = [
    ModelConfig(resolution=32, num_classes=10, ch=8, dim_z=64, shared_dim=32),
    ModelConfig(resolution=32, num_classes=10, ch=8, dim_z=64, shared=False, hier=False),
    ModelConfig(resolution=64, num_classes=5, ch=8, dim_z=60, sn_tracked_svs=1),
]


def _same(a: torch.nn.Module, b: torch.nn.Module) -> list[str]:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return [key for key in sa if not torch.equal(sa[key], sb[key])]


@pytest.mark.parametrize("cfg", CONFIGS, ids=["shared-hier", "baseline", "64px"])
def test_explicit_generator_gives_the_seeded_constructions_tensors(cfg):
    torch.manual_seed(11)
    G_old, D_old = Generator(cfg), Discriminator(cfg)
    G_new, D_new = build_models(cfg, seeded(11))
    assert _same(G_old, G_new) == [] and _same(D_old, D_new) == []


def test_building_neither_reads_nor_changes_the_global_rng():
    before = torch.get_rng_state()
    G_a, _ = build_models(CONFIGS[0], seeded(3))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # whatever the global RNG holds, the weights come from the seed alone
    G_b, _ = build_models(CONFIGS[0], seeded(3))
    assert _same(G_a, G_b) == []


def test_untrained_baseline_is_the_same_while_another_thread_draws_from_the_global_rng():
    from biggan.config import DataConfig, ExperimentConfig
    from biggan.eval.agreement import untrained_generator

    cfg = ExperimentConfig(data=DataConfig(train_shards="unused"), model=CONFIGS[0])
    reference = untrained_generator(cfg)
    before = torch.get_rng_state()
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            torch.randn(4096)

    thread = threading.Thread(target=draw)
    thread.start()
    try:
        rebuilt = [untrained_generator(cfg) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
    assert all(_same(reference, G) == [] for G in rebuilt)
    torch.set_rng_state(before)
    untrained_generator(cfg)
    assert torch.equal(torch.get_rng_state(), before), "untrained_generator changed the global RNG"


def test_a_layer_initialize_does_not_know_is_an_error_not_garbage():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(3))

    with pytest.raises(TypeError, match="Odd"):
        build(Odd, generator=seeded(0))
    with pytest.raises(TypeError, match="Odd"):
        initialize_(Odd(), seeded(0))


def test_empty_draws_nothing_and_loads_a_state():
    G, _ = build_models(CONFIGS[0], seeded(1))
    before = torch.get_rng_state()
    copy = empty(Generator, CONFIGS[0])
    copy.load_state_dict(G.state_dict())
    assert torch.equal(torch.get_rng_state(), before) and _same(G, copy) == []


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name


def global_rng_uses(source: str) -> list[str]:
    """`torch.manual_seed(...)`, `torch.seed()`, and `build_models(cfg)` without a generator."""
    found = []
    for node, owner, name in _calls(ast.parse(source)):
        if owner == "torch" and name in ("manual_seed", "seed", "set_rng_state"):
            found.append(f"line {node.lineno}: torch.{name}")
        if name == "build_models" and len(node.args) < 2 and not any(k.arg == "generator" for k in node.keywords):
            found.append(f"line {node.lineno}: build_models without a generator")
    return found


def test_no_library_code_uses_the_global_rng_to_initialise():
    found = {str(p.relative_to(PACKAGE.parent)): hits for p in sorted(PACKAGE.rglob("*.py"))
             if (hits := global_rng_uses(p.read_text()))}
    assert found == {}


def test_the_checker_catches_each_use():
    source = "import torch\ntorch.manual_seed(0)\nG, D = build_models(cfg)\nbuild_models(cfg, seeded(0))\n"
    assert global_rng_uses(source) == ["line 2: torch.manual_seed", "line 3: build_models without a generator"]
