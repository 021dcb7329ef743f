"""The independent judge and the class-agreement measure of the demo's bar (and the quality check)."""

from __future__ import annotations

import json

import torch
from torch import nn

from biggan.data.loader import eval_loader
from biggan.eval.agreement import class_agreement, quality_check, train_judge, write_quality
from biggan.runs import RunStore
from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config


class ClassImageGenerator(nn.Module):
    """Returns a real held-out image of class `table[y]` for every draw: a known answer."""

    def __init__(self, images_by_class: torch.Tensor, table: list[int]):
        super().__init__()
        self.dim_z = 4
        self.register_buffer("images", images_by_class)
        self.register_buffer("table", torch.tensor(table))
        self.anchor = nn.Parameter(torch.zeros(()))  # so the device can be read off a parameter

    def forward(self, z, y):
        return self.images[self.table[y]]


def _one_val_image_per_class(val_shards) -> torch.Tensor:
    found: dict[int, torch.Tensor] = {}
    for images, labels, _ in eval_loader(val_shards, batch_size=64):
        for img, label in zip(images, labels.tolist()):
            found.setdefault(label, img)
    return torch.stack([found[c] for c in range(10)])


def test_judge_is_accurate_on_held_out_digits(digits_shards):
    judge = train_judge(digits_shards["train"], digits_shards["val"])
    assert judge.val_accuracy is not None and judge.val_accuracy > 0.9


def test_agreement_is_high_for_a_class_correct_generator_and_zero_for_a_shuffled_one(digits_shards):
    judge = train_judge(digits_shards["train"])
    images = _one_val_image_per_class(digits_shards["val"])
    correct = class_agreement(ClassImageGenerator(images, list(range(10))), judge, 10, per_class=5)
    shifted = class_agreement(ClassImageGenerator(images, [(c + 1) % 10 for c in range(10)]), judge, 10, per_class=5)
    assert correct["mean"] >= 0.8 and len(correct["per_class"]) == 10
    # Every class conditioned on c shows a c+1 digit: the judge must disagree almost always.
    assert shifted["mean"] <= 0.2
    assert correct["chance"] == 0.1


def test_quality_check_reports_fid_drop_and_agreement(digits_shards, tmp_path):
    cfg = tiny_config(tmp_path, digits_shards)
    save_tiny_checkpoint(cfg, iteration=5, seed=1)
    store = RunStore(cfg.run_uri)
    result = quality_check(store, None, classifier=None, per_class=4)
    assert set(result["passes"]) == {"mean_agreement", "min_class_agreement", "fid_drop"}
    assert result["agreement"]["truncation"] == 1.0 and result["agreement_untruncated"]["truncation"] is None
    assert len(result["agreement_untruncated"]["per_class"]) == 10
    assert result["fid_untrained"] > 0 and result["fid_final"] > 0
    assert abs(result["fid_drop"] - result["fid_untrained"] / result["fid_final"]) < 1e-9
    # A random generator is nowhere near the bar.
    assert result["passes"]["mean_agreement"] is False
    path = write_quality(store, result)
    assert json.loads(path.read_text())["iteration"] == 5
