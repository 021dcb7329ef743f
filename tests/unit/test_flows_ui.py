"""The Prefect-facing pieces of flows/ without a Prefect server: typed parameters (the UI's form),
the run watcher (progress, losses, checkpoint events, sample sheets) and the artifacts' pictures.
Prefect's artifact and event calls are replaced by recorders; the real ones are exercised by
tests/integration/test_train_deployment.py against a `prefect server start`."""

from __future__ import annotations

import base64
import logging

import pytest

from biggan.runs import RunStore


def test_overrides_form_accepts_dotted_and_nested_keys_and_refuses_typos():
    from biggan_flows.params import ExperimentOverrides, as_eval_overrides, as_overrides

    dotted = as_overrides({"train.iterations": 2, "model.g_attention": None, "name": "x"})
    assert dotted.to_dotted() == {"name": "x", "train.iterations": 2, "model.g_attention": None}
    nested = ExperimentOverrides(train={"iterations": 5, "collapse": {"patience": 3}}, run_root="r")
    assert nested.to_dotted() == {"run_root": "r", "train.iterations": 5, "train.collapse.patience": 3}
    # Prefect stores parameters with every unset field as null: they must read back as "not given".
    assert as_overrides(nested.model_dump(mode="json")).to_dotted() == nested.to_dotted()
    with pytest.raises(ValueError, match="trian"):
        as_overrides({"trian": {"iterations": 1}})
    assert as_eval_overrides({"eval.num_samples": 30, "batch_size": 4}).to_dict() == {"num_samples": 30,
                                                                                      "batch_size": 4}


def test_flow_parameter_schemas_describe_the_config_fields():
    from prefect.utilities.callables import parameter_schema

    from biggan_flows.evaluate import evaluate_biggan
    from biggan_flows.pipeline import pipeline
    from biggan_flows.train import train_biggan

    schema = parameter_schema(train_biggan.fn).model_dump()
    overrides = schema["definitions"]["ExperimentOverrides"]
    assert "additionalProperties" not in overrides  # the server lets dotted keys through
    train = schema["definitions"]["TrainOverrides"]["properties"]["iterations"]
    assert train["description"].startswith("G steps to train for")
    assert schema["properties"]["shards"]["description"].startswith("shard set")
    assert "digits32" in schema["properties"]["preset"]["enum"]  # a list to pick from
    assert "num_samples" in parameter_schema(evaluate_biggan.fn).model_dump()["definitions"]["EvalOverrides"][
        "properties"]
    assert parameter_schema(pipeline.fn).model_dump()["properties"]["source"]["enum"] == ["imagenet", "jft"]


@pytest.fixture
def recorded(monkeypatch):
    """Prefect's artifact and event calls of biggan_flows.watch / biggan_flows.artifacts, recorded."""
    import biggan_flows.artifacts
    import biggan_flows.watch

    calls: dict[str, list] = {"events": [], "progress": [], "markdown": []}
    monkeypatch.setattr(biggan_flows.watch, "emit_event", lambda **kw: calls["events"].append(kw))
    monkeypatch.setattr(biggan_flows.watch, "create_progress_artifact",
                        lambda progress, key, description: calls["progress"].append((key, progress)) or "id")
    monkeypatch.setattr(biggan_flows.watch, "update_progress_artifact",
                        lambda artifact_id, progress, description: calls["progress"].append((artifact_id, progress)))
    monkeypatch.setattr(biggan_flows.artifacts, "create_markdown_artifact",
                        lambda key, markdown, description: calls["markdown"].append((key, markdown)))
    return calls


def _checkpoint(store: RunStore, iteration: int) -> None:
    state = {key: {} for key in ("G", "D", "G_ema", "opt_G", "opt_D", "rng", "data", "config")}
    store.save_checkpoint({**state, "iteration": iteration}, {"loss/G": 1.0})


def test_watcher_publishes_progress_losses_events_and_sheets(tmp_path, recorded, caplog):
    from biggan_flows.watch import CHECKPOINT_EVENT, RunWatcher

    store = RunStore(str(tmp_path / "runs" / "r1"))
    store.write_options({"name": "r1"})
    logger = logging.getLogger("test-watcher")
    watcher = RunWatcher(store.uri, "r1", total=4, logger=logger, poll_s=0.01)
    with caplog.at_level(logging.INFO, logger="test-watcher"), watcher.running():
        for it in (1, 2):
            store.stats.append({"iteration": it, "loss/D": 0.5, "loss/G": 1.5, "images_per_s": 10.0})
        _checkpoint(store, 2)
        sheet = store.sample_sheet(2)
        sheet.parent.makedirs()
        sheet.write_bytes(b"\x89PNG fake")
        for it in (3, 4):
            store.stats.append({"iteration": it, "loss/D": 0.25, "loss/G": 2.0, "images_per_s": 10.0})
        _checkpoint(store, 4)
    assert recorded["progress"][0] == ("training-r1", 0.0) and recorded["progress"][-1] == ("id", 100.0)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("iteration")]
    assert lines[-1] == "iteration 4/4: D 0.2500 (real -, fake -), G 2.0000, 10.0000 img/s"
    assert sorted(int(line.split()[1].split("/")[0]) for line in lines) == [1, 2, 3, 4]  # every tick, once
    assert [e["payload"]["checkpoint"] for e in recorded["events"]] == ["checkpoint_00000002", "checkpoint_00000004"]
    event = recorded["events"][0]
    assert event["event"] == CHECKPOINT_EVENT and event["resource"]["prefect.resource.id"] == "biggan.run.r1"
    assert event["payload"]["run"] == store.uri and event["payload"]["iteration"] == 2
    key, markdown = recorded["markdown"][0]
    encoded = base64.b64encode(b"\x89PNG fake").decode()
    assert key == "samples-r1" and f"data:image/png;base64,{encoded}" in markdown


def test_image_markdown_embeds_small_pngs_and_links_missing_or_huge_ones(tmp_path, monkeypatch):
    import biggan_flows.artifacts
    from biggan_flows.artifacts import image

    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG tiny")
    assert image(str(png), "plot").startswith("![plot](data:image/png;base64,")
    assert "could not be read" in image(str(tmp_path / "missing.png"), "plot")
    monkeypatch.setattr(biggan_flows.artifacts, "MAX_INLINE_BYTES", 4)
    assert "too large to embed" in image(str(png), "plot")
    assert biggan_flows.artifacts.rounded(0.123456789) == 0.1235 and biggan_flows.artifacts.rounded(3) == 3
