"""Score a small-data study (docs/small-data.md) against the FULL training set: every run of a
`biggan study` trained on a `--max-per-class` subset, scored with one dataset classifier trained on
the full training shards and against the full set's reference statistics, with class agreement
(the independent judge, also fitted on the full set) and the memorization check (D's accuracy on
its own training images vs held-out ones, and the nearest-neighbour copy check against the images
the run trained on).

    python benchmarks/small_data_study.py --study runs/small-data --full shards/full

`--full` is a shard root with train/ and val/ (the val split is the study's held-out set too).
Writes <study>/small_data/<run>.json per run and <study>/small_data/table.md, and prints the
table. A run already scored is read back (delete its file to score it again).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path


def score_run(store, full_cfg, classifier: str, judge) -> dict:
    """The figures of one run at its checkpoint to evaluate."""
    from biggan.eval.agreement import class_agreement
    from biggan.eval.memorization import memorization_check
    from biggan.eval.metrics import compute_metrics
    from biggan.eval.session import open_session

    session = open_session(store, None, None, classifier)
    # The same checkpoint and samples, with the full training set as the reference.
    full = dataclasses.replace(session, cfg=session.cfg.model_copy(update={"data": full_cfg.data}))
    figures = compute_metrics(full, ["is", "fid"], None)
    cfg = session.cfg
    agreement = class_agreement(full.generator(None), judge, cfg.model.num_classes, per_class=100, truncation=None,
                                seed=cfg.eval.seed)
    memo = memorization_check(store, session.info.name, None, classifier)
    accuracy = memo["d_accuracy"]
    stats = store.stats.read()
    images_per_s = statistics.median(r["images_per_s"] for r in stats if "images_per_s" in r)
    last = stats[-1]
    nn = memo["backbones"]
    return {
        "run": store.name, "checkpoint": session.info.name, "iteration": session.info.iteration,
        "FID": figures["fid"]["FID"], "IS": figures["is"]["IS"], "fingerprint": full.fingerprint(),
        "agreement": agreement["mean"], "agreement_min": agreement["min"], "agreement_truncation": None,
        "d_train": accuracy["train_real"]["accuracy"], "d_val": accuracy["val_real"]["accuracy"],
        "d_gap": accuracy["train_minus_val"], "d_generated": accuracy["generated"]["accuracy"],
        "d_counts": [accuracy["train_real"]["count"], accuracy["val_real"]["count"]],
        "nn_ratio": min(b["ratio_of_medians"] for b in nn.values()), "copying": memo["copying_flag"],
        # The run's own training speed (runs may have shared the machine: the benchmark is the clean figure).
        "ms_per_iteration": 1000.0 * cfg.train.batch_size * cfg.train.d_steps / images_per_s,
        "last_record": {k: v for k, v in last.items() if k.startswith(("augment/", "lecam/", "D_out/", "loss/"))},
    }


def _pm(values: list[float], digits: int = 2) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} +- {statistics.stdev(values):.{digits}f}"


def table(rows: dict[str, list[dict]], classifier_meta: dict) -> str:
    lines = [
        f"FID and IS: {classifier_meta['samples']} samples of EMA G (standing statistics, untruncated) against the "
        f"full training set ({classifier_meta['train_images']} images), in the feature space of one dataset "
        f"classifier trained on the full training set (held-out accuracy {classifier_meta['val_accuracy']:.3f}); "
        f"class agreement: 100 samples per class judged by an RBF SVM fitted on the full training set (held-out "
        f"accuracy {classifier_meta['judge_accuracy']:.3f}); D accuracy: share of real images D calls real "
        f"(train: the run's own training images; held-out: the val split), and of generated ones it calls fake; "
        f"NN ratio: median nearest-neighbour distance (to the run's training images) of generated samples over "
        f"that of held-out images (the copy flag fires below 0.5). Mean +- sample std over seeds.",
        "",
        "| cell | FID | per seed | IS | class agreement (worst class) | D acc. train | D acc. held-out | "
        "train - held-out | D acc. generated | NN ratio | copying |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for cell, runs in rows.items():
        def col(key, runs=runs):
            return [r[key] for r in runs]
        lines.append(
            f"| {cell} | {_pm(col('FID'))} | {', '.join(f'{v:.2f}' for v in col('FID'))} | {_pm(col('IS'))} | "
            f"{_pm(col('agreement'), 3)} ({_pm(col('agreement_min'), 3)}) | {_pm(col('d_train'), 3)} | "
            f"{_pm(col('d_val'), 3)} | {_pm(col('d_gap'), 3)} | {_pm(col('d_generated'), 3)} | "
            f"{_pm(col('nn_ratio'), 2)} | {sum(col('copying'))}/{len(runs)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", required=True, type=Path, help="the study folder (<store>/<study>)")
    parser.add_argument("--full", required=True, type=Path, help="shard root of the full set (train/ and val/)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # the classifier is trained on one thread anyway (biggan.eval.classifier)
    from biggan.config import ExperimentConfig
    from biggan.data.info import load_dataset_info
    from biggan.eval.agreement import train_judge
    from biggan.eval.session import ensure_classifier
    from biggan.runs import RunStore

    spec = json.loads((args.study / "study.json").read_text())
    names = spec.get("runs") or sorted(p.parent.name for p in args.study.glob("*/options.json"))
    cells: dict[str, list[str]] = {}
    for name in names:
        cells.setdefault(name.rsplit("-s", 1)[0], []).append(name)
    first = ExperimentConfig.model_validate(RunStore(args.study / names[0]).read_options())
    full_data = first.data.model_copy(update={"train_shards": str((args.full / "train").resolve()),
                                              "val_shards": str((args.full / "val").resolve())})
    full_cfg = first.model_copy(update={"data": full_data})
    trained = ensure_classifier(full_cfg, "cpu")
    judge = train_judge(full_data.train_shards, full_data.val_shards)
    meta = {"classifier": str(trained.path), "val_accuracy": trained.val_accuracy,
            "judge_accuracy": judge.val_accuracy, "samples": first.eval.num_samples,
            "train_images": load_dataset_info(full_data.train_shards).num_samples}
    out = args.study / "small_data"
    out.mkdir(exist_ok=True)
    rows: dict[str, list[dict]] = {}
    for cell, runs in cells.items():
        for name in runs:
            target = out / f"{name}.json"
            if not target.is_file():
                print(f"scoring {name}", file=sys.stderr, flush=True)
                result = score_run(RunStore(args.study / name), full_cfg, str(trained.path), judge)
                target.write_text(json.dumps(result, indent=2))
            rows.setdefault(cell, []).append(json.loads(target.read_text()))
    text = table(rows, meta)
    (out / "table.md").write_text(text)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(text)


if __name__ == "__main__":
    main()
