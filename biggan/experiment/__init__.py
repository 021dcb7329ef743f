"""From what a user typed (preset, overrides, shards, name, resume) to one validated
ExperimentConfig, before any Ray worker or Prefect task starts: the CLI (`--dry-run`
included) and the `train-biggan` flow both call `resolve_experiment`. No Ray here.

- A new run gets a new name (`--name`, else `00007-<preset>`) and never lands in an old run.
- `model.resolution` and `model.num_classes` default to the shard set's dataset.json; an
  explicit value that conflicts stops here with both values.
- Resuming is explicit (`resume=NAME|latest|URI`): the run's own options.json is the base, and
  only the keys in SAFE_ON_RESUME may change; any other difference stops here, naming the keys.
  A new training option says there whether it may change on resume (biggan/experiment/changes.py).
- A new run may start from another run's weights (`init_from`, `train.init_from`): the source is
  resolved here to one checkpoint whose files match its manifest (the loop checks the sha256 when
  it loads them), and its run's model config becomes the new run's, except `num_classes`, which
  follows the new shard set. Not a resume: it cannot be combined with one.
- A collapse remedy (`train.collapse.remedies`, applied by a rollback mid-run) names only keys
  that may change on resume and that a running worker group can change (not REMEDY_FIXED); a bad
  one stops here, in one line naming it, before anything starts.

resolve.py   resolve_experiment: presets, overrides, shards, names, resume, init_from, the data's defaults
changes.py   SAFE_ON_RESUME, REMEDY_FIXED: what a resume and a rollback's remedy may change; check_remedies
"""

from biggan.experiment.changes import (
    REMEDY_FIXED,
    SAFE_ON_RESUME,
    apply_remedy,
    changed_keys,
    check_conditioning,
    check_remedies,
    flat_config,
    remedy_refusal,
    safe_on_resume,
)
from biggan.experiment.resolve import (
    adopt_source_model,
    apply_data_defaults,
    resolve_experiment,
    shard_pairs,
    with_streams,
)

__all__ = [
    "REMEDY_FIXED", "SAFE_ON_RESUME", "apply_remedy", "changed_keys", "check_conditioning", "check_remedies",
    "flat_config", "remedy_refusal", "safe_on_resume",
    "adopt_source_model", "apply_data_defaults", "resolve_experiment", "shard_pairs", "with_streams",
]
