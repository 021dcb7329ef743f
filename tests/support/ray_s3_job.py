"""Ray Train with its storage on S3: `python -m tests.support.ray_s3_job MODE STORAGE OUT_JSON`.

MODE "env": RunConfig(storage_path=STORAGE), an s3:// URI; the endpoint and key come from
AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION in this
process's environment, which the local Ray's workers inherit.
MODE "filesystem": RunConfig(storage_path=STORAGE, storage_filesystem=pyarrow S3FileSystem),
STORAGE being "bucket/prefix"; the endpoint and key come from S3_ENDPOINT / S3_KEY / S3_SECRET.
Two fits with the same name: the second must start from the first one's checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path


def _loop(config: dict) -> None:
    import ray.train

    previous = ray.train.get_checkpoint()
    step = 0
    if previous is not None:
        with previous.as_directory() as path:
            step = json.loads((Path(path) / "state.json").read_text())["step"] + 1
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "state.json").write_text(json.dumps({"step": step}))
        ray.train.report({"step": step}, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def main(mode: str, storage: str, out: Path) -> None:
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from biggan.train import ray_local

    options = {}
    if mode == "filesystem":
        from pyarrow import fs

        options["storage_filesystem"] = fs.S3FileSystem(
            endpoint_override=os.environ["S3_ENDPOINT"], scheme="http", access_key=os.environ["S3_KEY"],
            secret_key=os.environ["S3_SECRET"], region="us-east-1")
    ray_local.start_local_ray(num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20)
    fits = []
    for _ in range(2):
        trainer = TorchTrainer(_loop, scaling_config=ScalingConfig(num_workers=1),
                               torch_config=ray_local.LoopbackTorchConfig(),
                               run_config=RunConfig(name="s3-run", storage_path=storage, **options))
        result = trainer.fit()
        fit = {"error": None if result.error is None else repr(result.error), "path": result.path}
        if result.checkpoint is not None:
            fit["checkpoint_path"] = result.checkpoint.path
            with result.checkpoint.as_directory() as path:
                fit["state"] = json.loads((Path(path) / "state.json").read_text())
        fits.append(fit)
    out.write_text(json.dumps(fits))
    ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
