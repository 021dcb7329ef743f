"""Parts 3 and 4 of benchmarks/gpu_check.py: evaluation on the device, and the CUDA-only tests.

eval: IS and FID of 10,000 samples (tiny: 200) at 128 px (tiny: 32) through the project's streamed
evaluation session (biggan.eval.session.open_session + biggan.eval.metrics.compute_metrics: what
`biggan evaluate` runs, without its Prefect flow), of a run holding G at random weights (the cost
does not depend on what G learned), with (a) the dataset classifier trained on the shards and (b)
torch-fidelity's inception-v3-compat with RANDOM weights: nothing can be downloaded on the GPU
machine, so the figures are timings, not comparable scores. Each stage is timed, and the
per-sample stages are extrapolated to the paper's 50,000 samples.

cuda: the test files that mark tests `cuda` (pytest -m cuda), among them cross-replica BN over two
gloo processes on CUDA tensors against one process with the doubled batch. Skipped without CUDA.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch
from bench_fixtures import demo_shards, random_weights_run  # benchmarks/, on sys.path when a script runs
from gpu_check_common import Recorder, part_main, sync

REPO = Path(__file__).resolve().parents[1]
PAPER_SAMPLES = 50_000


def random_inception_weights(path: Path) -> Path:
    """A state dict of torch-fidelity's Inception at random initialisation (seed 0). Its constructor
    always loads weights (downloading them without a path), so the download and the load are
    stubbed for this one construction; evaluation then loads the file through the real path."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    if not path.is_file():
        with mock.patch.object(fe, "load_state_dict_from_url", lambda *a, **k: None), \
                mock.patch.object(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda *a, **k: None):
            torch.manual_seed(0)
            model = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
        torch.save(model.state_dict(), path)
    return path


def tiny_shards(work: Path, resolution: int) -> Path:
    """The embedded digits cut to 30 (train) and 10 (val) per class: on a CPU, Inception at 299 px over
    the whole val split is minutes, and the rehearsal needs the path to run, not the figure."""
    from biggan.config import ShardConfig
    from biggan.data.demo import write_demo_data
    from biggan.data.shard import shard_dataset

    shards = work / "tiny-shards"
    if not (shards / "val" / "dataset.json").is_file():
        demo = write_demo_data(work / "demo")
        for split, per_class in (("train", 30), ("val", 10)):
            shard_dataset(ShardConfig(source="imagenet", root=demo.imagenet_root, split=split, out=shards / split,
                                      resolution=resolution, max_per_class=per_class, samples_per_shard=500))
    return shards


def _timed(rec: Recorder, stages: dict, name: str, device: torch.device, fn):
    start = time.perf_counter()
    out = fn()
    sync(device)
    stages[name] = time.perf_counter() - start
    rec.say(f"{name}: {stages[name]:.1f} s")
    return out


def evaluate_once(rec: Recorder, device: torch.device, cfg, extractor: str, samples: int, batch: int,
                  standing_passes: int, weights: Path | None, reference: str) -> None:
    from biggan.eval.metrics import compute_metrics
    from biggan.eval.session import open_session
    from biggan.sampling.images import generated_batches

    overrides = {"device": device.type, "reference": reference, "num_samples": samples, "batch_size": batch,
                 "metrics": ["is", "fid"],
                 "feature_extractor": extractor, "inception_weights": weights, "classifier_epochs": 1,
                 "standing_passes": standing_passes, "standing_batch": batch, "cache_dir": cfg.eval.cache_dir}
    stages: dict[str, float] = {}
    session = _timed(rec, stages, "open checkpoint", device, lambda: open_session(cfg.run_uri, None, overrides))
    G = _timed(rec, stages, f"standing statistics ({standing_passes} x {batch})", device,
               lambda: session.generator(None))
    _timed(rec, stages, "extractor (classifier training if not cached)", device, lambda: session.extractor)
    _timed(rec, stages, f"reference statistics ({reference} shards)", device, lambda: session.reference())
    mcfg = session.cfg.model

    def generate_only() -> None:
        for _images, _y in generated_batches(G, samples, mcfg.num_classes, None, mcfg.latent, batch, 0, device):
            pass

    _timed(rec, stages, f"generate {samples} (uint8)", device, generate_only)
    scores = _timed(rec, stages, f"generate + features + IS/FID of {samples}", device,
                    lambda: compute_metrics(session, ["is", "fid"], None, samples))
    per_sample = stages[f"generate + features + IS/FID of {samples}"]
    fixed = sum(v for k, v in stages.items() if not k.startswith("generate"))
    rec.row(extractor=extractor, samples=samples, IS=scores["is"]["IS"], FID=scores["fid"]["FID"],
            **{f"{k} s": v for k, v in stages.items()},
            **{"samples/s (generate + features)": samples / per_sample,
               f"extrapolated {PAPER_SAMPLES} s (fixed stages + scaled pass)": fixed + per_sample * PAPER_SAMPLES
               / samples})


def part_eval(rec: Recorder, device: torch.device, args) -> None:
    from biggan.config import DataConfig, EvalConfig, ExperimentConfig
    from biggan.presets import get_preset

    tiny = args.tiny
    resolution, samples, batch, passes = (32, 200, 100, 2) if tiny else (128, 10_000, 250, 16)
    # Tiny: the val split as reference (10 per class, tiny_shards): Inception at 299 px is the CPU's slow stage.
    reference = "val" if tiny else "train"
    # Outside OUT: the device tool brings OUT back, and shards, runs and caches are 100 MB of no interest.
    # One folder per resolution, reused by a rerun on the same machine (shards and classifier are kept).
    work = Path(tempfile.gettempdir()) / f"biggan-gpu-check-eval-{resolution}px"
    work.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.shards:
        shards = Path(args.shards)
        rec.note(f"shards: {shards}")
    elif tiny:
        shards = tiny_shards(work, resolution)
    else:
        shards = demo_shards(work, resolution=resolution, samples_per_shard=500)
        rec.note(f"shards: the embedded digits at {resolution} px, written in {time.perf_counter() - start:.1f} s")
    classes = json.loads((shards / "train" / "dataset.json").read_text()).get("num_classes", 10)
    model = get_preset("digits32" if tiny else "imagenet128").model.model_copy(update={"num_classes": classes})
    # One run per shard set (its options name the shards the classifier and the reference read).
    name = f"gpu-check-{hashlib.sha256(str(shards.resolve()).encode()).hexdigest()[:8]}"
    cfg = ExperimentConfig(name=name, run_root=str(work / "runs"),
                           data=DataConfig(train_shards=str(shards / "train"), val_shards=str(shards / "val")),
                           model=model, eval=EvalConfig(cache_dir=work / "cache", device=device.type))
    if not (work / "runs" / name / "options.json").is_file():
        random_weights_run(cfg)
    rec.note(f"G: {'digits32' if tiny else 'imagenet128 (ch 96)'} architecture at {resolution} px, random weights, "
             f"{classes} classes; evaluated in fp32 on {device.type}; eval batch {batch}, {passes} standing passes "
             f"(the presets use up to 100: that stage scales with the passes)")
    rec.note("inception-v3-compat here has RANDOM weights (seed 0): nothing can be downloaded on the GPU machine; "
             "its IS/FID are timings only (untrained, its features barely vary: expect IS near 1 and FID near 0)")
    weights = random_inception_weights(work / "pt_inception-random.pth")
    for extractor in ("dataset-classifier", "inception-v3-compat"):
        if rec.left() < 20:
            rec.note(f"{extractor}: not run, the part's time budget is spent")
            continue
        evaluate_once(rec, device, cfg, extractor, samples, batch, passes,
                      weights if extractor == "inception-v3-compat" else None, reference)


def cuda_test_files() -> list[str]:
    """Test files with a test marked `cuda` (pytest.mark.cuda), relative to the repository."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").rglob("test_*.py")
                  if "pytest.mark.cuda" in p.read_text())


def part_cuda(rec: Recorder, device: torch.device, args) -> None:
    if device.type != "cuda" or not torch.cuda.is_available():
        rec.set(status="skipped: no CUDA")
        rec.note("skipped: no CUDA")
        return
    files = cuda_test_files()
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", "-rA", *files]
    rec.note(f"running: {' '.join(cmd[1:])}")
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=max(10.0, rec.left() - 5))
        output, rc = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as err:
        partial = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else (err.stdout or "")
        output, rc = f"{partial}\n... cut off at the part's budget", "timeout"
    print(output[-6000:], flush=True)
    summary = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error)", line)]
    rec.row(files=" ".join(files), exit=rc, summary=summary[-1] if summary else "no summary")
    rec.table("pytest -m cuda output (tail)", output[-4000:])
    if rc != 0:
        rec.set(status=f"failed: pytest exit {rc}")


if __name__ == "__main__":
    part_main({"eval": part_eval, "cuda": part_cuda})
