"""The Ray launcher: the only part of biggan that imports Ray.

- `trainer`: `launch_training(cfg)` runs the training loop in Ray Train workers (or in-process).
- `cluster`: join a Ray cluster or start a local one whose every port listens on loopback.
- `local_ray`: how a local Ray is bound to loopback in this Ray version.
"""

from biggan.train.launcher.trainer import TrainResult, check_same_code, launch_training, package_fingerprint

__all__ = ["TrainResult", "check_same_code", "launch_training", "package_fingerprint"]
