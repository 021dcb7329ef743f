"""Checkpoint directory contract: atomic save, weights_only load, listing, pruning, marking."""

from __future__ import annotations

import torch

from biggan.train import checkpoint as ckpt


def _state(iteration: int) -> dict:
    lin = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(lin.parameters())
    return {"G": lin.state_dict(), "D": lin.state_dict(), "G_ema": lin.state_dict(),
            "opt_G": opt.state_dict(), "opt_D": opt.state_dict(), "iteration": iteration,
            "rng": {"torch": torch.get_rng_state()}, "data": {"iteration": iteration},
            "config": {"name": "x"}}


def test_save_load_roundtrip_and_listing(tmp_path):
    for it in (20, 10, 30):
        ckpt.save_checkpoint(tmp_path / ckpt.checkpoint_name(it), _state(it), {"d_loss": float(it)})
    (tmp_path / ".checkpoint_00000040.tmp").mkdir()  # a half-written save is not listed
    infos = ckpt.list_checkpoints(tmp_path)
    assert [i.iteration for i in infos] == [10, 20, 30]
    state = ckpt.load_state(infos[1].path)
    assert state["iteration"] == 20
    assert infos[1].metrics == {"d_loss": 20.0}
    assert ckpt.checkpoint_to_evaluate(tmp_path) == infos[-1].path


def test_missing_keys_is_a_clear_error(tmp_path):
    bad = _state(1)
    del bad["opt_D"]
    try:
        ckpt.save_checkpoint(tmp_path / "checkpoint_00000001", bad)
    except ValueError as err:
        assert "opt_D" in str(err)
    else:
        raise AssertionError("expected ValueError")
    assert ckpt.list_checkpoints(tmp_path) == []
    assert [p.name for p in tmp_path.iterdir()] == []  # scratch folder cleaned up


def test_prune_keeps_last_and_best_and_marked(tmp_path):
    losses = {1: 5.0, 2: 0.5, 3: 4.0, 4: 3.0, 5: 2.0, 6: 9.0}
    for it, loss in losses.items():
        ckpt.save_checkpoint(tmp_path / ckpt.checkpoint_name(it), _state(it), {"score": loss})
    marked = tmp_path / ckpt.checkpoint_name(3)
    ckpt.prune_checkpoints(tmp_path, keep_last=2, best_metric="score", mode="min", protect=(marked,))
    assert [i.iteration for i in ckpt.list_checkpoints(tmp_path)] == [2, 3, 5, 6]


def test_evaluate_marker_wins_over_latest(tmp_path):
    for it in (1, 2, 3):
        ckpt.save_checkpoint(tmp_path / ckpt.checkpoint_name(it), _state(it))
    ckpt.mark_for_evaluation(tmp_path, tmp_path / ckpt.checkpoint_name(2), "collapse at 3")
    assert ckpt.checkpoint_to_evaluate(tmp_path).name == ckpt.checkpoint_name(2)
