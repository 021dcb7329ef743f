"""`biggan import pretrained-biggan`: a TF-Hub BigGAN-deep generator as a finished run of ours.

The folder is what `pytorch-pretrained-biggan` downloads for `BigGAN.from_pretrained(name)`
(config.json + pytorch_model.bin; biggan.interop.pretrained reads it). The run is laid out as
`biggan import bigganpytorch` lays out its runs (biggan.interop.run_store), so sample, interpolate,
export, evaluate (with --shards) and `train --init-from` work on it:

- G and G_ema are the released generator (the TF-Hub modules hold the EMA weights), with its BN
  statistics per truncation value, which sampling uses instead of standing statistics
  (biggan.models.truncation_stats);
- no D was released: D is our BigGAN-deep D freshly initialised (seed 0), and the checkpoint says
  so (`untrained: ["D"]`), so `train --init-from` starts D from scratch and says it in one line;
- train/eval/cluster settings are those of the imagenet{128,256,512}-deep preset; iteration 0.
"""

from __future__ import annotations

from pathlib import Path

from biggan.config import ConfigError
from biggan.config.data import NO_SHARDS
from biggan.experiment import shard_pairs
from biggan.interop.import_run import ImportedRun
from biggan.interop.pretrained import read_pretrained
from biggan.interop.run_store import DEFAULT_DEEP_PRESET, ImportedRunWritten, _check_data, _config, _state
from biggan.models import DeepDiscriminator, seeded
from biggan.models.init import build
from biggan.runs import RunStore
from biggan.runs.naming import next_run_name
from biggan.runs.store import IMPORTED_FILE
from biggan.storage import location, normalize

D_SEED = 0  # the fresh D of an imported generator


def write_pretrained_run(
    weights: Path | str,  # pytorch-pretrained-biggan's folder: config.json + pytorch_model.bin
    store: str,  # run store: local folder or URI
    name: str | None = None,  # None = a new number, 00007-biggan-deep-256
    shards: str | None = None,  # shard set (or root with train/ and val/) of the same classes and resolution
) -> ImportedRunWritten:
    """Read and check everything, then write the run (options.json last). Raises InteropError (the
    files, one line naming the file and the mismatch) or ConfigError; nothing is written then."""
    root = location(normalize(store))
    if name is not None and RunStore(root / name).exists():
        raise ConfigError(f"run {name} already exists in {root.uri}; pick another --name")
    data = shard_pairs(shards) if shards is not None else {"data.train_shards": NO_SHARDS, "data.val_shards": None}
    pretrained = read_pretrained(weights)
    model = pretrained.model
    if shards is not None:
        _check_data(model, data["data.train_shards"])
    notes = [*pretrained.notes, f"no D was released with these weights: D is freshly initialised (seed {D_SEED}); "
             "train --init-from starts it from scratch"]
    D = build(DeepDiscriminator, model, generator=seeded(D_SEED)).state_dict()
    imported = ImportedRun(model=model, G=pretrained.G, D=D, G_ema={k: v.clone() for k, v in pretrained.G.items()},
                           opt_G=None, opt_D=None, iteration=0, their_state={}, their_config=pretrained.config,
                           train_hints={}, notes=notes)
    cfg = _config(imported, DEFAULT_DEEP_PRESET[model.resolution], data, root.uri,
                  name or next_run_name(root, f"biggan-deep-{model.resolution}"))
    run = RunStore(root / cfg.name)  # type: ignore[operator]
    state = {**_state(imported, cfg), "untrained": ["D"]}
    info = run.save_checkpoint(state, {"source": "pretrained-biggan"})
    source = str(Path(weights).resolve())
    reason = f"imported from pytorch-pretrained-biggan files {source}"
    run.file(IMPORTED_FILE).write_json({"format": "pytorch-pretrained-biggan", "weights": source, "iteration": 0,
                                        "their_config": pretrained.config, "untrained": ["D"], "notes": notes},
                                       indent=2)
    run.write_status("finished", 0, cfg.train.iterations, reason)
    run.mark_for_evaluation(info, reason)
    run.write_options(cfg.model_dump(mode="json"))
    return ImportedRunWritten(run=run, checkpoint=info, config=cfg, notes=notes)
