"""Presets agree with the paper rows `biggan params` reproduces: Table 1's ablations are arguments
of `imagenet128`, and each gives the architecture of its row (latent size included)."""

from __future__ import annotations

import pytest

from biggan.models.params import TABLE1, count_parameters
from biggan.presets import imagenet128


@pytest.mark.parametrize("row", TABLE1, ids=[row.label for row in TABLE1])
def test_imagenet128_ablations_are_table1s_rows(row):
    preset = imagenet128(ch=row.config.ch, shared=row.config.shared, hier=row.config.hier).model
    model = preset.model_copy(update={"num_classes": 1000})
    for key in ("resolution", "ch", "dim_z", "shared", "hier"):
        assert getattr(model, key) == getattr(row.config, key), key
    assert count_parameters(model).paper_total / 1e6 == pytest.approx(row.paper_millions, abs=0.05)
