"""A study planned before any run starts: every cell validated, named, expanded over seeds.

Bad grids fail here, in one line, before anything trains: an unknown key (with the config's
suggestions), a value its field refuses, a combination the data cannot serve (resolution against
the shard set, a batch the workers cannot split), an empty grid, duplicate cells (two cells
whose configs are the same once validated, e.g. 1e-4 and 0.0001), a key that may not vary in a
study (what is scored must be alike: data.* and eval.*; seeds come from the seeds axis; the
study names its runs), a key given both as a grid key and as --set.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from biggan.config import ConfigError, ExperimentConfig
from biggan.experiment import resolve_experiment
from biggan.presets import PRESETS
from biggan.runs.store import OPTIONS_FILE, STOPPED_BY_RULE, RunStore
from biggan.storage import Location, location, normalize
from biggan.study.spec import STUDY_FILE, Cell, StudyError, StudySpec, expand_cells, varied_keys

# Keys a study may not vary between cells, and why (a prefix ending in "." covers a section).
FIXED_KEYS = {
    "data.": "every run of a study reads one shard set: one classifier and one reference score them all",
    "eval.": "every run of a study is scored alike (same extractor, reference, samples and seeds)",
    "train.seed": "seeds are the study's seeds axis (--seeds)",
    "name": "the study names its runs <cell>-s<seed>",
    "run_root": "a study's runs live in its own folder",
    "preset": "a study has one base preset (--preset)",
}
FIXED_IN_OVERRIDES = ("train.seed", "name", "run_root", "preset")  # not even as --set for every cell


@dataclass
class PlannedRun:
    cell: str  # the cell's name
    seed: int  # train.seed
    name: str  # <cell>-s<seed>: the run's name in the study folder
    overrides: dict[str, Any]  # every dotted override of the run (the study's, the cell's, train.seed)
    config: ExperimentConfig  # resolved against the shards, named, run_root = the study folder


@dataclass
class StudyPlan:
    spec: StudySpec
    root: str  # the study folder (its runs' store): <store>/<study>
    cells: list[Cell]
    varied: list[str]  # the keys that differ between cells
    runs: list[PlannedRun] = field(default_factory=list)

    @property
    def location(self) -> Location:
        return location(self.root)


def study_root(store: str, name: str) -> str:
    return f"{normalize(store).rstrip('/')}/{name}"


def _fixed(key: str) -> str | None:
    for prefix, why in FIXED_KEYS.items():
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return why
    return None


def check_keys(spec: StudySpec, cells: list[Cell]) -> list[str]:
    """The keys that vary between cells; a key that may not vary, or is set twice, is an error."""
    for key in spec.overrides:
        if key in FIXED_IN_OVERRIDES:
            raise StudyError(f"--set {key}: {_fixed(key)}")
    varied = varied_keys([cell.overrides for cell in cells])
    for key in dict.fromkeys(k for cell in cells for k in cell.overrides):
        why = _fixed(key)
        if why is not None:
            raise StudyError(f"grid key {key} cannot vary in a study: {why}")
        if key in spec.overrides:
            raise StudyError(f"{key} is both a grid key and --set {key}={spec.overrides[key]!r}: drop one")
    return varied


def plan_study(spec: StudySpec, store: str) -> StudyPlan:
    """Validate every cell against the preset, the config and the shards; name and expand the runs.
    Raises StudyError / ConfigError (one line) on the first problem; starts nothing."""
    if spec.preset not in PRESETS:
        raise StudyError(f"unknown preset {spec.preset!r}; known presets: {', '.join(sorted(PRESETS))}")
    cells = expand_cells(spec)
    varied = check_keys(spec, cells)
    root = study_root(store, spec.name)
    plan = StudyPlan(spec=spec, root=root, cells=cells, varied=varied)
    identity: dict[str, str] = {}  # a cell's validated config (JSON) -> its name
    for cell in cells:
        pairs = {**spec.overrides, **cell.overrides}
        try:
            cfg = resolve_experiment(spec.preset, {**pairs, "train.seed": spec.seeds[0]}, spec.shards, spec.num_workers,
                                     spec.use_gpu, name=None, store=root)
        except ConfigError as err:
            raise StudyError(f"cell {cell.name}: {err}") from None
        same = json.dumps({**cfg.model_dump(mode="json"), "name": None}, sort_keys=True)
        if same in identity:
            raise StudyError(f"cells {identity[same]} and {cell.name} are the same experiment once validated "
                             f"({cell.overrides}): drop one")
        identity[same] = cell.name
        for seed in spec.seeds:
            name = f"{cell.name}-s{seed}"
            run_cfg = cfg.model_copy(update={"name": name, "train": cfg.train.model_copy(update={"seed": seed})})
            plan.runs.append(PlannedRun(cell=cell.name, seed=seed, name=name,
                                        overrides={**pairs, "train.seed": seed}, config=run_cfg))
    return plan


# ---------------------------------------------------------------- study.json and where each run stands


# Written beside the spec in study.json for a reader; read_spec leaves them out.
_DERIVED = ("cell_names", "varied", "runs")


def write_spec(plan: StudyPlan) -> None:
    """study.json: the spec as given (so the same spec again continues the study), and what it gives."""
    plan.location.makedirs()
    (plan.location / STUDY_FILE).write_json(
        {**plan.spec.model_dump(mode="json"), "cell_names": [c.name for c in plan.cells], "varied": plan.varied,
         "runs": [r.name for r in plan.runs]}, indent=2)


def read_spec(store: str, name: str) -> StudySpec:
    """The spec a study was started with (`biggan study --resume NAME`)."""
    loc = location(study_root(store, name)) / STUDY_FILE
    try:
        data = loc.read_json()
    except (FileNotFoundError, OSError):
        raise StudyError(f"no study {name} in {normalize(store)} (no {loc.uri})") from None
    data = {k: v for k, v in data.items() if k not in _DERIVED}
    return StudySpec.model_validate(data)


def study_exists(store: str, name: str) -> bool:
    return (location(study_root(store, name)) / STUDY_FILE).is_file()


def training_state(plan: StudyPlan, run: PlannedRun) -> str:
    """'new' (never started), 'trained' (finished, or stopped by the collapse / dead-D rule: done
    training), else 'unfinished' (interrupted, failed, or still marked running): resumed, not restarted."""
    store = RunStore(plan.location / run.name)
    if not (store.location / OPTIONS_FILE).is_file():
        return "new"
    state = (store.read_status() or {}).get("state")
    return "trained" if state == "finished" or state in STOPPED_BY_RULE else "unfinished"


def default_parallel(plan: StudyPlan, on_cluster: bool) -> int:
    """Runs trained at once: all of them on a Ray cluster (Ray starts each as its workers' resources
    free up); on this machine as many as its cores hold (a run's workers x their CPUs; in-process
    training uses every core), at least 1."""
    if on_cluster:
        return max(1, len(plan.runs))
    cluster = plan.runs[0].config.cluster
    per_run = cluster.max_workers * cluster.cpus_per_worker if cluster.max_workers else os.cpu_count() or 1
    return max(1, int((os.cpu_count() or 1) // max(per_run, 1)))
