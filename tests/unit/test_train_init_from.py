"""`biggan train --init-from`: a new run from another run's weights (biggan.experiment resolves it,
biggan.train.state applies it on the first start only)."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from biggan.cli import main
from biggan.config import ConfigError, ExperimentConfig
from biggan.experiment import resolve_experiment
from biggan.models import build_models
from biggan.runs import RunStore
from biggan.runs.store import INIT_FILE
from biggan.train.launcher import launch_training
from tests.unit._eval_fixtures import tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def source_run(store, shards, classes=7, name="src", **model) -> dict:
    """A finished run of `classes` classes whose optimizers hold real Adam moments; its state."""
    cfg = tiny_config(store, shards).model_copy(update={"name": name})
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"num_classes": classes, "sn_tracked_svs": 1,
                                                                       **model})})
    torch.manual_seed(11)
    G, D = build_models(cfg.model)
    G_ema, _ = build_models(cfg.model)
    opts = {"G": torch.optim.Adam(G.parameters(), lr=0.0), "D": torch.optim.Adam(D.parameters(), lr=0.0)}
    y = torch.arange(2) % classes
    D(G(torch.randn(2, G.dim_z), y), y).sum().backward()
    for opt in opts.values():
        opt.step()  # lr 0: moments filled, weights unchanged
    state = {"G": G.state_dict(), "D": D.state_dict(), "G_ema": G_ema.state_dict(), "iteration": 40,
             "opt_G": opts["G"].state_dict(), "opt_D": opts["D"].state_dict(), "rng": {}, "data": {},
             "config": cfg.model_dump(mode="json")}
    run = RunStore(cfg.run_uri)
    run.write_options(cfg.model_dump(mode="json"))
    run.mark_for_evaluation(run.save_checkpoint(state, {}), "finished")
    return state


TINY = {"train.iterations": 1, "train.batch_size": 8, "train.checkpoint_every": 1, "train.log_every": 1,
        "train.sample_every": 100, "train.standing_stats_batches": 1, "train.g_lr": 1e-12, "train.d_lr": 1e-12}


def test_resolution_takes_the_source_architecture_and_the_shards_classes(tmp_path, digits_shards):
    store = str(tmp_path / "runs")
    source_run(store, digits_shards, classes=7)
    cfg = resolve_experiment("digits32", {}, str(digits_shards["train"]), 0, store=store, init_from="src")
    src = ExperimentConfig.model_validate(RunStore(f"{store}/src").read_options())
    assert cfg.model == src.model.model_copy(update={"num_classes": 10})  # 10: the digits' dataset.json
    assert cfg.model.sn_tracked_svs == 1 and cfg.model.dim_z == 16  # the source's, not digits32's 3 and 64
    assert cfg.train.init_from == f"{store}/src/checkpoint_00000040"  # resolved to one checkpoint
    assert cfg.name == "00000-digits32"

    with pytest.raises(ConfigError, match=r"^model.dim_z is 64 \(set\) but the source run .*/src has 16: "):
        resolve_experiment("digits32", {"model.dim_z": 64}, str(digits_shards["train"]), store=store, init_from="src")
    with pytest.raises(ConfigError, match=r"^train.init_from: no run at .*/nope"):
        resolve_experiment("digits32", {}, str(digits_shards["train"]), store=store, init_from="nope")
    with pytest.raises(ConfigError, match="drop one of init_from and resume"):
        resolve_experiment(resume="src", store=store, init_from="src")
    source_run(store, digits_shards, name="big", resolution=64)
    with pytest.raises(ConfigError, match=r"makes 64 px images but the shard set .* has 32 px ones"):
        resolve_experiment("digits32", {}, str(digits_shards["train"]), store=store, init_from="big")
    (tmp_path / "runs" / "src" / "checkpoint_00000040" / "state.pt").write_bytes(b"cut")
    with pytest.raises(ConfigError, match=r"^train.init_from: .*checkpoint_00000040/state.pt is cut short "
                                          r"\(3 of \d+ bytes\): the checkpoint marked for evaluation "
                                          r"is damaged; name one of the run's checkpoint folders"):
        resolve_experiment("digits32", {}, str(digits_shards["train"]), store=store, init_from="src")

    dry = CliRunner().invoke(main, ["train", "--init-from", f"{store}/big/checkpoint_00000040", "--store", store,
                                    "--shards", str(digits_shards["train"]), "--dry-run"])
    assert dry.exit_code == 2 and "makes 64 px images" in dry.output and "Traceback" not in dry.output


def test_a_new_run_starts_from_the_source_and_redraws_only_the_class_embeddings(tmp_path, digits_shards, caplog):
    store = str(tmp_path / "runs")
    source = source_run(store, digits_shards, classes=7)
    cfg = resolve_experiment("digits32", TINY, str(digits_shards["train"]), 0, store=store, init_from="src",
                             name="tuned")
    launch_training(cfg)  # in-process (0 workers): one G step at lr 1e-12
    lines = [r.getMessage() for r in caplog.records if "started from" in r.getMessage()]  # the biggan.train log
    assert lines == [f"started from {store}/src/checkpoint_00000040 (iteration 40): class count 7 -> 10: "
                     "re-initialised the class embeddings only (G: shared.weight; D: embed.weight; G_ema: "
                     "shared.weight); every other weight comes from the source run"]
    run = RunStore(cfg.run_uri)
    record = json.loads(run.file(INIT_FILE).read_text())
    assert record["reinitialised"] == {"G": ["shared.weight"], "D": ["embed.weight"], "G_ema": ["shared.weight"]}

    state = run.load_state(run.checkpoint("1"))
    assert state["iteration"] == 1  # counted from 0, not from the source's 40
    redrawn = {"shared.weight", "embed.weight"}
    G, D = build_models(cfg.model)
    for net, model in (("G", G), ("D", D)):
        for key, _ in model.named_parameters():
            old, new = source[net][key], state[net][key]
            if key in redrawn:
                assert old.shape[0] == 7 and new.shape[0] == 10
            else:  # one step at lr 1e-12 moves nothing visibly; a fresh init would differ everywhere
                assert torch.allclose(new, old, rtol=0, atol=1e-9), (net, key)
    # Fresh optimizers: one G step and two D steps, not the source's moments plus these.
    assert {entry["step"].item() for entry in state["opt_G"]["state"].values()} == {1.0}
    assert {entry["step"].item() for entry in state["opt_D"]["state"].values()} == {2.0}

    # Resuming the new run resumes its own checkpoint; the source is not applied again.
    resumed = resolve_experiment(overrides={"train.iterations": 2}, resume="tuned", store=store)
    caplog.clear()
    launch_training(resumed)
    out = caplog.text
    assert "started from" not in out and f"resumed {cfg.run_uri} from" in out
