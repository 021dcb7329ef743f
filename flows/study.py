"""Prefect flow `study-biggan`: plan a study (every cell checked before any run starts) -> train
its runs as ordinary `train-biggan` flow runs, several at once -> train the dataset classifier
once -> score every run alike -> the table (Prefect table artifact, study.csv, study.md, study.png).

Scheduling: each run is a train-biggan subflow in a thread of this process; each declares its
workers and GPUs to Ray (cluster.*). On a Ray cluster (cluster.ray_address or RAY_ADDRESS) every
run is started at once and Ray places each as its workers' resources free up: Ray 2.60's Train V2
runs concurrent `TorchTrainer.fit` calls from threads of one driver, and a trainer whose placement
group waits past RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S (60 s) is retried as a controller failure,
which FailureConfig's default controller_failure_limit (-1) retries without end. On this machine
without a cluster, at most `max_parallel` runs train at once (default: as many as the cores hold).

Continuing (`resume`, or the same spec again): a run that finished (or that the collapse rule
stopped) is not trained again, one interrupted or failed is resumed from its last checkpoint, a
run already scored with this study's settings is not scored again. A failed run is a row marked
failed, never a failed study.
"""

from __future__ import annotations

import os
from typing import Any

from prefect import flow, get_run_logger, runtime, tags, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from biggan.config import EvalConfig
from biggan.study.plan import (
    StudyPlan,
    default_parallel,
    plan_study,
    read_spec,
    study_exists,
    training_state,
    write_spec,
)
from biggan.study.presets import build_spec
from biggan.study.scoring import clear_failure, is_scored, record_failure, score_run
from biggan.study.spec import StudyError, StudySpec
from biggan.study.table import write_table
from biggan_flows.artifacts import image, rounded, slug
from biggan_flows.evaluate import dataset_classifier_task
from biggan_flows.runners import Placement, place_nodes, run_nodes
from biggan_flows.train import train_biggan_flow


def study_run_name() -> str:
    params = dict(runtime.flow_run.parameters or {})
    spec = params.get("spec")
    name = params.get("resume") or params.get("study_preset") or (
        spec.get("name") if isinstance(spec, dict) else getattr(spec, "name", None))
    return f"study-{name or 'biggan'}"


@task(cache_policy=NO_CACHE, task_run_name="plan-{store}")
def plan_study_task(spec: StudySpec | None, resume: str | None, store: str, study_preset: str | None = None,
                    shards: str | None = None) -> StudyPlan:
    """The study's spec (given, a named study's, or its study.json when continuing), every cell
    validated; study.json written."""
    if spec is None and resume is None and study_preset is not None:
        spec = build_spec(study_preset, study_preset=study_preset, shards=shards)  # named after the study preset
    if spec is None and resume is None:
        raise StudyError("give a study (spec or study_preset) or the name of one to continue (resume)")
    if resume is not None:
        stored = read_spec(store, resume)
        if spec is not None and spec != stored:
            raise StudyError(f"study {resume} was started with another spec; continue it without one")
        spec = stored
    elif study_exists(store, spec.name) and read_spec(store, spec.name) != spec:
        raise StudyError(f"study {spec.name} exists in {store} with another grid: continue it with --resume "
                         f"{spec.name}, or pick another --name")
    plan = plan_study(spec, store)
    write_spec(plan)
    return plan


@task(cache_policy=NO_CACHE, task_run_name="train-{run_name}")
def train_run_task(plan: StudyPlan, run_name: str) -> dict[str, Any]:
    """One run of the study as an ordinary train-biggan flow run (new, or resumed); a failure is
    recorded and returned, not raised."""
    logger = get_run_logger()
    run = next(r for r in plan.runs if r.name == run_name)
    state = training_state(plan, run)
    if state == "trained":
        return {"run": run.name, "outcome": "already trained"}
    spec = plan.spec
    if state == "unfinished":
        logger.info("%s: resuming from its last checkpoint", run.name)
        kwargs: dict[str, Any] = {"resume": run.name}
    else:
        kwargs = {"preset": spec.preset, "overrides": run.overrides, "shards": spec.shards,
                  "num_workers": spec.num_workers, "use_gpu": spec.use_gpu, "name": run.name}
    try:
        trained = train_biggan_flow(store=plan.root, return_state=True, **kwargs)
        trained.result(raise_on_failure=True)
    except Exception as err:  # noqa: BLE001 - a failed run is a row of the table, not a failed study
        logger.error("%s failed: %s", run.name, err)
        record_failure(plan.root, run.name, "train", str(err))
        return {"run": run.name, "outcome": "failed", "error": str(err)}
    clear_failure(plan.root, run.name)
    return {"run": run.name, "outcome": "resumed" if state == "unfinished" else "trained"}


@task(cache_policy=NO_CACHE, task_run_name="score-{run}")
def score_run_task(root: str, run: str, eval_cfg: EvalConfig, classifier: str | None, every_checkpoint: bool,
                   sweep: bool) -> dict[str, Any]:
    """One trained run scored with the study's classifier and settings (biggan.study.scoring)."""
    try:
        outcome = score_run(root, run, eval_cfg, classifier, every_checkpoint, sweep)
    except Exception as err:  # noqa: BLE001 - a run that cannot be scored is a row marked failed
        record_failure(root, run, "score", str(err))
        return {"run": run, "state": "failed", "error": str(err)}
    clear_failure(root, run)
    return outcome


def _cluster_address(plan: StudyPlan) -> str | None:
    return plan.runs[0].config.cluster.ray_address or os.environ.get("RAY_ADDRESS") or None


def _connect_ray(plan: StudyPlan) -> None:
    """One connection before the runs' threads start (each train-biggan run reuses it; two threads
    starting a local Ray at once would collide)."""
    if not any(run.config.cluster.num_workers for run in plan.runs):
        return
    from biggan.train.launcher.cluster import connect_ray

    cfg = plan.runs[0].config
    connect_ray(cfg.cluster, {"job_name": f"biggan-study-{plan.spec.name}", "run": plan.root,
                              "preset": str(cfg.preset)})


def train_all(plan: StudyPlan, max_parallel: int | None) -> list[dict[str, Any]]:
    logger = get_run_logger()
    on_cluster = _cluster_address(plan) is not None
    parallel = max_parallel or default_parallel(plan, on_cluster)
    todo = [run for run in plan.runs if training_state(plan, run) != "trained"]
    logger.info("study %s: %d runs, %d to train (%d at a time%s)", plan.spec.name, len(plan.runs), len(todo),
                parallel, ", Ray places them" if on_cluster else "")
    if not todo:
        return []
    _connect_ray(plan)
    with run_nodes(Placement(None, 0.0, 0.0), threads=parallel) as nodes:
        futures = [nodes.submit(train_run_task, plan, run.name) for run in todo]
        return [future.result() for future in futures]


def score_all(plan: StudyPlan) -> list[dict[str, Any]]:
    logger = get_run_logger()
    todo = [run for run in plan.runs if training_state(plan, run) == "trained" and not is_scored(plan.root, run.name)]
    if not todo:
        return []
    eval_cfg = plan.runs[0].config.eval  # the same for every cell (eval.* cannot vary in a study)
    classifier = dataset_classifier_task(plan.runs[0].config)  # once, deterministically (biggan.eval.classifier)
    placement = place_nodes(_cluster_address(plan), eval_cfg.device)
    logger.info("scoring %d run(s) on %s", len(todo), placement.describe())
    spec = plan.spec
    with run_nodes(placement, threads=1) as nodes:
        futures = [nodes.submit(score_run_task, plan.root, run.name, eval_cfg, classifier, spec.every_checkpoint,
                                spec.truncation_curve) for run in todo]
        return [future.result() for future in futures]


def publish_table(plan: StudyPlan, table: dict[str, Any]) -> None:
    name = plan.spec.name
    create_table_artifact(key=f"study-{slug(name)}", table=[{k: rounded(v) for k, v in row.items()}
                                                              for row in table["cells"]],
                          description=f"Study {name}: FID and IS mean +- std over seeds per cell")
    text = (plan.location / "study.md").read_text().replace("![FID per cell, one dot per seed](study.png)",
                                                             image(table["plot"], "FID per cell, one dot per seed"))
    create_markdown_artifact(key=f"study-report-{slug(name)}", markdown=text,
                             description=f"Study {name}: the table, the runs and the plot")


@flow(name="study-biggan", flow_run_name=study_run_name)
def study_biggan(spec: StudySpec | None = None, study_preset: str | None = None, shards: str | None = None,
                 resume: str | None = None, store: str = "runs", max_parallel: int | None = None) -> dict:
    """A grid of settings x seeds, each an ordinary train-biggan run, scored alike, in one table.
    The same spec again continues the study (nothing finished is trained or scored again).

    Args:
        spec: the study (base preset, overrides, grid or cells, seeds, shards, workers); empty with resume
        study_preset: without a spec, this named study (biggan.study.presets), in <store>/<its name>
        shards: with study_preset: the shard set or root (train/ + val/); empty = the base preset's
        resume: continue the study of this name in the store (its study.json): nothing finished reruns
        store: run store; the study's runs live in <store>/<name>
        max_parallel: runs trained at once without a Ray cluster; empty = as many as this machine's cores hold
    """
    logger = get_run_logger()
    plan = plan_study_task(spec, resume, store, study_preset, shards)
    with tags(f"study:{plan.spec.name}", f"preset:{plan.spec.preset}"):
        trained = train_all(plan, max_parallel)
        scored = score_all(plan)
        table = write_table(plan)
        publish_table(plan, table)
    failed = [row["run"] for row in table["runs"] if row["state"] == "failed"]
    logger.info("study %s: %d cells, %d runs (%d failed); table %s", plan.spec.name, len(plan.cells),
                len(plan.runs), len(failed), table["markdown"])
    return {"study": plan.spec.name, "root": plan.root, "trained": trained, "scored": scored, "failed": failed,
            **{k: table[k] for k in ("cells", "runs", "csv", "runs_csv", "markdown", "plot", "fingerprints")}}


study_biggan_flow = study_biggan  # the name the CLI and tests import
