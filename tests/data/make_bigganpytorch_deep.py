"""Make the BigGAN-deep reference data from BigGAN-PyTorch's own `BigGANdeep.py`.

Their code is never committed here, nor run in CI (no network there): this script runs it once,
from a checkout the caller names, and saves what it computed as data files the CI tests read
(tests/unit/test_interop_deep.py). To regenerate:

    git clone https://github.com/ajbrock/BigGAN-PyTorch /tmp/BigGAN-PyTorch   # 98459431a5d6 was used
    python tests/data/make_bigganpytorch_deep.py /tmp/BigGAN-PyTorch

It writes, for the cases of tests/unit/_deep_reference.py (their settings, our matching config):

- tests/data/bigganpytorch_deep.pt: at small widths (32, 64, 128 px), their G and D built and
  initialised by their own classes (`init_weights`, ortho), after one training-mode forward so BN
  statistics and SN vectors are not at their initial values: the state dicts under their own key
  names; fixed inputs; their outputs in eval mode (stored statistics) and in training mode (batch
  statistics, SN vectors updated); their buffers after that training forward; the gradients of
  `mean(G(z)^2) + mean(D(x))` from that forward. Also their G and D parameter counts at the paper's
  width (ch 128, 1,000 classes) at 128 and 256 px (their classes on the meta device).
- tests/data/bigganpytorch_deep_ch128.pt: the paper's 128 px BigGAN-deep (ch 128). Its weights
  would take 340 MB, so their tensors are `_deep_reference.recipe_state` (seeded per key, loaded
  with their load_state_dict) and the file holds their key shapes and outputs only; the test
  rebuilds the same tensors from the shapes.

`utils.py` of theirs imports h5py at module level; their model files do not import utils unless
fp16 Adam is asked for, and a stand-in h5py module is installed in case.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.unit._deep_reference import (  # noqa: E402 - after the path insert above
    BATCH,
    CASES,
    COUNT_RESOLUTIONS,
    GRADIENT_CASES,
    SMALL_FILE,
    WIDE,
    WIDE_FILE,
    inputs,
    recipe_state,
)


def their_module(checkout: Path) -> types.ModuleType:
    sys.modules.setdefault("h5py", types.ModuleType("h5py"))  # stand-in: nothing here reads HDF5
    sys.path.insert(0, str(checkout))
    import BigGANdeep  # their file, from the checkout

    return BigGANdeep


def their_nets(deep: types.ModuleType, settings: dict, skip_init: bool = False):
    G = deep.Generator(**settings, skip_init=skip_init, no_optim=True)
    D = deep.Discriminator(**settings, skip_init=skip_init)
    return G, D


def run(G, D, data: dict[str, torch.Tensor], train: bool, grads: bool = False):
    G.train(train)
    D.train(train)
    with torch.set_grad_enabled(grads):
        g = G(data["z"], G.shared(data["y"]))
        d = D(data["x"], data["y"]).squeeze(1)
        if grads:
            (g.square().mean() + d.mean()).backward()
    return g.detach(), d.detach()


def buffers(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.named_buffers()}


def small_case(deep: types.ModuleType, name: str, settings: dict) -> dict:
    torch.manual_seed(1000 + sorted(CASES).index(name))  # their init draws from the global RNG
    G, D = their_nets(deep, settings)
    warm = inputs(settings, BATCH[name], seed=5)
    run(G, D, warm, train=True)  # statistics and SN vectors away from their initial values
    saved = {"G": {k: v.clone() for k, v in G.state_dict().items()},
             "D": {k: v.clone() for k, v in D.state_dict().items()}}
    data = inputs(settings, BATCH[name])
    g_eval, d_eval = run(G, D, data, train=False)
    grads = name in GRADIENT_CASES
    g_train, d_train = run(G, D, data, train=True, grads=grads)
    return {
        "settings": settings, **saved, "inputs": stored_inputs(data),
        "eval": {"G": g_eval, "D": d_eval}, "train": {"G": g_train, "D": d_train},
        "after_train": {"G": buffers(G), "D": buffers(D)},
        "grads": {net: {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
                  for net, model in (("G", G), ("D", D))} if grads else None,
    }


def stored_inputs(data: dict[str, torch.Tensor]) -> dict:
    """z and y as they are; D's image input x by its sum (the test draws it again from the seed)."""
    return {"z": data["z"], "y": data["y"], "x_sum": float(data["x"].double().sum())}


def wide_case(deep: types.ModuleType) -> dict:
    G, D = their_nets(deep, WIDE, skip_init=True)
    shapes = {net: {k: list(v.shape) for k, v in model.state_dict().items()} for net, model in (("G", G), ("D", D))}
    G.load_state_dict(recipe_state(shapes["G"]))
    D.load_state_dict(recipe_state(shapes["D"]))
    data = inputs(WIDE, BATCH["wide"])
    g_eval, d_eval = run(G, D, data, train=False)
    g_train, d_train = run(G, D, data, train=True)
    sums = {net: {k: float(v.double().sum()) for k, v in buffers(model).items()} for net, model in (("G", G), ("D", D))}
    return {"settings": WIDE, "shapes": shapes, "inputs": stored_inputs(data), "eval": {"G": g_eval, "D": d_eval},
            "train": {"G": g_train, "D": d_train}, "after_train_sums": sums}


def counts(deep: types.ModuleType) -> dict[int, dict[str, int]]:
    out = {}
    for resolution in COUNT_RESOLUTIONS:
        with torch.device("meta"):
            G, D = their_nets(deep, {**WIDE, "resolution": resolution}, skip_init=True)
        out[resolution] = {"G": sum(p.numel() for p in G.parameters()), "D": sum(p.numel() for p in D.parameters())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help="a checkout of ajbrock/BigGAN-PyTorch")
    parser.add_argument("--commit", default=None, help="its commit, when the checkout has no .git")
    args = parser.parse_args()
    deep = their_module(args.checkout.resolve())
    torch.set_num_threads(1)
    commit = args.commit or subprocess.run(["git", "-C", str(args.checkout), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown (not a git checkout)"
    source = {"repository": "ajbrock/BigGAN-PyTorch", "commit": commit, "file": "BigGANdeep.py",
              "torch": str(torch.__version__)}
    small = {"source": source, "cases": {name: small_case(deep, name, s) for name, s in CASES.items()},
             "counts": counts(deep)}
    torch.save(small, SMALL_FILE)
    torch.save({"source": source, **wide_case(deep)}, WIDE_FILE)
    for path in (SMALL_FILE, WIDE_FILE):
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
