"""`biggan` commands of the evaluation area: evaluate, truncation-curve, memorization.

Each runs the same Prefect flow its deployment runs (imported inside the command, so `import
biggan` stays Prefect-free).
"""

from __future__ import annotations

from typing import Any

import click

from biggan.cli.common import echo_json, main, open_run, run_options
from biggan.config import ConfigError, parse_override

_EVAL_SET = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                         help="Override an eval setting, e.g. --set num_samples=5000 (keys of EvalConfig).")


def eval_overrides(overrides: tuple[str, ...]) -> dict[str, Any]:
    """`num_samples=100` or `eval.num_samples=100` -> {"num_samples": 100}, checked against EvalConfig."""
    from biggan.config import EvalConfig, apply_overrides

    try:
        pairs = {key.removeprefix("eval."): value for key, value in (parse_override(t) for t in overrides)}
        apply_overrides(EvalConfig(), pairs)
    except ConfigError as err:
        raise click.UsageError(str(err)) from None
    return pairs


def _run_uri(run_ref: str, store: str, command: str, pairs: dict[str, Any]) -> str:
    run = open_run(run_ref, store)
    _require_images(run, command, pairs)
    return run.uri


def _require_images(run, command: str, pairs: dict[str, Any]) -> None:
    """A run imported without --shards has no images (biggan.config.data.NO_SHARDS): say so here,
    in one line, instead of failing inside the flow. IS/FID against published statistics with
    Inception features need no shards; the memorization check always does."""
    from biggan.config.data import NO_SHARDS

    options = run.read_options()
    if options.get("data", {}).get("train_shards") != NO_SHARDS:
        return
    ecfg = {**options.get("eval", {}), **pairs}
    published = ecfg.get("reference_stats") and ecfg.get("feature_extractor") != "dataset-classifier"
    if command != "memorization" and published:
        return
    remedy = "import the weights again with --shards (a shard set of the same classes and resolution)"
    if command != "memorization":
        remedy += (", or score against published statistics: --set reference_stats=FILE.npz "
                   "--set feature_extractor=inception-v3-compat")
    raise click.ClickException(f"run {run.name} was imported without --shards and `biggan {command}` needs "
                               f"images: {remedy}")


@main.command("evaluate")
@run_options
@_EVAL_SET
def evaluate_command(run_ref: str, store: str, checkpoint: str | None, overrides: tuple[str, ...]) -> None:
    """IS/FID of every checkpoint not yet evaluated, appended to the run's metric-<name>.jsonl; redraws
    metrics_history.png (flow evaluate-biggan)."""
    pairs = eval_overrides(overrides)
    run = _run_uri(run_ref, store, "evaluate", pairs)
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.evaluate import evaluate_biggan_flow

    result = evaluate_biggan_flow(run=run, eval_overrides=pairs)
    echo_json({k: v for k, v in result.items() if k != "records"}
              | {"metrics": {r["checkpoint"]: r["metrics"] for r in result["records"]}})


@main.command("truncation-curve")
@run_options
@_EVAL_SET
def truncation_command(run_ref: str, store: str, checkpoint: str | None, overrides: tuple[str, ...]) -> None:
    """IS vs FID over truncation thresholds + Table 2 operating points into <run>/truncation/."""
    pairs = eval_overrides(overrides)
    run = _run_uri(run_ref, store, "truncation-curve", pairs)
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.evaluate import truncation_curve_flow

    echo_json(truncation_curve_flow(run=run, checkpoint=checkpoint, eval_overrides=pairs))


@main.command("memorization")
@run_options
@_EVAL_SET
def memorization_command(run_ref: str, store: str, checkpoint: str | None, overrides: tuple[str, ...]) -> None:
    """D accuracy train vs val and nearest neighbours of samples into <run>/memorization/."""
    pairs = eval_overrides(overrides)
    run = _run_uri(run_ref, store, "memorization", pairs)
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.evaluate import memorization_flow

    echo_json(memorization_flow(run=run, checkpoint=checkpoint, eval_overrides=pairs))
