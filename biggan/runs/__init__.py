"""biggan.runs: the run store (a run's layout, its checkpoints and marks, on local disk or a
storage URI), run names and listing. Training and evaluation both use it; it imports neither."""

from biggan.runs.checkpoints import CheckpointDamaged, CheckpointInfo
from biggan.runs.store import RunNotFound, RunStore

__all__ = ["CheckpointDamaged", "CheckpointInfo", "RunNotFound", "RunStore"]
