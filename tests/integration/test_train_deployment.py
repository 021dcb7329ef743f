"""The cluster path, for real, on one `prefect server start` on a free loopback port:

1. `prefect deploy --all` of prefect.yaml on the fresh server exits 0 and creates every
   deployment under the name `prefect deployment run` takes, evaluate-biggan's trigger included.
2. `prefect deployment run train-biggan/digits32 --watch` through a process worker: the flow run
   starts its own local Ray and trains 2 gloo workers for a few iterations; the checkpoint it
   writes emits `biggan.checkpoint.saved`, and the trigger runs `evaluate-biggan` on that run.
3. After a short `pipeline/digits32-demo` run, headless Chromium opens the server's UI and finds
   the sample sheet rendered inside an artifact and the training progress artifact at 100%.

Tests run in file order on the module's server (2 needs the deployments of 1).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.browser import CHROMIUM, headless_page, rendered_data_images
from tests.support.prefect_server import PrefectServer
from tests.support.sockets import free_port

REPO = Path(__file__).resolve().parents[2]
POOL = "biggan-process"
DEPLOYMENTS = ["evaluate-biggan/new-checkpoints", "pipeline/digits32-demo", "shard-dataset/digits32-train",
               "shard-dataset/digits32-val", "study-biggan/digits32-batch", "train-biggan/digits32",
               "train-biggan/imagenet128"]
EVALUATE = "evaluate-biggan/new-checkpoints"
TINY_EVAL = {"eval.num_samples": 30, "eval.batch_size": 15, "eval.classifier_epochs": 1, "eval.standing_passes": 1,
             "eval.standing_batch": 8, "eval.thresholds": [1.0, 0.5], "eval.nn_backbone": "pixel",
             "eval.nn_queries_per_class": 2, "eval.nn_neighbours": 3, "eval.d_accuracy_samples": 40}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Server + process pool + `prefect deploy --all` (its result kept for the test) + worker."""
    logs = tmp_path_factory.mktemp("prefect-server")
    url = f"http://127.0.0.1:{free_port()}"
    env = dict(os.environ)
    env.update({
        "PREFECT_HOME": str(logs / "prefect-home"),
        "PREFECT_API_URL": f"{url}/api",  # also where the UI served by this server finds its API
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "BIGGAN_HOME": str(REPO),  # prefect.yaml's pull step: where the worker runs flows from
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]),
    })
    env.pop("RAY_ADDRESS", None)
    prefect = PrefectServer(url=url, env=env, cwd=REPO, logs=logs)
    try:
        prefect.start()
        prefect.cli("work-pool", "create", POOL, "--type", "process")
        prefect.deployed = prefect.cli("--no-prompt", "deploy", "--all", check=False)
        if prefect.deployed.returncode == 0:
            # The schedule evaluates the newest run of $BIGGAN_HOME/runs every 30 minutes: not in a test.
            for schedule in prefect.get(f"/deployments/name/{EVALUATE}")["schedules"]:
                prefect.cli("deployment", "schedule", "pause", EVALUATE, schedule["id"])
        prefect.start_worker(POOL)
        yield prefect
    finally:
        prefect.stop()


@pytest.mark.slow
def test_deploy_all_exits_0_on_a_fresh_server(server):
    import fastapi

    out = server.deployed.stdout + server.deployed.stderr
    assert server.deployed.returncode == 0, (
        f"`prefect deploy --all` failed (fastapi {fastapi.__version__}; >= 0.151 answers prefect 3.8.8's "
        f"workers/filter hint with 422: pip install -e '.[test]' pins it):\n{out}")
    assert "workers/filter" not in out
    for name in DEPLOYMENTS:  # the names `prefect deployment run` takes are the ones deploy printed
        assert f"prefect deployment run '{name}'" in out
    # `prefect deploy --name` takes the same flow/deployment name as `prefect deployment run`.
    again = server.cli("--no-prompt", "deploy", "--name", "train-biggan/digits32")
    assert "Deployment 'train-biggan/digits32' successfully" in again.stdout
    for name in DEPLOYMENTS:  # biggan's log records reach every flow run's Prefect log
        env = server.get(f"/deployments/name/{name}")["job_variables"]["env"]
        assert env["PREFECT_LOGGING_EXTRA_LOGGERS"] == "biggan", name
    deployment = server.get(f"/deployments/name/{EVALUATE}")
    assert deployment["global_concurrency_limit"]["limit"] == 1
    assert [s["schedule"]["interval"] for s in deployment["schedules"]] == [1800.0]
    automations = server.post("/automations/filter", {})
    triggers = [a["trigger"] for a in automations if a["actions"][0].get("deployment_id") == deployment["id"]]
    assert [t["expect"] for t in triggers] == [["biggan.checkpoint.saved"]]


@pytest.mark.slow
def test_train_deployment_checkpoint_triggers_evaluation(server, digits_shards, tmp_path):
    run_root = tmp_path / "runs"
    params = {
        "preset": "digits32",
        "shards": str(digits_shards["train"]),
        "num_workers": 2,
        "overrides": {"run_root": str(run_root), "name": "deployed", "train.iterations": 2,
                      "train.batch_size": 8, "train.log_every": 1, "train.checkpoint_every": 2,
                      "model.ch": 8, "train.standing_stats_batches": 1, "data.shuffle_buffer": 50, **TINY_EVAL},
    }
    done = server.cli("deployment", "run", "train-biggan/digits32", "--params", json.dumps(params),
                      "--watch", "--watch-timeout", "420", timeout=480)
    assert "Completed" in done.stdout + done.stderr, done.stdout + done.stderr
    run_dir = (run_root / "deployed").resolve()
    assert (run_dir / "checkpoint_00000002" / "state.pt").is_file()
    assert json.loads((run_dir / "evaluate.json").read_text())["checkpoint"] == "checkpoint_00000002"
    assert len((run_dir / "stats.jsonl").read_text().splitlines()) == 2
    log = server.log("worker")
    assert "Ray dashboard: http://127.0.0.1" in log
    assert "iteration 2/2: D " in log  # the losses, in the flow run's log
    train_run = server.flow_runs("train-biggan/digits32")[0]
    assert train_run["name"] == "train-deployed" and "run:deployed" in train_run["tags"]
    # The library's own records (biggan.* loggers) are in the flow run's log on the server.
    records = server.post("/logs/filter", {"logs": {"flow_run_id": {"any_": [train_run["id"]]}}, "limit": 200})
    assert any(r["name"].startswith("biggan") and "Ray dashboard" in r["message"] for r in records), \
        sorted({r["name"] for r in records})

    # The checkpoint's event ran the evaluate-biggan deployment on this run, to the end.
    def triggered():
        runs = [r for r in server.flow_runs(EVALUATE) if Path(r["parameters"].get("run", "")) == run_dir]
        return runs if runs and all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED") for r in runs) else None

    runs = server.wait_for(triggered, timeout=360, what="an evaluate-biggan run triggered by the checkpoint")
    assert [r["state_type"] for r in runs] == ["COMPLETED"], runs
    assert runs[0]["name"] == "evaluate-deployed"
    scored = [json.loads(line)["checkpoint"] for line in (run_dir / "metric-fid.jsonl").read_text().splitlines()]
    assert scored == ["checkpoint_00000002"]


@pytest.mark.slow
def test_prefect_ui_shows_a_pipeline_run_in_chromium(server, tmp_path):
    if CHROMIUM is None:
        pytest.fail("no `chromium` on PATH: run .ci/run (it installs it) or apt-get install -y chromium")
    # Its checkpoints would queue evaluations beside the pipeline's own: the trigger is proven above.
    for automation in server.post("/automations/filter", {}):
        server.cli("automation", "pause", "--id", automation["id"])
    params = {
        "preset": "digits32", "demo_data": str(tmp_path / "demo"), "shards": str(tmp_path / "shards"),
        "num_workers": 0, "samples_per_shard": 200, "class_agreement": True, "name": "ui-pipeline",
        "store": str(tmp_path / "runs"),
        "overrides": {"model.ch": 8, "model.dim_z": 16, "model.shared_dim": 8, "train.iterations": 4,
                      "train.batch_size": 16, "train.checkpoint_every": 2, "train.log_every": 1,
                      "train.ema_start": 0, "train.standing_stats_batches": 2, **TINY_EVAL},
    }
    done = server.cli("deployment", "run", "pipeline/digits32-demo", "--params", json.dumps(params),
                      "--watch", "--watch-timeout", "540", timeout=600)
    assert "Completed" in done.stdout + done.stderr, done.stdout + done.stderr
    _assert_graph_edges(server, server.flow_runs("pipeline/digits32-demo")[0])
    for key in ("quality-ui-pipeline", "pipeline-ui-pipeline", "shards-train-shards", "shards-val-shards"):
        assert server.latest_artifact(key) is not None, key

    sheet, progress = server.latest_artifact("samples-ui-pipeline"), server.latest_artifact("training-ui-pipeline")
    with headless_page() as page:
        page.goto(f"{server.url}/artifacts/artifact/{sheet['latest_id']}")
        page.wait_for_selector('img[src^="data:image/png;base64,"]', timeout=60_000)
        page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
        images = rendered_data_images(page)
        assert images and all(i["width"] > 0 and i["height"] > 0 for i in images), images
        assert "Samples of ui-pipeline at iteration 4" in page.inner_text("body")

        page.goto(f"{server.url}/artifacts/artifact/{progress['latest_id']}")
        page.get_by_text("Progress: 100%").wait_for(timeout=60_000)
        assert "iteration 4/4" in page.inner_text("body")


def _assert_graph_edges(server: PrefectServer, pipeline_run: dict) -> None:
    """Shard subflows -> train subflow -> evaluation tasks, as task inputs (the run graph's edges)."""
    assert pipeline_run["name"] == "pipeline-ui-pipeline" and pipeline_run["state_type"] == "COMPLETED"
    nodes = {t["name"]: t for t in server.task_runs(pipeline_run["id"])}

    def upstream(name: str) -> set[str]:
        node = next(t for n, t in nodes.items() if n.startswith(name))
        ids = {i["id"] for inputs in node["task_inputs"].values() for i in inputs if i.get("id")}
        return {n for n, t in nodes.items() if t["id"] in ids}

    shards = {n for n in nodes if n.startswith("shard-dataset")}
    assert len(shards) == 2 and upstream("train-biggan") == shards
    for node in ("evaluate_pending_task", "truncation_curve_task", "memorization_task", "quality_check_task"):
        assert any(n.startswith("train-biggan") for n in upstream(node)), (node, upstream(node))
