"""What a run is, said in its Prefect name and tags: preset, run name, split.

Names are set when a run starts (`flow_run_name=` callables reading the parameters); a train
run's own name is only known once its config is resolved (`00007-digits32`), so the flow run is
renamed and tagged then (`label_flow_run`). Tags look like `preset:digits32`, `run:<name>`,
`split:train`, so the UI's tag filter finds every node of one run.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, runtime
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext


def _params() -> dict[str, Any]:
    return dict(runtime.flow_run.parameters or {})


def _get(value: Any, key: str, default: Any = None) -> Any:
    """A field of a parameter that may be a pydantic model or its JSON form."""
    if isinstance(value, dict):
        return value.get(key, default)
    return getattr(value, key, default)


def short(location: str | None) -> str:
    """The last part of a run or shard location: `runs/00007-digits32` -> `00007-digits32`."""
    return (location or "").rstrip("/").rsplit("/", 1)[-1] or "?"


def shard_run_name() -> str:
    config = _params().get("config")
    split, out = _get(config, "split", "train"), str(_get(config, "out", ""))
    # <set>/train and <set>/val are the usual layout: the set's name says which data it is.
    name = short(out.rstrip("/").rsplit("/", 1)[0]) if short(out) == split else short(out)
    return f"shard-{split}-{_get(config, 'resolution', '?')}px-{name}"


def train_run_name() -> str:
    params = _params()
    if params.get("resume"):
        return f"train-resume-{short(params['resume'])}"
    return f"train-{params.get('name') or params.get('preset') or 'digits32'}"


def for_run(prefix: str):
    """A `flow_run_name` callable: `<prefix>-<run name>` from the flow's `run` parameter."""
    def name() -> str:
        return f"{prefix}-{short(_params().get('run'))}"

    return name


def pipeline_run_name() -> str:
    params = _params()
    return f"pipeline-{params.get('name') or params.get('preset') or 'digits32'}"


def run_tags(preset: str | None = None, run: str | None = None, split: str | None = None) -> list[str]:
    tags = []
    if preset:
        tags.append(f"preset:{preset}")
    if run:
        tags.append(f"run:{short(run)}")
    if split:
        tags.append(f"split:{split}")
    return tags


def label_flow_run(name: str | None = None, tags: list[str] | tuple[str, ...] = ()) -> None:
    """Rename the current flow run and add tags (kept: the tags it started with)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    current = list(context.flow_run.tags or [])
    merged = current + [tag for tag in tags if tag not in current]
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, name=name, tags=merged)
    except Exception as err:  # noqa: BLE001 - a label is worth a warning, never a failed run
        get_run_logger().warning("could not rename the flow run to %s: %s", name, err)
        return
    context.flow_run.tags = merged
