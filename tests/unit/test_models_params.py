"""Parameter counts: the paper's Table 1 is the external check (within 0.1 M)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from biggan.models.params import TABLE1, TABLE3, comparison, count_parameters


@pytest.mark.parametrize("row", TABLE1, ids=[r.label for r in TABLE1])
def test_table1_within_a_tenth_of_a_million(row):
    ours = count_parameters(row.config).paper_total / 1e6
    assert abs(ours - row.paper_millions) < 0.1, f"{row.label}: ours {ours:.3f} M vs paper {row.paper_millions} M"


def test_shared_embedding_is_what_is_left_out():
    count = count_parameters(TABLE1[0].config)
    assert count.shared_embedding == 1000 * 128
    assert count.paper_total == count.generator + count.discriminator - 128_000


def test_table3_figures_are_reported():
    rows = comparison(TABLE3)
    assert [r["paper_M"] for r in rows] == [317.1, 99.4, 207.9, 355.7]
    assert all(r["resolution"] == 256 and r["classes"] == 8500 for r in rows)
    # shared + hier models grow with ch (Table 3's ordering holds for ours too)
    assert rows[1]["ours_M"] < rows[2]["ours_M"] < rows[3]["ours_M"]


def test_params_command_prints_both_tables():
    from biggan.cli import main

    result = CliRunner().invoke(main, ["params", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == len(TABLE1) + 2 * len(TABLE3)  # Table 1, Table 3 literal, Table 3 reading
    assert all(abs(r["diff_M"]) < 0.1 for r in rows if r["table"] == "Table 1")
    table = CliRunner().invoke(main, ["params", "--table", "1"])
    assert table.exit_code == 0 and "158.3" in table.output and "Table 3" not in table.output


def _params(*args: str) -> dict:
    from biggan.cli import main

    result = CliRunner().invoke(main, ["params", "--preset", "digits32", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_params_command_for_a_preset_counts_the_networks_the_overrides_build():
    """The figures are those of the G and D the preset builds with the --set overrides applied
    (counted here on real networks), for ImageNet's 1000 classes unless --set says otherwise."""
    from biggan.config import apply_overrides
    from biggan.models import build_models
    from biggan.presets import digits32

    for sets, classes in (((), 1000), (("model.ch=16",), 1000), (("model.ch=16", "model.num_classes=10"), 10)):
        shown = _params(*(arg for key in sets for arg in ("--set", key)))
        overrides = dict(key.split("=") for key in sets)
        cfg = apply_overrides(digits32(), {"model.num_classes": 1000, **overrides}).model
        G, D = build_models(cfg)
        g, d = sum(p.numel() for p in G.parameters()), sum(p.numel() for p in D.parameters())
        assert shown == {"preset": "digits32", "num_classes": classes, "G": g, "D": d,
                         "shared_embedding": classes * 32,  # digits32's shared_dim
                         "total_without_shared": g + d - classes * 32}, sets
    assert _params("--set", "model.ch=16")["G"] > _params()["G"]  # wider G, more parameters


def test_table3_reading_full_jft_vocabulary_fits_within_a_tenth():
    """Our documented reading of Table 3 (embeddings for 18,291 labels, dim_z 168) fits all rows."""
    from biggan.models.params import TABLE3_FIT

    for row in comparison(TABLE3_FIT):
        assert abs(row["diff_M"]) < 0.1, row
