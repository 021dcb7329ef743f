"""Eval commands: bad overrides fail before any flow starts; the demo summary names every output."""

from __future__ import annotations

from click.testing import CliRunner

from biggan.cli import main
from biggan.cli.pipeline import format_summary


def test_unknown_eval_key_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["evaluate", "--run", str(tmp_path), "--set", "bogus=1"])
    assert result.exit_code == 2 and "bogus" in result.output


def test_bad_eval_value_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["truncation-curve", "--run", str(tmp_path), "--set", "thresholds=[0, 1]"])
    assert result.exit_code == 2 and "threshold" in result.output


def test_demo_summary_lists_numbers_and_paths():
    point = {"threshold": 1.0, "IS": 2.0, "FID": 10.0}
    text = format_summary({
        "run": "/r", "checkpoint": "/r/checkpoint_00000040", "metrics": {"IS": 2.5, "FID": 12.0},
        "operating_points": {"best_fid": point, "max_is": point, "val_is": 3.0,
                             "is_matches_val": {**point, "method": "nearest"}},
        "d_accuracy": {"train": 0.9, "val": 0.6}, "copying_flag": False,
        "sample_sheets": ["/r/samples/a.png"], "truncation_plot": "/r/truncation/curve.png",
        "nn_grids": ["/r/memorization/nn_pixel.png"], "metrics_history": "/r/metric-fid.jsonl",
        "metrics_plot": "/r/metrics_history.png",
    })
    for needle in ("/r", "checkpoint_00000040", "12.000", "curve.png", "nn_pixel.png", "metric-fid.jsonl",
                   "train 0.900 / val 0.600"):
        assert needle in text


def test_demo_summary_judges_the_bar_including_wall_time():
    point = {"threshold": 1.0, "IS": 2.0, "FID": 10.0}
    summary = {
        "run": "/r", "checkpoint": "/r/checkpoint_00000040", "metrics": {"IS": 2.5, "FID": 12.0},
        "operating_points": {"best_fid": point, "max_is": point, "val_is": 3.0},
        "d_accuracy": {"train": 0.9, "val": 0.6}, "copying_flag": False, "sample_sheets": [],
        "truncation_plot": "t.png", "nn_grids": [], "metrics_history": "metric-fid.jsonl", "metrics_plot": "h.png",
        "quality": {"agreement": {"mean": 0.95, "min": 0.8, "truncation": 1.0, "judge_val_accuracy": 0.98},
                    "agreement_untruncated": {"mean": 0.93, "min": 0.7, "truncation": None},
                    "fid_untrained": 600.0, "fid_final": 10.0, "fid_drop": 60.0,
                    "passes": {"mean_agreement": True, "min_class_agreement": True, "fid_drop": True}},
    }
    text = format_summary({**summary, "wall_s": 600.0})
    assert "demo bar           met (all criteria pass)" in text and "untruncated        0.930 mean" in text
    slow = format_summary({**summary, "wall_s": 1000.0})
    assert "16.7 min" in slow and "NOT met (wall_time)" in slow
    assert "NOT met (no_copying)" in format_summary({**summary, "copying_flag": True})
