"""How much FID moves with the seed of the standing statistics, at 16 and at 100 passes.

    python benchmarks/standing_variance.py --run runs/00000-digits32            # the demo's run
    python benchmarks/standing_variance.py --run NAME --passes 16 100 --seeds 0 1 2 3 4 --batch 64

Standing statistics (Appendix C.1) re-estimate G_ema's BatchNorm statistics from random
samples, so they are themselves random. For each number of passes and each seed, this takes
them from that seed and then scores the same samples (latents of `eval.seed`, the run's
config) with the run's feature extractor: only the statistics differ between seeds. Prints
the FID of every seed, and their range and standard deviation per number of passes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from biggan.eval.metrics import compute_metrics
from biggan.eval.session import ensure_classifier, open_session
from biggan.runs.opened import with_eval


def fid_with_standing_seed(run: str, checkpoint: str | None, passes: int, batch: int, seed: int,
                           sample_seed: int, num_samples: int | None, classifier: str | None) -> float:
    session = open_session(run, checkpoint, {"standing_passes": passes, "standing_batch": batch, "seed": seed},
                              classifier=classifier)
    session.generator(session.cfg.eval.truncation)  # standing statistics drawn with `seed`
    session.cfg = with_eval(session.cfg, {"seed": sample_seed})  # then the same samples for every seed
    return compute_metrics(session, ["fid"], session.cfg.eval.truncation, num_samples)["fid"]["FID"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="run name in the store, path or URI")
    parser.add_argument("--checkpoint", default=None, help="default: the checkpoint the run marked")
    parser.add_argument("--passes", nargs="+", type=int, default=[16, 100])
    parser.add_argument("--batch", type=int, default=64, help="samples per standing pass")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--samples", type=int, default=None, help="FID samples (default: the run's eval.num_samples)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    first = open_session(args.run, args.checkpoint)
    trained = ensure_classifier(first.cfg, first.device)
    classifier = None if trained is None else str(trained.path)
    print(f"run {first.store.uri}, {first.info.name}; FID on {args.samples or first.cfg.eval.num_samples} "
          f"samples ({first.cfg.eval.feature_extractor}), the same samples for every seed; "
          f"standing batch {args.batch}", flush=True)
    for passes in args.passes:
        start = time.perf_counter()
        fids = [fid_with_standing_seed(args.run, args.checkpoint, passes, args.batch, seed, first.cfg.eval.seed,
                                       args.samples, classifier)
                for seed in args.seeds]
        print(f"{passes:4d} passes: FID " + " ".join(f"{f:.3f}" for f in fids)
              + f" | range {max(fids) - min(fids):.3f}, std {statistics.stdev(fids):.3f}, "
              f"mean {statistics.mean(fids):.3f} ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
