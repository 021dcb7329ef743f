"""Helper of test_train_fp32_equality.py (not a test): trains the `digits32` step of the biggan
tree on PYTHONPATH for N iterations in fp32 and saves its losses and final state dicts.

Run once with this checkout and once with the commit before the speed work (e7a81d3), in
separate processes; each tree builds the step its own way (`benchmarks/train_step.build_step`).
"""

from __future__ import annotations

import argparse
import inspect

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--log-every", type=int, default=5)
    parser.add_argument("--lr", type=float, default=None, help="G and D learning rate (default: the preset's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from benchmarks.train_step import build_step

    overrides = {"train.precision": "fp32"}
    if args.lr is not None:
        overrides.update({"train.g_lr": args.lr, "train.d_lr": args.lr})
    step, _ = build_step("digits32", 8, torch.device("cpu"), overrides)
    takes_tick = "tick" in inspect.signature(step.step).parameters
    # The gradients each optimizer step applies, for the first and the last iteration.
    grads: dict[str, list] = {}
    current = {"iteration": 0}

    def capture(name, model):
        def hook(optimizer, args, kwargs):
            if current["iteration"] in (1, args_.iterations):
                grads.setdefault(name, []).append(
                    {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})
        return hook

    args_ = args
    step.opt_G.register_step_pre_hook(capture("G", step.G))
    step.opt_D.register_step_pre_hook(capture("D", step.D))
    losses = []
    for iteration in range(1, args.iterations + 1):
        current["iteration"] = iteration
        tick = iteration % args.log_every == 0
        metrics = step.step(iteration, tick=tick) if takes_tick else step.step(iteration)
        losses.append({k: float(v) for k, v in metrics.items() if k.startswith("loss/")})
    torch.save({"losses": losses, "grads": grads, "G": step.G.state_dict(), "D": step.D.state_dict(),
                "G_ema": step.ema.target.state_dict(), "channels_last": step.cfg.channels_last}, args.out)


if __name__ == "__main__":
    main()
