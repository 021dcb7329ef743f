"""`biggan demo-data` and `biggan shard ...` argument handling (the flow itself: integration tests)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from biggan.cli import main


def test_demo_data_command(tmp_path):
    result = CliRunner().invoke(main, ["demo-data", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["train_images"] + summary["val_images"] == 1797
    assert (tmp_path / "demo" / "imagenet" / "train").is_dir() and (tmp_path / "demo" / "manifest.jsonl").is_file()


def test_shard_commands_validate_before_running(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["shard", "imagenet", "--root", str(tmp_path), "--out", str(tmp_path / "o"),
                               "--resolution", "100"])
    assert bad.exit_code == 2 and "resolution 100 is not supported" in bad.output
    missing = runner.invoke(main, ["shard", "jft", "--manifest", str(tmp_path / "none.jsonl"),
                                   "--out", str(tmp_path / "o"), "--resolution", "32"])
    assert missing.exit_code == 2 and "does not exist" in missing.output
    (tmp_path / "m.jsonl").write_text('{"path": "a.png", "labels": ["x"]}\n')
    dry = runner.invoke(main, ["shard", "jft", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o"),
                               "--resolution", "64", "--top-labels", "5", "--format", "jpg", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    config = json.loads(dry.output)
    assert config["top_labels"] == 5 and config["format"] == "jpg" and config["resolution"] == 64
