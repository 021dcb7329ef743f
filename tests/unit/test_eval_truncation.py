"""Truncation curve: Table 2 operating points math and the files of a real (tiny) sweep."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from biggan.eval.truncation import operating_points

ROWS = [
    {"threshold": 2.0, "IS": 5.0, "FID": 12.0},
    {"threshold": 1.0, "IS": 7.0, "FID": 9.0},
    {"threshold": 0.5, "IS": 9.0, "FID": 10.0},
    {"threshold": 0.04, "IS": 10.0, "FID": 20.0},
]


def test_operating_points_interpolate_the_is_match():
    points = operating_points(ROWS, val_is=8.0)
    assert points["best_fid"] == {"threshold": 1.0, "IS": 7.0, "FID": 9.0}
    assert points["max_is"] == {"threshold": 0.04, "IS": 10.0, "FID": 20.0}
    match = points["is_matches_val"]
    assert match["method"] == "interpolated"
    assert match["threshold"] == pytest.approx(0.75) and match["FID"] == pytest.approx(9.5)
    assert match["IS"] == 8.0


def test_best_fid_is_chosen_among_every_point_the_untruncated_one_included():
    rows = [{"threshold": None, "IS": 4.0, "FID": 8.0}, *ROWS]
    points = operating_points(rows, val_is=4.5)
    assert points["best_fid"] == {"threshold": None, "IS": 4.0, "FID": 8.0}
    # Between the untruncated point and threshold 2.0 no threshold can be interpolated: the nearest.
    assert points["is_matches_val"] == {"threshold": None, "IS": 4.0, "FID": 8.0, "method": "nearest"}
    assert operating_points(rows, val_is=8.0)["is_matches_val"]["method"] == "interpolated"


def test_operating_points_nearest_when_real_is_is_out_of_reach():
    match = operating_points(ROWS, val_is=30.0)["is_matches_val"]
    assert match == {"threshold": 0.04, "IS": 10.0, "FID": 20.0, "method": "nearest"}
    assert operating_points(ROWS, val_is=None)["is_matches_val"] is None


def test_truncation_curve_writes_consistent_files(digits_shards, tmp_path):
    from biggan.eval.session import open_session
    from biggan.eval.truncation import truncation_curve
    from biggan.runs import RunStore
    from tests.unit._eval_fixtures import save_tiny_checkpoint, tiny_config

    torch.set_num_threads(1)
    cfg = tiny_config(tmp_path / "runs", digits_shards)
    save_tiny_checkpoint(cfg, 7)
    session = open_session(RunStore(cfg.run_uri))
    out_dir = session.store.file("truncation")
    out = truncation_curve(session, out_dir, val_is=1.5, num_samples=30, grid_per_class=2)

    folder = tmp_path / "runs" / "tiny" / "truncation"
    table = json.loads((folder / "curve.json").read_text())
    with open(folder / "curve.csv") as handle:
        csv_rows = list(csv.DictReader(handle))
    # The untruncated sampler first (Table 2's best FID may sit there), then the thresholds.
    assert [r["threshold"] for r in table] == [None, 1.0, 0.5]
    assert [r["threshold"] for r in csv_rows] == ["none", "1", "0.5"]
    assert [float(r["FID"]) for r in csv_rows] == pytest.approx([r["FID"] for r in table])
    for name in ("curve.png", "grid_tnone.png", "grid_t1.png", "grid_t0.5.png", "operating_points.json"):
        assert (folder / name).stat().st_size > 0
    points = json.loads((folder / "operating_points.json").read_text())
    assert points["best_fid"]["FID"] == min(r["FID"] for r in table)
    assert points["max_is"]["IS"] == max(r["IS"] for r in table)
    assert points["is_matches_val"] is not None
    assert points == out["operating_points"]
    # Standing statistics follow the threshold: the last prepared G is at 0.5.
    assert session._G_truncation == 0.5
