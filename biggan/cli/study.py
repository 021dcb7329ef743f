"""`biggan study`: a grid of settings x seeds, each an ordinary run, scored alike, in one table
(runs the `study-biggan` flow; biggan.study plans and scores, flows/study.py schedules)."""

from __future__ import annotations

import click

from biggan.cli.common import echo_json, main, store_option
from biggan.config import ConfigError, parse_override
from biggan.presets import PRESETS


def _spec(name, preset, study_preset, overrides, grids, grid_file, seeds, shards, num_workers, use_gpu,
          every_checkpoint, truncation_curve, store):
    from biggan.runs.naming import next_run_name
    from biggan.storage import location
    from biggan.study.presets import build_spec
    from biggan.study.spec import load_grid_file, parse_grid_options

    pairs = dict(parse_override(text) for text in overrides)
    grid, cells = parse_grid_options(grids), []
    if grid_file is not None:
        loaded = load_grid_file(grid_file)
        pairs = {**loaded["overrides"], **pairs}
        clash = sorted(set(loaded["grid"]) & set(grid))
        if clash:
            raise ConfigError(f"grid key {clash[0]} is in both --grid-file and --grid")
        grid, cells = {**loaded["grid"], **grid}, loaded["cells"]
    if name is None:
        name = next_run_name(location(store), f"study-{study_preset or preset or 'digits32'}")
    return build_spec(name, preset=preset, study_preset=study_preset, overrides=pairs, grid=grid, cells=cells,
                      seeds=seeds, shards=shards, num_workers=num_workers, use_gpu=use_gpu,
                      every_checkpoint=every_checkpoint, truncation_curve=truncation_curve)


@main.command("study")
@click.option("--study-preset", default=None, help="A named study: table1, appendix-h-lr, appendix-h-d-beta1, "
                                                    "appendix-h-ortho, appendix-e-priors, digits32-batch.")
@click.option("--preset", default=None, type=click.Choice(sorted(PRESETS)),
              help="Base preset of every cell; default: the study preset's, else digits32.")
@click.option("--grid", "grids", multiple=True, metavar="KEY=V1,V2",
              help="A grid key and its values (YAML each: 16,32 / null / [0.0,0.999]); repeated keys make a product.")
@click.option("--grid-file", default=None, help="YAML file with `grid:` (a product) or `cells:`, and `set:`.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override of every cell.")
@click.option("--seeds", type=int, default=None, help="Seeds per cell (train.seed 0..N-1); default: the study "
                                                      "preset's, else 1.")
@click.option("--name", default=None,
              help="The study's folder in the store; default: a new number, 00007-study-<preset>.")
@click.option("--resume", default=None, metavar="NAME",
              help="Continue this study (its study.json): finished runs are not trained or scored again.")
@click.option("--shards", default=None, help="Shard set or root holding train/ and val/.")
@store_option
@click.option("--workers", "num_workers", type=int, default=None,
              help="Ray Train workers per run; default: the preset's.")
@click.option("--gpu/--no-gpu", "use_gpu", default=None, help="One GPU per worker; default: the preset's.")
@click.option("--max-parallel", type=int, default=None,
              help="Runs trained at once without a Ray cluster; default: as many as this machine's cores hold.")
@click.option("--every-checkpoint", is_flag=True,
              help="Score every checkpoint of each run, not only the last healthy one.")
@click.option("--no-truncation-curve", "no_curve", is_flag=True, help="Skip the truncation sweep (best-FID point).")
@click.option("--dry-run", is_flag=True, help="Validate the grid, print the runs and exit (starts nothing).")
def study_command(study_preset, preset, grids, grid_file, overrides, seeds, name, resume, shards, store, num_workers,
                  use_gpu, max_parallel, every_checkpoint, no_curve, dry_run) -> None:
    """Train every cell of a grid x seeds as ordinary runs in <store>/<study>/, score them alike (one
    classifier, one reference) and write the table: study.csv, study.md, study.png."""
    from biggan.errors import UserError
    from biggan.study.plan import plan_study, read_spec, study_exists

    try:
        if resume is not None:
            given = [flag for flag, is_given in (
                ("--study-preset", study_preset is not None), ("--preset", preset is not None), ("--grid", bool(grids)),
                ("--grid-file", grid_file is not None), ("--set", bool(overrides)), ("--seeds", seeds is not None),
                ("--name", name is not None), ("--shards", shards is not None), ("--workers", num_workers is not None),
                ("--gpu/--no-gpu", use_gpu is not None), ("--every-checkpoint", every_checkpoint),
                ("--no-truncation-curve", no_curve)) if is_given]
            if given:
                raise ConfigError(f"--resume continues study {resume} as it was started: drop {', '.join(given)}")
            spec = read_spec(store, resume)
        else:
            spec = _spec(name, preset, study_preset, overrides, grids, grid_file, seeds, shards, num_workers,
                         use_gpu, every_checkpoint, not no_curve, store)
            if study_exists(store, spec.name):
                raise ConfigError(f"study {spec.name} exists in {store}; continue it with --resume {spec.name}, "
                                  f"or pick another --name")
        plan = plan_study(spec, store)  # every cell checked before anything starts
    except (ConfigError, KeyError) as err:
        raise click.UsageError(str(err).strip("'\"")) from None
    except UserError as err:
        raise click.ClickException(str(err)) from None
    if dry_run:
        echo_json({"study": spec.name, "root": plan.root, "spec": spec.model_dump(mode="json"), "varied": plan.varied,
                   "runs": [{"name": r.name, "cell": r.cell, "seed": r.seed, "overrides": r.overrides}
                            for r in plan.runs]})
        return
    from biggan.cli.prefect_env import prepare_prefect

    prepare_prefect()
    from biggan_flows.study import study_biggan_flow

    result = study_biggan_flow(spec=None if resume else spec, resume=resume, store=store, max_parallel=max_parallel)
    from biggan.storage import location

    click.echo(location(result["markdown"]).read_text())
    click.echo(f"table: {result['csv']}\nruns: {result['runs_csv']}\nreport: {result['markdown']}\n"
               f"plot: {result['plot']}")
