"""Scores compare only under one classifier file (measured before: FID 584 against 821 for the same
untrained G with classifiers trained at 1 and at 2 threads). The dataset classifier is now the same
file whatever the caller's thread count, and a study scores the same checkpoint to the same FID in
two processes at different thread counts, each training its own classifier in its own cache, with
one fingerprint in every score record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

TRAIN = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from biggan.eval.classifier import train_classifier
    done = train_classifier(sys.argv[2], sys.argv[3], val_shards=sys.argv[4], epochs=2, seed=0)
    print(done.weights_sha256, done.val_accuracy)
""")

SCORE = textwrap.dedent("""
    import json, sys, torch
    torch.set_num_threads(int(sys.argv[1]))
    from biggan.config import ExperimentConfig
    from biggan.eval.session import ensure_classifier
    from biggan.runs import RunStore
    from biggan.study.scoring import score_run
    root, run = sys.argv[2], sys.argv[3]
    cfg = ExperimentConfig.model_validate(RunStore(f"{root}/{run}").read_options())
    classifier = ensure_classifier(cfg)
    outcome = score_run(root, run, cfg.eval, str(classifier.path))
    records = RunStore(f"{root}/{run}").evaluations.history("fid").read()
    print(json.dumps({"outcome": outcome, "fingerprints": sorted({r["fingerprint"] for r in records}),
                      "threads": torch.get_num_threads()}))
""")


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return {**env, "BIGGAN_CACHE": str(cache), "PYTHONPATH": str(ROOT)}


def _both(script: str, args: list[list[str]], caches: list[Path]) -> list[str]:
    """The script in two processes at once (one per thread count), each with its own cache."""
    procs = [subprocess.Popen([sys.executable, "-c", script, *a], env=_env(c), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for a, c in zip(args, caches)]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        outs.append(out.strip().splitlines()[-1])
    return outs


@pytest.mark.slow
def test_the_classifier_file_is_the_same_at_one_and_two_threads(digits_shards, tmp_path):
    args = [[str(n), str(digits_shards["train"]), str(tmp_path / f"c{n}"), str(digits_shards["val"])] for n in (1, 2)]
    first, second = _both(TRAIN, args, [tmp_path / "cache1", tmp_path / "cache2"])
    assert first == second  # sha256 and held-out accuracy
    assert (tmp_path / "c1" / "classifier.pt").read_bytes() == (tmp_path / "c2" / "classifier.pt").read_bytes()


@pytest.fixture(scope="module")
def tiny_run(digits_shards, tmp_path_factory):
    """A checkpoint of a digits32 run (4 in-process iterations), scored cheaply."""
    import torch

    from biggan.config import apply_overrides
    from biggan.presets import digits32
    from biggan.runs import RunStore
    from biggan.train.context import LocalContext
    from biggan.train.loop import train

    root = tmp_path_factory.mktemp("runs")
    cfg = apply_overrides(digits32(), {
        "run_root": str(root), "name": "tiny", "cluster.num_workers": 0, "model.num_classes": 10,
        "data.train_shards": str(digits_shards["train"]), "data.val_shards": str(digits_shards["val"]),
        "data.shuffle_buffer": 20, "train.iterations": 4, "train.checkpoint_every": 4, "train.log_every": 2,
        "train.batch_size": 8, "train.standing_stats_batches": 1, "eval.num_samples": 300, "eval.batch_size": 100,
        "eval.standing_passes": 2, "eval.standing_batch": 50, "eval.classifier_epochs": 1,
        "eval.thresholds": [1.0]})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        RunStore(cfg.run_uri).write_options(cfg.model_dump(mode="json"))  # as the launcher does
        train(cfg, LocalContext())
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.mark.slow
def test_a_checkpoint_scored_twice_by_a_study_gets_the_same_fid(tiny_run, tmp_path):
    """Two copies of one run, scored in two processes at 1 and 2 threads, each training its own
    classifier into its own cache: the same FID, IS and best truncation point to the last bit."""
    roots = []
    for n in (1, 2):
        shutil.copytree(tiny_run, tmp_path / f"runs{n}")
        roots.append(tmp_path / f"runs{n}")
    args = [[str(n), str(root), "tiny"] for n, root in zip((1, 2), roots)]
    first, second = (json.loads(line) for line in _both(SCORE, args, [tmp_path / "cache1", tmp_path / "cache2"]))
    assert (first["threads"], second["threads"]) == (1, 2)
    a, b = first["outcome"], second["outcome"]
    assert a["state"] == b["state"] == "scored"
    for key in ("FID", "IS", "IS_std", "best_fid", "fingerprint", "checkpoint"):
        assert a[key] == b[key], key
    assert first["fingerprints"] == second["fingerprints"] == [a["fingerprint"]]  # one, in every record
