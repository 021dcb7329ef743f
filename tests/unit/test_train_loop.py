"""The in-process training loop: runs, logs, checkpoints, resumes exactly, stops on collapse."""

from __future__ import annotations

import json

import pytest
import torch

from biggan.config import apply_overrides
from biggan.presets import digits32
from biggan.train import checkpoint as ckpt
from biggan.train.context import LocalContext
from biggan.train.loop import train
from biggan.train.monitor import read_stats


class Killed(RuntimeError):
    pass


def synthetic_batches(kill_after: int | None = None):
    """A deterministic function of the seed, like the shard loader; optionally dies mid-run."""
    served = {"n": 0}

    def make(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        while True:
            served["n"] += 1
            if kill_after is not None and served["n"] > kill_after:
                raise Killed("simulated crash")
            yield torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1, torch.randint(10, (micro_batch,), generator=g)

    return make


def tiny(tmp_path, name, **extra):
    overrides = {"run_root": str(tmp_path), "name": name, "cluster.num_workers": 0,
                 "train.iterations": 6, "train.log_every": 2, "train.checkpoint_every": 3,
                 "train.batch_size": 8, "model.ch": 8, "model.shared_dim": 8, "model.dim_z": 16,
                 "train.ema_start": 2, "train.standing_stats_batches": 1, "train.sample_every": 2,
                 "train.keep_checkpoints": 5}
    overrides.update(extra)
    return apply_overrides(digits32(), overrides)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _assert_same_state(a: dict, b: dict):
    for key in ("G", "D", "G_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        for pid, st in a[key]["state"].items():
            for name, tensor in st.items():
                assert torch.equal(torch.as_tensor(tensor), torch.as_tensor(b[key]["state"][pid][name])), f"{key} {pid} {name}"


def test_run_writes_contract_files(tmp_path):
    cfg = tiny(tmp_path, "plain")
    result = train(cfg, LocalContext(cfg.run_dir), real_batches_fn=synthetic_batches())
    assert result.iteration == 6 and not result.collapsed
    run = cfg.run_dir
    assert json.loads((run / "options.json").read_text())["name"] == "plain"
    records = read_stats(run / "stats.jsonl")
    assert [r["iteration"] for r in records] == [2, 3, 4, 6]  # log ticks + checkpoint ticks
    for key in ("loss/D_real", "loss/D_fake", "loss/G", "D_out/real", "D_out/fake", "grad_norm/G",
                "grad_norm/D", "images_per_s"):
        assert key in records[-1]
    assert any(k.startswith("sv/G/") and k.endswith("/2") for k in records[-1])
    assert any(k.startswith("sv/D/") for k in records[-1])
    assert [c.iteration for c in ckpt.list_checkpoints(run)] == [3, 6]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["iter_00000006.png"]
    assert ckpt.checkpoint_to_evaluate(run).name == "checkpoint_00000006"
    state = ckpt.load_state(run / "checkpoint_00000006")
    assert set(ckpt.REQUIRED_KEYS) <= set(state)
    G, cfg_back, iteration = ckpt.load_generator(run / "checkpoint_00000006")
    assert iteration == 6 and cfg_back.name == "plain" and not G.training


def test_killed_and_resumed_run_matches_uninterrupted(tmp_path):
    straight = tiny(tmp_path, "straight")
    train(straight, LocalContext(straight.run_dir), real_batches_fn=synthetic_batches())

    broken = tiny(tmp_path, "broken")
    # 3 iterations x (2 D steps) = 6 batches reach the checkpoint at 3; die two steps later.
    with pytest.raises(Killed):
        train(broken, LocalContext(broken.run_dir), real_batches_fn=synthetic_batches(kill_after=9))
    assert [c.iteration for c in ckpt.list_checkpoints(broken.run_dir)] == [3]
    train(broken, LocalContext(broken.run_dir), real_batches_fn=synthetic_batches())

    _assert_same_state(ckpt.load_state(straight.run_dir / "checkpoint_00000006"),
                       ckpt.load_state(broken.run_dir / "checkpoint_00000006"))
    assert [r["iteration"] for r in read_stats(broken.run_dir / "stats.jsonl")] == [2, 3, 4, 6]


def test_nan_stops_cleanly_and_marks_checkpoint_before(tmp_path):
    cfg = tiny(tmp_path, "nan", **{"train.iterations": 12, "train.log_every": 3})

    def poisoned(cfg, micro_batch, rank, world, seed):
        g = torch.Generator().manual_seed(seed)
        n = 0
        while True:
            n += 1
            x = torch.rand(micro_batch, 3, 32, 32, generator=g) * 2 - 1
            if seed % 1000 == 6 and n > 2:  # the segment after the checkpoint at 6 goes bad
                x = x * float("nan")
            yield x, torch.randint(10, (micro_batch,), generator=g)

    result = train(cfg, LocalContext(cfg.run_dir), real_batches_fn=poisoned)
    assert result.collapsed and result.iteration == 9
    marked = json.loads((cfg.run_dir / "evaluate.json").read_text())
    assert marked["checkpoint"] == "checkpoint_00000006"
    assert ckpt.checkpoint_to_evaluate(cfg.run_dir).name == "checkpoint_00000006"


def test_batch_not_divisible_is_a_clear_error(tmp_path):
    cfg = tiny(tmp_path, "bad", **{"train.batch_size": 9, "train.accumulation": 2})
    with pytest.raises(ValueError, match="not divisible"):
        train(cfg, LocalContext(cfg.run_dir), real_batches_fn=synthetic_batches())


def test_accumulation_and_channels_last_run(tmp_path):
    """2 micro-batches per step per worker (global batch 8 = 1 worker x 2 x 4), channels_last on."""
    seen = []

    def recording(cfg, micro_batch, rank, world, seed):
        seen.append(micro_batch)
        return synthetic_batches()(cfg, micro_batch, rank, world, seed)

    cfg = tiny(tmp_path, "accum", **{"train.accumulation": 2, "train.channels_last": True, "train.iterations": 2,
                                     "train.checkpoint_every": 2, "train.log_every": 1})
    result = train(cfg, LocalContext(cfg.run_dir), real_batches_fn=recording)
    assert seen[0] == 4 and result.iteration == 2
    assert all(torch.isfinite(torch.tensor(v)) for k, v in result.metrics.items() if k.startswith("loss/"))
